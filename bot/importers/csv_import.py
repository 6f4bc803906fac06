"""``kpibot import csv SOURCE``: CSV exports mapped onto the canonical model by the config alone.

A source lives under ``import.csv.<name>`` in the config (``bot.settings.CsvSource``)::

    import:
      csv:
        maven:
          base_dir: ../data        # relative to the config file's directory
          currency: USD            # for amounts without a currency column (else the base one)
          teams:
            file: sales_teams.csv
            columns: {name: manager, manager: manager, region: regional_office}
          reps:
            file: sales_teams.csv
            columns: {name: sales_agent, team: manager, region: regional_office}
          opportunities:
            file: sales_pipeline.csv
            columns: {id: opportunity_id, owner: sales_agent, stage: deal_stage, ...}
            stages: {Prospecting: open, Engaging: open, Won: won, Lost: lost}
            date_format: "%d/%m/%Y"   # strptime format; ISO 8601 dates when absent
            delimiter: ";"            # default ","
            decimal_separator: ","    # default "."
            encoding: utf-8-sig       # the default; also reads plain UTF-8

Each table entry names one file and maps canonical fields (the keys of ``columns``) onto the
file's header names (the values). The fields, required ones marked ``*``:

- ``teams``: id (default: the name), name*, region, manager
- ``reps``: id (default: the name), name*, email, team, region, active_from, active_to
- ``accounts``: id (default: the name), name*, segment, industry, country
- ``opportunities``: id*, name, owner, account, product, stage*, amount, currency, created_at,
  close_date*, probability, forecast_category (``close_date`` must be mapped; it may be empty
  on open deals)
- ``leads``: id*, created_at*, owner, converted_at, channel, account
- ``spend``: id (default: a hash of the mapped cells, so two lines that agree on them count
  once: map an id if the export can repeat one), date*, channel, amount*, currency, team, region
- ``surveys``: id*, date*, account, owner, kind* (csat or nps), score*

How values are read:

- Blank lines are ignored; a row with more or fewer cells than the header is bad.
- An empty cell is NULL; an empty required field makes the row bad. Text is stored as written
  (``product`` too: it names no table, so Maven's ``GTXPro`` and ``GTX Pro`` stay apart), but
  on one line: line breaks and control characters become a space, and invisible characters
  (bidi overrides, zero-width spaces) are dropped (``bot.crm_text``), so that no name can start
  a line of its own in a message. A NUL character makes the row bad, as does a byte that is not
  in the file's ``encoding`` in a mapped cell (bytes in cells the mapping does not name are
  left alone).
- ``stages`` maps each stage name (case-insensitive) onto open, won or lost; an unknown stage
  makes the row bad, and so does a won or lost deal without a close date, or a won deal
  without an amount (when amounts are mapped).
- Dates are ISO 8601 (a date-time gives its date as written) unless ``date_format`` is set;
  a date outside 1900-01-01 to 2199-12-31 makes the row bad, and so does an amount of 10^13 or
  more (``metrics.limits``: what the engine holds).
- Amounts: ``1054``, ``1054.5``, ``1,054.50``, ``$1,054.50``; with ``decimal_separator: ","``
  also ``1 054,50`` and ``1.054,50``. Thousands separators are accepted only in groups of three,
  so ``1,5`` is refused rather than read as 15. The currency comes from the ``currency``
  column, else the source's ``currency``, else the organisation's.
- ``probability`` is 0 to 1, or a percentage (``35``, ``35%``): values above 1 are percentages.

References (``owner``, ``team``, ``account``) are resolved within the same source, by id first
and then by name. An unknown owner makes the row bad: creating a rep from a typo would put
deals outside every team. An unknown team or account is created under that name: a deal's
account is a customer even when the accounts export misses it, and the report lists the names
created so that a typo shows. Reps have no region of their own: a rep's ``region`` is the region
given to a team created from the reps file.

Tables are imported in the order teams, reps, accounts, opportunities, leads, spend, surveys,
so one file can feed several tables (Maven's ``sales_teams.csv`` gives both reps and their
teams). A row that repeats an id with the same values is merged into the first (a team appears
on every one of its reps' rows); with different values it is bad. A mapping writes only the
columns it names, so values set elsewhere survive a re-import, and an import never deletes.

Every bad row is reported with its file, physical line (the header is line 1) and the reason;
the good rows still land. That holds for rows the csv module cannot read too: a cell over its
field-size limit, or a quote that never closes, costs its row, and the lines such a row ran over
are read again as rows of their own instead of being swallowed into one cell. Configuration
mistakes (a missing file, an unknown field, a header that is not in the file) raise
``ConfigError`` before anything is written. The caller owns the transaction; the data version is
bumped once, at the end, only if a row changed.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from bot.importers.canonical import KINDS, Kind, mapping_problems
from bot.importers.cells import CellRules, Failures, Mask, as_text, flags, nulls, read_cells
from bot.importers.csv_blocks import (
    CsvFormat,
    TextBlock,
    Unreadable,
    header,
    read_blocks,
    text_block,
)
from bot.importers.reasons import Reason
from bot.importers.values import KINDS_BY_NAME, Parser, field_limit, parser
from bot.settings import ColumnMap, ConfigError, ConfigProblem, CsvSource
from bot.store.database import bump_data_version
from bot.store.first_load import written_once
from bot.store.models import Base
from bot.store.upsert import (
    KeyRuns,
    absent_source_ids,
    delete_sourced,
    ids_by_source_id,
    key_runs,
    large_cache,
    upsert,
)

_NAME_LOOKUP_BATCH = 500
_CREATED_SHOWN = 5
# Rows of a CRM's records gathered into one block of text columns.
_RECORDS_PER_BLOCK = 50_000


_CURRENCY_KINDS = frozenset({"opportunities", "spend"})


@dataclass(frozen=True)
class RowProblem:
    """A row that was skipped: its file, physical line (the header is line 1) and why, in
    English (for logs) and as a catalog code (``why``, worded in the organisation's language)."""

    file: str
    line: int
    reason: str
    why: Reason | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, file: str, line: int, why: Reason) -> RowProblem:
        return cls(file, line, str(why), why)

    def worded(self, language: str) -> str:
        return self.reason if self.why is None else self.why.words(language)


