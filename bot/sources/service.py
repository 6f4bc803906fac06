"""One sync of one source: each object pulled in turn into the store through the CSV import's
validation, its deletions applied (those the CRM lists since the mark, or, after a full read,
the rows the read no longer named), and its high-water mark moved on, all in a savepoint of the
caller's transaction. An object whose list of deletions costs the whole recycle bin (HubSpot's)
has it read by incremental syncs once per ``deletions_every`` only; the moment of the last
check is kept in the ``<object>:deleted`` sync_state row. The CRM's users are read whole each
time and matched to other sources' reps (``bot.sources.owners``), so that deals and leads
count for the reps people know. At the first read of a source's deals, a connector that reads
the CRM's field history backfills the pipeline history before it (``bot.sources.backfill``);
if the CRM refuses it, the sync stands.

The first object that fails stops the source: it and the objects after it keep the store and
the high-water mark they had, and the error is recorded; the objects finished before it keep
their new rows and marks. ``kpibot sync``, ``/kpi sync`` and the scheduled job all come
here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.formatting import Formatter
from bot.importers.csv_import import (
    RecordImport,
    RecordsRead,
    RowProblem,
    field_parser,
    import_csv,
)
from bot.settings import ColumnMap, ConfigError, CsvSource
from bot.sources.backfill import Backfilled, Reader, backfill_history
from bot.sources.cells import cell
from bot.sources.connector import (
    Budget,
    CellBatch,
    Columnar,
    Connector,
    FieldHistory,
    SourceError,
    SourceObject,
)
from bot.sources.owners import RepMatcher, merge_matched
from bot.store.database import bump_data_version
from bot.store.first_load import written_once
from bot.store.models import Base, Rep
from bot.store.moments import as_utc
from bot.store.sync_models import SyncState
from bot.store.upsert import absent_source_ids, delete_sourced

# How often (in records) the progress callback hears of an object being fetched.
PROGRESS_EVERY = 1_000
_REJECTIONS_SHOWN = 10
# The sync_state row of errors that stopped a source before its first object.
SOURCE_WIDE = "(source)"
# Tables whose rows a full read no longer names are deleted. Not teams, reps and accounts:
# the import creates those that records name without listing them (a deal's account), so a
# full read of their own object does not name every row the store holds.
FULL_READ_DELETES = frozenset({"opportunities", "leads", "spend", "surveys"})

# The sync_state row keeping when an object's deletions were last checked (in synced_at) and
# the moment the next check lists them from (in high_water_mark).
DELETION_CHECKS = "{}:deleted"

# (object, records fetched so far, the records expected if the CRM said, whether it is done)
Progress = Callable[[str, int, int | None, bool], None]


@dataclass(frozen=True)
class Rejection:
    record: str  # the CRM's id, or the position in the stream when it had none
    reason: str  # in English
    problem: RowProblem | None = field(default=None, compare=False, repr=False)

    def worded(self, language: str) -> str:
        return self.reason if self.problem is None else self.problem.worded(language)


@dataclass
class ObjectReport:
    name: str
    table: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    api_calls: int = 0
    high_water_mark: datetime | None = None
    finished: bool = False
    error: SourceError | None = None
    matched: int = 0  # CRM users found among other sources' reps (not written as reps)
    # Objects with deletions on a cadence: when they were last checked (now, if this sync
    # checked them), and the cadence when this sync skipped them.
    deletions_checked: datetime | None = None
    deletions_skipped_for: timedelta | None = None

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def summary(self, fmt: Formatter) -> str:
        """One line: what the object's pull did, in ``fmt``'s language."""
        mark = (
            fmt.t("report.none") if self.high_water_mark is None else _moment(self.high_water_mark)
        )
        line = fmt.t(
            "sync.object",
            name=self.name,
            table=self.table,
            fetched=self.fetched,
            inserted=self.inserted,
            updated=self.updated,
            deleted=self.deleted,
            rejected=len(self.rejected),
            calls=fmt.tn("sync.api_calls", self.api_calls),
            mark=mark,
        )
        if self.matched:
            line = fmt.t("sync.and", line=line, part=fmt.tn("sync.matched", self.matched))
        if self.deletions_checked is not None:
            at = _moment(self.deletions_checked)
            if self.deletions_skipped_for is None:
                part = fmt.t("sync.deletions_checked", at=at)
            else:
                after = _moment(self.deletions_checked + self.deletions_skipped_for)
                part = fmt.t("sync.deletions_skipped", at=at, next=after)
            line = fmt.t("sync.and", line=line, part=part)
        if self.error is not None:
            stopped = fmt.t("sync.not_finished", error=self.error.worded(fmt))
            line = fmt.t("sync.and", line=line, part=stopped)
        return line


@dataclass
class SourceReport:
    source: str
    kind: str
    full: bool
    objects: list[ObjectReport] = field(default_factory=list)
    budget: Budget | None = None
    error: SourceError | None = None  # str() in English, for logs
    data_version: int | None = None
    api_calls: int = 0  # with those no object is charged for (a stage list, a login)
    backfill: Backfilled | None = None  # at a first sync, when the CRM has field history

    @property
    def changed(self) -> int:
        return sum(obj.changed for obj in self.objects)

    def summary(self, fmt: Formatter) -> str:
        """What the sync of the source did, object by object, in ``fmt``'s language."""
        # Full when asked for, or when an object had no high-water mark yet (a first sync).
        mode = fmt.t("sync.mode.full" if self.full else "sync.mode.incremental")
        lines = [fmt.t("sync.header", source=self.source, kind=self.kind, mode=mode)]
        for obj in self.objects:
            lines.append(f"  {obj.summary(fmt)}")
            for rejection in obj.rejected[:_REJECTIONS_SHOWN]:
                rejected = {"object": obj.name, "record": rejection.record}
                lines.append(
                    "    "
                    + fmt.t("sync.rejected", reason=rejection.worded(fmt.language), **rejected)
                )
            more = len(obj.rejected) - _REJECTIONS_SHOWN
            if more > 0:
                lines.append("    " + fmt.tn("sync.more_rejected", more))
        if self.budget is not None:
            budget = self.budget
            left = budget.limit - budget.used
            lines.append(
                "  "
                + fmt.t(
                    "sync.budget", used=budget.used, limit=budget.limit, what=budget.what, left=left
                )
            )
        if self.backfill is not None:
            lines += [f"  {line}" for line in self.backfill.summary(fmt, _REJECTIONS_SHOWN)]
        outcome = fmt.tn("report.rows_changed", self.changed)
        if self.api_calls:
            outcome = fmt.t(
                "sync.and", line=outcome, part=fmt.tn("sync.api_calls_all", self.api_calls)
            )
        if self.error is not None:
            outcome = fmt.t("sync.failed", error=self.error.worded(fmt), outcome=outcome)
        lines.append(f"  {outcome}")
        return "\n".join(lines)


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _count(session: Session, table: str, source: str) -> int:
    rows = Base.metadata.tables[table]
    return int(session.scalar(select(func.count()).where(rows.c.source == source)) or 0)