@dataclass(frozen=True)
class TableReport:
    """What one mapping (one file into one table) did."""

    table: str
    file: str
    read: int  # data rows in the file (blank lines are not rows)
    imported: int  # rows that landed: read = imported + skipped
    skipped: int
    distinct: int  # distinct ids among the imported rows (repeats are merged)
    changed: int  # rows inserted or updated in the store
    created: tuple[str, ...] = ()  # teams or accounts this file named and that did not exist
    created_table: str = ""
    removed: int = 0  # opportunities the store held that the file no longer has
    kept: int = 0  # opportunities missing from a file with unidentified rows: not removed

    def summary(self) -> str:
        imported = f"{self.imported} imported"
        if self.distinct != self.imported:
            imported += f" as {self.distinct} {self.table}"
        line = (
            f"{self.file} → {self.table}: {self.read} rows read, {imported}, "
            f"{self.skipped} skipped; {self.changed} new or changed"
        )
        if self.removed:
            line += f"; {self.removed} removed (no longer in the file)"
        if self.kept:
            line += f"; {self.kept} missing from the file kept (some rows have no readable id)"
        if self.created:
            shown = ", ".join(self.created[:_CREATED_SHOWN])
            more = len(self.created) - _CREATED_SHOWN
            if more > 0:
                shown += f" and {more} more"
            line += f"; created {len(self.created)} {self.created_table} it names: {shown}"
        return line