def _inserted(session: Session, table: str, source: str, before: int, changed: int) -> int:
    """How many of ``source``'s rows a write that ``changed`` rows of ``table`` added, which
    held ``before`` of them: into a table holding none, every row it changed (counting a first
    sync's three million rows again took 0.15 s)."""
    return changed if not before else _count(session, table, source) - before


class _State:
    """The sync_state rows of one source."""

    def __init__(self, session: Session, source: str) -> None:
        self.session = session
        self.source = source

    def mark(self, name: str) -> datetime | None:
        """``name``'s high-water mark, without making its row."""
        state = self.session.get(SyncState, (self.source, name))
        return None if state is None else as_utc(state.high_water_mark)

    def get(self, name: str) -> SyncState:
        state = self.session.get(SyncState, (self.source, name))
        if state is None:
            state = SyncState(
                source=self.source, object=name, fetched=0, inserted=0, updated=0, deleted=0,
                rejected=0, api_calls=0,
            )  # fmt: skip
            self.session.add(state)
        return state


def _mapping(obj: SourceObject) -> ColumnMap:
    return ColumnMap(
        file=obj.name,
        columns={name: name for name in obj.fields},
        stages=dict(obj.stages),
        date_format=obj.date_format,
    )


@dataclass
class _Fetched:
    """What reading one object found besides its rows."""

    newest: datetime | None  # the latest modification seen (the high-water mark to be)
    count: int = 0
    # The CRM ids of the records handed to the import, by position: read row by row, a list;
    # read as Arrow, its columns (3M Python strings: 0.36 s and 193 MB more).
    ids: list[str] = field(default_factory=list)
    id_columns: list[pa.Array[Any]] = field(default_factory=list)

    def saw(self, modified: datetime | None) -> None:
        moment = as_utc(modified)
        if moment is not None and (self.newest is None or moment > self.newest):
            self.newest = moment

    def handed(self) -> pa.ChunkedArray[Any]:
        return pa.chunked_array(self.id_columns or [pa.array(self.ids, pa.string())], pa.string())