@dataclass(frozen=True)
class ImportReport:
    source: str
    tables: tuple[TableReport, ...]
    problems: tuple[RowProblem, ...]
    data_version: int | None  # the new data version, None when nothing changed

    @property
    def changed(self) -> bool:
        return self.data_version is not None

    def summary(self) -> str:
        """One line per file and table, then the outcome; the problems are listed apart."""
        lines = [table.summary() for table in self.tables]
        read = sum(t.read for t in self.tables)
        skipped = sum(t.skipped for t in self.tables)
        outcome = (
            f"data version {self.data_version}" if self.changed else "nothing changed in the store"
        )
        lines.append(f"{self.source}: {read} rows read, {skipped} skipped; {outcome}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Planning: the config checked against the files before anything is written


def field_parser(table: str, field: str, mapping: ColumnMap) -> Parser:
    """How the import reads ``field`` of ``table`` under ``mapping``: text → value, raising
    ``ValueError`` with the reason (a stage parses to its name and status)."""
    return parser(KINDS_BY_NAME[table], field, mapping)


@dataclass(frozen=True)
class _Plan:
    kind: Kind
    mapping: ColumnMap
    width: int  # fields in the header
    offsets: tuple[int, ...]  # of each mapped column, in the mapping's order
    rules: tuple[CellRules, ...]
    currency: str

    @property
    def table(self) -> Table:
        return Base.metadata.tables[self.kind.name]

    def mapped(self, field: str) -> bool:
        return field in self.mapping.columns


def _plan(
    key: str,
    kind: Kind,
    mapping: ColumnMap,
    names: Sequence[str],
    currency: str,
    problems: list[str],
) -> _Plan | None:
    """``mapping`` checked against the names of the cells each row will have."""
    offsets = []
    rules = []
    for field, column_name in mapping.columns.items():
        if column_name.strip() not in names:
            problems.append(
                f"{key}.columns.{field}: no column {column_name!r} in {mapping.file} "
                f"(its columns: {', '.join(names) or 'none'})"
            )
            continue
        offsets.append(names.index(column_name.strip()))
        rules.append(
            CellRules(
                field=field,
                header=column_name,
                field_type=kind.fields[field],
                parse=parser(kind, field, mapping),
                required=field in kind.required,
                limit=field_limit(kind, field),
                decimal_separator=mapping.decimal_separator,
                encoding=mapping.encoding,
            )
        )
    if len(rules) < len(mapping.columns):
        return None
    return _Plan(kind, mapping, len(names), tuple(offsets), tuple(rules), currency)


def _plans(
    name: str, source: CsvSource, base_dir: Path, base_currency: str
) -> list[tuple[_Plan, Path, int]]:
    """Each mapping's plan, file and the byte its rows start at."""
    problems: list[str] = []
    plans = []
    missing: list[ConfigProblem] = []  # files that are not there, worded in the file's language
    for kind in KINDS:
        mapping: ColumnMap | None = getattr(source, kind.name)
        if mapping is None:
            continue
        key = f"import.csv.{name}.{kind.name}"
        found = mapping_problems(key, kind, mapping)
        problems.extend(found)
        path = base_dir / mapping.file
        if found:
            continue
        if not path.is_file():
            missing.append(ConfigProblem(f"{key}.file", "no_file", {"path": str(path)}))
            continue
        try:
            # Decoded like the rows: a bad byte further down the file is that row's problem.
            names, body = header(path, mapping.encoding, mapping.delimiter)
        except (UnicodeDecodeError, csv.Error) as error:
            problems.append(f"{key}.file: cannot read the header of {path}: {error}")
            continue
        plan = _plan(key, kind, mapping, names, source.currency or base_currency, problems)
        if plan is not None:
            plans.append((plan, path, body))
    if missing or problems:
        raise ConfigError(f"import.csv.{name} ({base_dir})", [*missing, *problems])
    return plans


def _row_hash(fields: Sequence[str]) -> str:
    # surrogateescape: a row with an undecodable byte is bad, but gets an id like the others.
    data = "\x1f".join(fields).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_AMBIGUOUS = -1


class _Directory:
    """Database ids of one table's rows of this source, found by source id, else by name."""

    def __init__(self, session: Session, table: Table, source: str) -> None:
        self._session = session
        self._table = table
        self._source = source
        self._ids: dict[str, int] = {}

    def unknown(self, keys: set[str]) -> set[str]:
        """Look ``keys`` up; return those that name no row."""
        todo = [key for key in keys if key not in self._ids]
        if todo:
            self._ids.update(ids_by_source_id(self._session, self._table, self._source, todo))
            self._by_name([key for key in todo if key not in self._ids])
        return {key for key in keys if key not in self._ids}

    def _by_name(self, names: list[str]) -> None:
        table = self._table
        for start in range(0, len(names), _NAME_LOOKUP_BATCH):
            query = select(table.c.name, table.c.id).where(
                table.c.source == self._source,
                table.c.name.in_(names[start : start + _NAME_LOOKUP_BATCH]),
            )
            for name, row_id in self._session.execute(query):
                self._ids[name] = _AMBIGUOUS if name in self._ids else int(row_id)

    def add(self, ids: Mapping[str, int]) -> None:
        """Keys that name rows of other sources, found by the caller."""
        self._ids.update(ids)

    @property
    def ids(self) -> Mapping[str, int]:
        """Every key looked up so far that names a row (``_AMBIGUOUS`` for a shared name)."""
        return self._ids

    def create(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows named by other files; returns how many were written."""
        written = upsert(self._session, self._table, rows)
        self.unknown({str(row["source_id"]) for row in rows})
        return written


# ---------------------------------------------------------------------------------------------
# Importing one mapping


@dataclass
class _ReadFile:
    """One file's rows read and checked a cell at a time, before anything is looked up in or
    written to the store: the line each row starts on, its values, its bad cells, the rows
    that could not be split into cells, and the rows in id order (sorted while the store
    writes the file before: 0.8 s for the benchmark's 3M ids)."""

    lines: npt.NDArray[np.int64]
    values: dict[str, pa.Array[Any]]
    failures: Failures
    unreadable: list[Unreadable]
    by_id: KeyRuns


def _read(
    plan: _Plan, blocks: Iterable[TextBlock], unreadable: list[Unreadable], *, ahead: bool = True
) -> _ReadFile:
    """Read ``blocks`` into values with ``plan``'s rules; touches no session, so that the next
    file can be read while the store writes the previous one (``import_csv``). A block is read
    as it comes, and its text then goes; with ``ahead``, the next block is made on a thread
    meanwhile (a file's blocks split, a query's batches fetched: for the benchmark's million
    deals from PostgreSQL, 1.1 s of fetching and 1.0 s of reading that came one after the
    other). Blocks made by Python code (a CRM's records) are made in the caller's thread."""
    failures = Failures()
    lines: list[npt.NDArray[np.int64]] = []
    parts: dict[str, list[pa.Array[Any]]] = {}
    count = 0
    # Closed at once if a block's reading fails: the block made ahead and its maker (a query's
    # cursor) go then, not whenever the traceback lets go of them.
    with closing(_made_ahead(blocks) if ahead else (block for block in blocks)) as coming:
        for block in coming:
            found = Failures()
            values: dict[str, pa.Array[Any]] = {}
            for rules, cells, flagged in zip(plan.rules, block.cells, block.flagged, strict=True):
                values.update(read_cells(rules, cells, flagged, found))
            _complete(plan, block, values, found)
            failures.extend(found, count)
            lines.append(block.lines)
            count += len(block.lines)
            for name, column in values.items():
                parts.setdefault(name, []).append(column)
    if not lines:  # no rows: the columns still have their types
        return _read(plan, [_empty_block(len(plan.rules))], unreadable, ahead=False)
    values = {name: pa.concat_arrays(columns) for name, columns in parts.items()}
    read = np.concatenate(lines)
    return _ReadFile(read, values, failures, unreadable, key_runs([values["id"]]))


def _empty_block(columns: int) -> TextBlock:
    return TextBlock(
        np.zeros(0, dtype=np.int64), [pa.array([], pa.string())] * columns, [{}] * columns
    )


def _made_ahead(blocks: Iterable[TextBlock]) -> Generator[TextBlock, None, None]:
    """``blocks``, each next one made on a thread while the caller reads the one before."""
    made = iter(blocks)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpibot-blocks") as maker:
            coming = maker.submit(next, made, None)
            while (block := coming.result()) is not None:
                coming = maker.submit(next, made, None)
                yield block
    finally:
        # The blocks' own cleanup (a query's cursor closed) when the reading stops early: the
        # caller's frame, which a traceback keeps, still holds them.
        close = getattr(made, "close", None)
        if close is not None:
            close()


@dataclass
class _Tally:
    changed: int = 0
    created_rows: int = 0
    removed: int = 0


class _Import:
    """One run of ``import_csv``: the session, the directories and the problems so far."""

    def __init__(self, session: Session, source: str, position: str = "line") -> None:
        self.session = session
        self.source = source
        self.position = position  # what a row's number counts: a file's lines, or records
        self.problems: list[RowProblem] = []
        self._directories: dict[str, _Directory] = {}

    def directory(self, table: str) -> _Directory:
        if table not in self._directories:
            self._directories[table] = _Directory(
                self.session, Base.metadata.tables[table], self.source
            )
        return self._directories[table]

    def forget(self, table: str) -> None:
        self._directories.pop(table, None)

    def write(
        self, plan: _Plan, loaded: _ReadFile, *, full_export: bool = False
    ) -> tuple[TableReport, int]:
        """Resolve, check and write the rows ``_read`` made of one file (or other rows) into
        its table, a column at a time; returns its report and the rows it wrote. In a
        ``full_export``, opportunities the rows no longer name were deleted."""
        tally = _Tally()
        created: list[str] = []
        lines, values, failures = loaded.lines, loaded.values, loaded.failures
        unreadable = loaded.unreadable
        count = len(lines)
        ids = values["id"]
        # Rows the reader could not split into cells are rows too, of unknown id.
        unidentified = len(unreadable) + ids.null_count
        # A deal a full export no longer names was deleted, unless some rows could not be
        # identified; every id the file names counts, bad rows included.
        absent: list[str] = []
        if full_export and plan.kind.name == "opportunities":
            absent = absent_source_ids(self.session, plan.table, self.source, ids)
        self._resolve(plan, values, failures, created, tally)
        stored = self._stored(plan, values, count)
        written, merged = self._distinct(stored, loaded.by_id, lines, failures)
        # Every row good, distinct and already in id order: no copy.
        whole = len(written) == count and bool((written[1:] > written[:-1]).all())
        chosen = stored if whole else stored.take(written)
        del stored
        tally.changed = upsert(self.session, plan.table, chosen)
        del chosen
        kept = 0
        if absent and unidentified:
            kept = len(absent)
        elif absent:
            tally.removed = delete_sourced(self.session, plan.table, self.source, absent)
        file = plan.mapping.file
        problems = [RowProblem.of(file, problem.line, problem.reason) for problem in unreadable]
        problems += [
            RowProblem.of(file, int(lines[position]), reason)
            for position, reason in failures.reasons.items()
        ]
        self.problems.extend(sorted(problems, key=lambda problem: problem.line))
        read = count + len(unreadable)
        skipped = read - len(written) - merged
        creating = [
            ref.table for name, ref in plan.kind.refs.items() if ref.create and plan.mapped(name)
        ]
        report = TableReport(
            table=plan.kind.name,
            file=file,
            read=read,
            imported=read - skipped,
            skipped=skipped,
            distinct=len(written),
            changed=tally.changed,
            removed=tally.removed,
            kept=kept,
            created=tuple(created),
            created_table=creating[0] if creating else "",
        )
        return report, tally.changed + tally.created_rows + tally.removed

    def _resolve(
        self,
        plan: _Plan,
        values: dict[str, pa.Array[Any]],
        failures: Failures,
        created: list[str],
        tally: _Tally,
    ) -> None:
        """Add a column of database ids for each reference, creating the teams and accounts
        that good rows name and that do not exist yet. Each distinct key is looked up once."""
        for field, ref in plan.kind.refs.items():
            keys = values.get(field)
            if keys is None:
                continue
            count = len(keys)
            directory = self.directory(ref.table)
            encoded = keys.dictionary_encode()
            distinct = [str(key) for key in encoded.dictionary.to_pylist()]
            indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            good = np.flatnonzero(~failures.mask(count) & (indices >= 0))
            # The first good row naming each key (for the values a created row carries): the
            # least position per key, with no sort of the rows (np.unique's took 0.4-1.1 s of
            # the benchmark's 3M rows).
            first = np.full(len(distinct), count, dtype=np.int64)
            np.minimum.at(first, indices[good], good)
            used = np.flatnonzero(first < count)
            missing = directory.unknown({distinct[i] for i in used.tolist()})
            if ref.create and missing:
                new = sorted(missing)
                firsts = dict(zip(used.tolist(), first[used].tolist(), strict=True))
                position_of = {distinct[i]: firsts[i] for i in firsts}
                created_rows = []
                for key in new:
                    row: dict[str, Any] = {"source": self.source, "source_id": key, "name": key}
                    for carried in ref.carried:
                        column = values.get(carried)
                        row[carried] = None if column is None else column[position_of[key]].as_py()
                    created_rows.append(row)
                tally.created_rows += directory.create(created_rows)
                created.extend(new)
            found = directory.ids
            resolved = [found.get(key) for key in distinct]
            for number, (key, row_id) in enumerate(zip(distinct, resolved, strict=True)):
                if row_id is not None and row_id != _AMBIGUOUS:
                    continue
                if row_id is None:
                    reason = Reason(f"unknown_{ref.table}", {"field": field, "value": repr(key)})
                else:
                    reason = Reason(f"ambiguous_{ref.table}", {"field": field, "value": repr(key)})
                    resolved[number] = None
                positions = np.flatnonzero(indices == number)
                failures.add(positions, [reason] * len(positions))
            values[ref.column] = pa.array(resolved, pa.int64()).take(encoded.indices)

    def _stored(self, plan: _Plan, values: Mapping[str, pa.Array[Any]], count: int) -> pa.Table:
        """Every row as the store's columns (only those the mapping names)."""
        data: dict[str, pa.Array[Any]] = {
            "source": pa.repeat(pa.scalar(self.source), count),
            "source_id": values["id"],
        }
        for rules in plan.rules:
            field = rules.field
            if field in plan.kind.refs:
                data[plan.kind.refs[field].column] = values[plan.kind.refs[field].column]
            elif field not in plan.kind.unstored and field not in ("id", "stage", "currency"):
                data[field] = values[field]
        if "stage" in values:
            status = values["stage_status"]
            data["stage"] = values["stage"]
            data["is_closed"] = pa.array(flags(pc.not_equal(status, pa.scalar("open"))))
            data["is_won"] = pa.array(flags(pc.equal(status, pa.scalar("won"))))
        if plan.kind.name in _CURRENCY_KINDS:
            currencies = values.get("currency", nulls(count, pa.string()))
            data["currency"] = currencies.fill_null(plan.currency)
        return pa.table(data)

    def _distinct(
        self,
        stored: pa.Table,
        by_id: KeyRuns,
        lines: npt.NDArray[np.int64],
        failures: Failures,
    ) -> tuple[npt.NDArray[np.int64], int]:
        """The good rows to write, one per id, in id order (as the store's unique index
        holds them: a first import's insertions append to it), and how many repeats were
        merged into them: a row that repeats an id with the same values is merged into the
        first, with other values it is bad. ``by_id``: every row's runs of ids."""
        good = ~failures.mask(stored.num_rows)
        runs = by_id if good.all() else by_id.among(good)
        written = runs.firsts()
        again, firsts = runs.repeats()
        if not len(again):
            return written, 0
        earlier = stored.take(firsts).to_pylist()
        later = stored.take(again).to_pylist()
        merged = 0
        differing: list[int] = []
        reasons: list[Reason] = []
        for was, row, position, first_position in zip(
            earlier, later, again.tolist(), firsts.tolist(), strict=True
        ):
            if was == row:
                merged += 1
            else:
                differing.append(position)
                key, line = repr(row["source_id"]), int(lines[first_position])
                reasons.append(Reason(f"repeated_{self.position}", {"value": key, "line": line}))
        failures.add(differing, reasons)
        return written, merged


def _complete(
    plan: _Plan, rows: TextBlock, values: dict[str, pa.Array[Any]], failures: Failures
) -> None:
    """Default ids, and the checks that need two columns: a closed deal has a close date, a
    won one an amount."""
    count = len(rows.lines)
    ids = values.setdefault("id", nulls(count, pa.string()))
    if plan.kind.id_default is not None and ids.null_count:
        if plan.kind.id_default == "hash":
            # The mapped cells only, by field name: a column added to the export, or the
            # mapping written in another order, must not give every row a new id.
            order = sorted(range(len(plan.rules)), key=lambda i: plan.rules[i].field)
            missing = np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))
            cells = [as_text(rows.cells[i].take(missing)).to_pylist() for i in order]
            hashes = [_row_hash([cell.strip() for cell in row]) for row in zip(*cells, strict=True)]
            filled = ids.to_pylist()
            for position, digest in zip(missing.tolist(), hashes, strict=True):
                filled[position] = digest
            values["id"] = pa.array(filled, pa.string())
        elif "name" in values:
            values["id"] = pc.coalesce(ids, values["name"])
    if "stage" in values:
        status = values["stage_status"]
        closed = flags(pc.not_equal(status, pa.scalar("open")))
        header = plan.mapping.columns["close_date"]
        _fail_where(
            closed & flags(values["close_date"].is_null()),
            values["stage"],
            lambda stage: Reason("no_close_date", {"stage": stage, "header": header}),
            failures,
        )
        if "amount" in values:
            header = plan.mapping.columns["amount"]
            won = flags(pc.equal(status, pa.scalar("won")))
            _fail_where(
                won & flags(values["amount"].is_null()),
                values["stage"],
                lambda stage: Reason("no_amount", {"stage": stage, "header": header}),
                failures,
            )


def _fail_where(
    where: Mask, stages: pa.Array[Any], reason: Callable[[str], Reason], failures: Failures
) -> None:
    positions = np.flatnonzero(where)
    if len(positions):
        names = stages.take(positions).to_pylist()
        failures.add(positions, [reason(str(name)) for name in names])


@contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """Keep the cycle collector off the objects that existed before the import (modules,
    caches): each chunk lives long enough to trigger full collections, and rescanning the
    whole heap every time took a third of the import's time."""
    if gc.get_freeze_count():  # someone froze the heap on purpose: leave it as it is
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def import_csv(
    session: Session, source_name: str, source: CsvSource, base_dir: Path, base_currency: str
) -> ImportReport:
    """Import every file of ``source`` into the store, in the caller's transaction.

    Raises ``ConfigError`` (before writing anything) when the mapping does not fit the files.
    """
    plans = _plans(source_name, source, base_dir, base_currency)
    run = _Import(session, source_name)
    tables = []
    written = 0

    def read(plan: _Plan, path: Path, body: int) -> _ReadFile:
        mapping = plan.mapping
        form = CsvFormat(path, mapping.encoding, mapping.delimiter, plan.width, plan.offsets)
        unreadable: list[Unreadable] = []
        return _read(plan, read_blocks(form, body, unreadable), unreadable)

    written_once(session)  # before anything is written
    # The next file is read on a second thread while this one is written: SQLite's writes
    # and pyarrow's reading release the GIL, so the two overlap on two cores. One file ahead
    # at most, so memory holds no more than two files' values.
    with (
        _collector_skips_older_objects(),
        large_cache(session.connection()),  # for the history written at the end too
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpibot-read") as reader,
    ):
        ahead = reader.submit(read, *plans[0]) if plans else None
        for position, (plan, _path, _body) in enumerate(plans):
            assert ahead is not None
            done = ahead.result()
            ahead = reader.submit(read, *plans[position + 1]) if position + 1 < len(plans) else None
            try:
                # A CSV file is the whole export, every time.
                report, rows = run.write(plan, done, full_export=True)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                raise
            del done
            tables.append(report)
            written += rows
        version = bump_data_version(session) if written else None
    return ImportReport(source_name, tuple(tables), tuple(run.problems), version)


@dataclass(frozen=True)
class RecordsRead:
    """Records read and checked by ``RecordImport`` (``read_cells``, or inside ``table``),
    not yet written."""

    plan: _Plan
    loaded: _ReadFile


class RecordImport:
    """Rows that come from elsewhere than a file (a CRM's records, a query's rows) through the
    CSV import's parsing, references, checks and upsert: one validation for every source.

    Each row is a list of cells (text, empty for none) named by ``header``; its "line" is
    whatever locates it for the caller (a position in the stream). One instance per sync, in
    the caller's transaction; the caller bumps the data version."""

    def __init__(self, session: Session, source: str) -> None:
        self._import = _Import(session, source, position="record")

    @staticmethod
    def check(key: str, table: str, mapping: ColumnMap) -> list[str]:
        """What is wrong with ``mapping`` for ``table`` (config problems under ``key``)."""
        return mapping_problems(key, KINDS_BY_NAME[table], mapping)

    def table(
        self,
        key: str,
        table: str,
        mapping: ColumnMap,
        header: Sequence[str],
        rows: Iterable[tuple[int, list[str]]],
        currency: str,
    ) -> tuple[TableReport, list[RowProblem], int]:
        """Import ``rows`` into ``table``: its report, the bad rows, and the rows written
        (created teams and accounts included). Raises ``ConfigError`` for a mapping that names
        cells the rows do not have."""
        plan = self._plan(key, table, mapping, header, currency)
        unreadable: list[Unreadable] = []
        loaded = _read(plan, _record_blocks(plan, rows, unreadable), unreadable, ahead=False)
        return self.write(RecordsRead(plan, loaded))

    def read_cells(
        self,
        key: str,
        table: str,
        mapping: ColumnMap,
        header: Sequence[str],
        batches: Iterable[pa.RecordBatch],
        currency: str,
    ) -> RecordsRead:
        """As ``table``'s reading half, for records read as batches of text cells
        (``bot.sources.cells``): a column per name of ``header``, each record's "line" its
        position among them. It touches no session, so that a sync can read an object while
        the store writes the one before (as ``import_csv`` reads its next file)."""
        plan = self._plan(key, table, mapping, header, currency)
        return RecordsRead(plan, _read(plan, _cell_blocks(plan, header, batches), []))

    def write(self, read: RecordsRead) -> tuple[TableReport, list[RowProblem], int]:
        """What ``read_cells`` read, resolved, checked and written in the session's
        transaction: its report, the bad rows, and the rows written (as ``table``)."""
        before = len(self._import.problems)
        report, written = self._import.write(read.plan, read.loaded)
        return report, self._import.problems[before:], written

    def _plan(
        self, key: str, table: str, mapping: ColumnMap, header: Sequence[str], currency: str
    ) -> _Plan:
        problems = self.check(key, table, mapping)
        plan = _plan(key, KINDS_BY_NAME[table], mapping, header, currency, problems)
        if plan is None or problems:
            raise ConfigError(key, problems)
        return plan

    def forget(self, table: str) -> None:
        """Drop what is known of ``table``'s rows (after deleting some)."""
        self._import.forget(table)

    def known(self, table: str, ids: Mapping[str, int]) -> None:
        """Resolve these keys to these rows of ``table`` (database ids), which other sources
        hold: a CRM's users matched to reps by email (``bot.sources.owners``)."""
        self._import.directory(table).add(ids)


def _cell_blocks(
    plan: _Plan, header: Sequence[str], batches: Iterable[pa.RecordBatch]
) -> Iterator[TextBlock]:
    """Batches of text cells as blocks, each record's line its position among them (from 1)."""
    line = 1
    for batch in batches:
        lines = np.arange(line, line + batch.num_rows, dtype=np.int64)
        line += batch.num_rows
        cells = [batch.column(header[offset]) for offset in plan.offsets]
        yield TextBlock(lines, cells, [{} for _ in plan.offsets])


def _record_blocks(
    plan: _Plan, rows: Iterable[tuple[int, list[str]]], unreadable: list[Unreadable]
) -> Iterator[TextBlock]:
    """A CRM's records (or a query's rows) as blocks of text columns; one of the wrong width
    goes to ``unreadable``."""
    batch: list[tuple[int, list[str]]] = []
    for line, fields in rows:
        if len(fields) != plan.width:
            unreadable.append(
                Unreadable(line, Reason("width", {"fields": len(fields), "width": plan.width}))
            )
            continue
        batch.append((line, fields))
        if len(batch) >= _RECORDS_PER_BLOCK:
            yield text_block(batch, plan.offsets, plan.mapping.encoding)
            batch = []
    if batch:
        yield text_block(batch, plan.offsets, plan.mapping.encoding)