def _cell_rows(
    obj: SourceObject,
    batches: Iterator[CellBatch],
    fetched: _Fetched,
    progress: Callable[[int], None] | None,
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        count = batch.cells.num_rows
        fetched.count += count
        fetched.saw(batch.modified)
        if progress is not None:
            progress(fetched.count)
        if "id" in obj.fields:  # text cells: no None among them
            fetched.id_columns.append(batch.cells.column("id"))
        else:
            fetched.id_columns.append(pa.array([""] * count, pa.string()))
        yield batch.cells


@dataclass
class _ReadAhead:
    """An object's full read as Arrow, started while the store writes the object before it:
    its query made (``calls``, charged to it) and its batches read and checked on a thread;
    ``reading`` is None when the connector cannot read it so (it is then read row by row),
    ``error`` the query's failure, raised at the object's turn."""

    name: str
    calls: int
    reading: Future[tuple[_Fetched, RecordsRead]] | None = None
    error: SourceError | None = None


class _ObjectSync:
    """Pulls one object; everything it writes is in the caller's savepoint."""

    def __init__(
        self, session: Session, source: str, connector: Connector, records: RecordImport,
        currency: str, progress: Progress | None,
    ) -> None:  # fmt: skip
        self.session = session
        self.source = source
        self.connector = connector
        self.records = records
        self.currency = currency
        self.progress = progress
        self.matched: dict[str, int] = {}  # CRM user id → the other source's rep it is
        self._reader: ThreadPoolExecutor | None = None  # made at the first read ahead
        self._ahead: _ReadAhead | None = None
        self.lent = 0  # the calls the running object's turn made for the next one's read

    def read_ahead(self, obj: SourceObject, since: datetime | None) -> None:
        """Start reading ``obj`` now, while the store writes the object before it, when it
        is read as Arrow (a full read of an object without users): the next object's read
        then costs the sync only what the write did not cover, as in ``import_csv``."""
        before = self.connector.calls
        ahead = _ReadAhead(obj.name, 0)
        try:
            batches = self._batches(obj, since)
        except SourceError as error:
            ahead.error = error
        else:
            if batches is not None:
                # Its progress is told once read, at its turn: two objects' running counts
                # would overwrite each other on a terminal.
                if self._reader is None:
                    self._reader = ThreadPoolExecutor(1, thread_name_prefix="kpibot-sync-read")
                ahead.reading = self._reader.submit(self._read_cells, obj, batches, None)
        ahead.calls = self.lent = self.connector.calls - before
        self._ahead = ahead

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True)

    def ahead_calls(self, obj: SourceObject) -> int:
        """The calls made for ``obj``'s read while the object before it was written."""
        ahead = self._ahead
        return ahead.calls if ahead is not None and ahead.name == obj.name else 0

    def _batches(self, obj: SourceObject, since: datetime | None) -> Iterator[CellBatch] | None:
        """``obj``'s records as batches of text cells (a full read through a columnar
        connector, of an object without users), or None to read it row by row."""
        if obj.users or not isinstance(self.connector, Columnar):
            return None
        return self.connector.cell_batches(obj, since)

    def _read_cells(
        self,
        obj: SourceObject,
        batches: Iterator[CellBatch],
        progress: Callable[[int], None] | None,
    ) -> tuple[_Fetched, RecordsRead]:
        fetched = _Fetched(None)
        read = self.records.read_cells(
            f"sources.{self.source}.{obj.name}", obj.table, _mapping(obj), obj.fields,
            _cell_rows(obj, batches, fetched, progress), self.currency,
        )  # fmt: skip
        return fetched, read

    def _columnar(
        self, obj: SourceObject, since: datetime | None
    ) -> tuple[_Fetched, RecordsRead] | None:
        """``obj`` read as Arrow (from its read ahead, else now), or None to read it row by
        row."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.name == obj.name:
            if ahead.error is not None:
                raise ahead.error
            return None if ahead.reading is None else ahead.reading.result()
        batches = self._batches(obj, since)
        if batches is None:
            return None
        progress = self.progress
        told = None
        if progress is not None:
            total = self.connector.totals.get(obj.name)
            told = lambda count: progress(obj.name, count, total, False)  # noqa: E731
        return self._read_cells(obj, batches, told)

    def run(
        self, obj: SourceObject, since: datetime | None, report: ObjectReport,
        deletions_since: datetime | None,
        upcoming: tuple[SourceObject, datetime | None] | None = None,
    ) -> bool:  # fmt: skip
        """Pulls ``obj``'s records changed since ``since`` (all when None) and applies its
        deletions: after a full read, the rows it no longer named; else those the CRM lists
        since ``deletions_since`` (none read when None). Whether deletions were checked.
        The ``upcoming`` object (and its ``since``) is read ahead while this one is written."""
        self.lent = 0

        def before_write() -> None:
            if upcoming is not None:
                self.read_ahead(*upcoming)

        fetched = _Fetched(since)
        matcher = RepMatcher(self.session, self.source) if obj.users else None
        matched: dict[str, int] = {}

        def rows() -> Iterator[tuple[int, list[str]]]:
            for record in self.connector.changed(obj, since):
                fetched.count += 1
                fetched.saw(record.modified)
                if self.progress is not None and fetched.count % PROGRESS_EVERY == 0:
                    total = self.connector.totals.get(obj.name)
                    self.progress(obj.name, fetched.count, total, False)
                key = cell(record.values.get("id"))
                if matcher is not None:
                    rep = matcher.match(record.values.get("email"), record.values.get("name"))
                    if rep is not None:
                        matched[key] = rep
                        continue
                fetched.ids.append(key)
                yield len(fetched.ids), [cell(record.values.get(name)) for name in obj.fields]

        before = _count(self.session, obj.table, self.source)
        columnar = self._columnar(obj, since)
        if columnar is not None:
            arrow, read = columnar
            arrow.saw(since)
            fetched = arrow
            before_write()
            table, problems, _written = self.records.write(read)
        else:
            key = f"sources.{self.source}.{obj.name}"
            # Read and written together: the read ahead starts before the records come.
            before_write()
            table, problems, _written = self.records.table(
                key, obj.table, _mapping(obj), obj.fields, rows(), self.currency
            )
        if self.progress is not None:
            self.progress(obj.name, fetched.count, self.connector.totals.get(obj.name), True)
        report.fetched = fetched.count
        report.inserted = _inserted(self.session, obj.table, self.source, before, table.changed)
        report.updated = table.changed - report.inserted
        handed = fetched.handed()
        report.rejected = [
            Rejection(handed[p.line - 1].as_py() or f"#{p.line}", p.reason, p) for p in problems
        ]
        # Deals and leads owned by a matched user count for the rep it matched.
        self.records.known("reps", matched)
        self.matched.update(matched)
        report.matched = len(matched)
        report.deleted = merge_matched(self.session, self.source, matched)
        rows_of = Base.metadata.tables[obj.table]
        if since is not None and deletions_since is not None:
            gone, checked = list(self.connector.deleted(obj, deletions_since)), True
        elif (
            since is None
            and obj.table in FULL_READ_DELETES
            and not pc.any(pc.equal(handed, pa.scalar(""))).as_py()
        ):
            # A full read names every record: the ones it no longer names were deleted
            # (unless a record came without an id, which might have been any of them). None
            # can be gone from a table that held no row of the source (a first sync): the
            # store's rows are not read back (3M of them took 3 s).
            gone, checked = [], True
            if before:
                gone = absent_source_ids(
                    self.session, rows_of, self.source, handed.combine_chunks()
                )
        else:
            gone, checked = [], False  # skipped until the cadence is due, or cannot tell
        if gone:
            report.deleted = delete_sourced(self.session, rows_of, self.source, gone)
            self.records.forget(obj.table)
        report.high_water_mark = fetched.newest
        return checked


def sync_connector(
    session: Session,
    source: str,
    kind: str,
    connector: Connector,
    currency: str,
    fmt: Formatter,
    *,
    full: bool = False,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SourceReport:
    """Pull every object of ``connector`` into the store under ``source``; an error is kept
    in ``sync_state`` worded by ``fmt`` (the organisation's language), for ``kpibot status``."""
    report = SourceReport(source, kind, full)
    written_once(session)  # before anything is written
    state = _State(session, source)
    calls_before = connector.calls
    records = RecordImport(session, source)
    puller = _ObjectSync(session, source, connector, records, currency, progress)
    try:
        objects = connector.objects()
        for obj in objects:
            problems = RecordImport.check(f"sources.{source}.{obj.name}", obj.table, _mapping(obj))
            if problems:
                raise ConfigError(f"sources.{source}", problems)
    except SourceError as error:
        report.error = error
        _record_error(state, SOURCE_WIDE, error.worded(fmt), now())
        report.api_calls = connector.calls - calls_before
        return report
    first_reads = []  # the objects read for the first time: their history may be backfilled

    def since_of(obj: SourceObject) -> datetime | None:
        return None if full or obj.users else state.mark(obj.name)

    try:
        for index, obj in enumerate(objects):
            row = state.get(obj.name)
            since = since_of(obj)
            upcoming = None
            if index + 1 < len(objects):
                upcoming = (objects[index + 1], since_of(objects[index + 1]))
            if row.high_water_mark is None:
                report.full = True
                first_reads.append(obj)
            result = ObjectReport(obj.name, obj.table, high_water_mark=as_utc(row.high_water_mark))
            report.objects.append(result)
            checks = (
                None if obj.deletions_every is None else state.get(DELETION_CHECKS.format(obj.name))
            )
            deletions_since = _deletions_since(obj, since, checks, result, now())
            # Its read's calls made while the object before was written are its own, and the
            # next object's made in its turn are not.
            calls = connector.calls - puller.ahead_calls(obj)
            try:
                with session.begin_nested():
                    checked = puller.run(obj, since, result, deletions_since, upcoming)
            except SourceError as error:
                result.api_calls = connector.calls - calls - puller.lent
                result.error = report.error = error
                # The savepoint is gone: this object's rows and mark are as they were.
                result.high_water_mark = as_utc(row.high_water_mark)
                _record_error(state, obj.name, error.worded(fmt), now())
                break
            result.api_calls = connector.calls - calls - puller.lent
            result.finished = True
            if checks is not None and checked:
                # The next check lists deletions from the mark this sync started from: a deal
                # archived while it ran is listed again (a no-op) rather than missed.
                checks.high_water_mark = as_utc(row.high_water_mark) or result.high_water_mark
                checks.synced_at = result.deletions_checked = now()
            row.high_water_mark = result.high_water_mark
            row.synced_at = now()
            row.fetched, row.inserted, row.updated = result.fetched, result.inserted, result.updated
            row.deleted, row.rejected = result.deleted, len(result.rejected)
            row.api_calls = result.api_calls
            row.last_error = None
    finally:
        puller.close()  # waits for a read ahead still under way (after a failed object)
    if report.changed:
        at = now()
        report.data_version = bump_data_version(session, at)
        finished = {result.name for result in report.objects if result.finished}
        for obj in first_reads:
            if obj.table == "opportunities" and obj.name in finished:
                report.backfill = _backfill(session, source, connector, obj, at, puller.matched)
    report.api_calls = connector.calls - calls_before
    report.budget = connector.budget()
    _record_budget(state, [obj.name for obj in objects], report.budget)
    session.flush()
    return report


def _deletions_since(
    obj: SourceObject, since: datetime | None, checks: SyncState | None, result: ObjectReport,
    now: datetime,
) -> datetime | None:  # fmt: skip
    """The moment an incremental sync lists ``obj``'s deletions from, or None when its last
    check is more recent than its cadence (the skip is noted in ``result``)."""
    if since is None or checks is None or obj.deletions_every is None:
        return since
    last = as_utc(checks.synced_at)
    if last is not None and now - last < obj.deletions_every:
        result.deletions_checked, result.deletions_skipped_for = last, obj.deletions_every
        return None
    return as_utc(checks.high_water_mark) or since


def _backfill(
    session: Session, source: str, connector: Connector, obj: SourceObject, first: datetime,
    matched: dict[str, int],
) -> Backfilled | None:  # fmt: skip
    """The deals' states before ``first`` from the CRM's field history, if it keeps one, in a
    savepoint: a history the CRM cannot give leaves the sync as it is, and is reported."""
    if not isinstance(connector, FieldHistory):
        return None
    calls = connector.calls
    try:
        with session.begin_nested():
            result = backfill_history(
                session, source, connector.field_history(obj), first,
                _reader(session, source, obj, matched), lambda: connector.history_cut,
            )  # fmt: skip
    except SourceError as error:
        result = Backfilled(error=str(error))
    result.api_calls = connector.calls - calls
    return result


def _reader(session: Session, source: str, obj: SourceObject, matched: dict[str, int]) -> Reader:
    """A field history's values read as the import reads the object's records."""
    parsers = {
        name: field_parser(obj.table, name, _mapping(obj))
        for name in ("stage", "amount", "currency", "close_date", "probability")
    }
    reps = session.execute(select(Rep.source_id, Rep.id).where(Rep.source == source))
    owners = {str(key): int(rep) for key, rep in reps}
    owners.update(matched)

    def read(name: str, raw: Any) -> dict[str, Any]:
        text = cell(raw)
        if name == "owner":
            if text and text not in owners:
                raise ValueError(f"unknown owner {text!r} (no rep with that id)")
            return {"owner_id": owners.get(text)}
        if name == "currency" and not text:
            return {}  # the sync reads a deal without one in the source's currency
        if name == "stage":
            if not text:
                raise ValueError("an empty stage")
            stage, status = parsers[name](text)
            return {"stage": stage, "status": status}
        return {name: parsers[name](text) if text else None}

    return read


def _record_error(state: _State, name: str, message: str, at: datetime) -> None:
    row = state.get(name)
    row.last_error = message[:4000]
    row.error_at = at


def _record_budget(state: _State, names: list[str], budget: Budget | None) -> None:
    if budget is None:
        return
    for name in names:
        row = state.get(name)
        row.api_used, row.api_limit = budget.used, budget.limit


def sync_csv(
    session: Session, source: str, spec: CsvSource, base_dir: Path, currency: str
) -> SourceReport:
    """A CSV source (under ``import.csv`` or ``sources`` with ``kind: csv``): every file,
    every time; a mapping that does not fit the files raises ``ConfigError``."""
    report = SourceReport(source, "csv", full=True)
    before = {
        table: _count(session, table, source)
        for table in ("teams", "reps", "accounts", "opportunities", "leads", "spend", "surveys")
    }
    imported = import_csv(session, source, spec, base_dir, currency)
    for table in imported.tables:
        inserted = _inserted(session, table.table, source, before[table.table], table.changed)
        before[table.table] += inserted
        result = ObjectReport(table.file, table.table, fetched=table.read, finished=True)
        result.inserted = inserted
        result.updated = max(table.changed - inserted, 0)
        result.deleted = table.removed
        result.rejected = [
            Rejection(f"line {p.line}", p.reason, p)
            for p in imported.problems
            if p.file == table.file
        ]
        report.objects.append(result)
    report.data_version = imported.data_version
    return report
