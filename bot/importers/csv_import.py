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
import functools
import gc
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from sqlalchemy import String, Table, select
from sqlalchemy.orm import Session

from bot.crm_text import one_line
from bot.importers.canonical import KINDS, FieldType, Kind, mapping_problems
from bot.settings import ColumnMap, ConfigError, ConfigProblem, CsvSource
from bot.store.database import bump_data_version
from bot.store.models import Base, Opportunity
from bot.store.upsert import delete_sourced, ids_by_source_id, upsert
from metrics.limits import amount_problem, date_problem

# Rows parsed, resolved and written together: bounds memory on big files while keeping the
# reference lookups and upserts in bulk.
CHUNK_ROWS = 20_000
# Distinct date strings remembered per column: a year of dates is a few hundred strings, so
# parsing each once makes date columns nearly free; date-times would grow it without bound.
_DATE_CACHE_LIMIT = 50_000
_NAME_LOOKUP_BATCH = 500
_CREATED_SHOWN = 5


_CURRENCY_KINDS = frozenset({"opportunities", "spend"})
_KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class RowProblem:
    """A row that was skipped: its file, physical line (the header is line 1) and why."""

    file: str
    line: int
    reason: str


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
# Reading values


Parser = Callable[[str], Any]


def _date_parser(date_format: str | None) -> Parser:
    cache: dict[str, date] = {}

    def parse(raw: str) -> date:
        found = cache.get(raw)
        if found is not None:
            return found
        try:
            if date_format is not None:
                value = datetime.strptime(raw, date_format).date()
            else:
                try:
                    value = date.fromisoformat(raw)
                except ValueError:
                    value = datetime.fromisoformat(raw).date()
        except ValueError:
            expected = date_format or "YYYY-MM-DD"
            raise ValueError(f"unparseable date {raw!r} (expected {expected})") from None
        # Placeholders (0001-01-01, 9999-12-31) and typos (0202-11-02) that pandas cannot hold.
        problem = date_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if len(cache) < _DATE_CACHE_LIMIT:
            cache[raw] = value
        return value

    return parse


def _number_pattern(decimal_separator: str, grouped: bool) -> re.Pattern[str]:
    point = re.escape(decimal_separator)
    group = r"[,\u00a0\u202f ']" if decimal_separator == "." else r"[.\u00a0\u202f ']"
    digits = rf"\d{{1,3}}(?:{group}\d{{3}})+|\d+" if grouped else r"\d+"
    return re.compile(rf"([-+]?)[$€£]?\s*({digits})(?:{point}(\d*))?\s*[$€£]?")


_NO_GROUPS = str.maketrans("", "", ",.\u00a0\u202f '")


def _decimal(match: re.Match[str]) -> Decimal:
    sign, whole, fraction = match.groups()
    return Decimal(f"{sign}{whole.translate(_NO_GROUPS)}.{fraction or '0'}")


def _amount_parser(decimal_separator: str) -> Parser:
    pattern = _number_pattern(decimal_separator, grouped=True)

    def parse(raw: str) -> Decimal:
        # Most exports write plain whole numbers: skip the pattern for them.
        if raw.isascii() and raw.isdigit():
            value = Decimal(raw)
        else:
            match = pattern.fullmatch(raw)
            if match is None:
                raise ValueError(f"unparseable amount {raw!r}")
            value = _decimal(match)
        problem = amount_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return parse


def _number_parser(decimal_separator: str) -> Parser:
    pattern = _number_pattern(decimal_separator, grouped=False)

    def parse(raw: str) -> float:
        match = pattern.fullmatch(raw)
        if match is None:
            raise ValueError(f"unparseable number {raw!r}")
        return float(_decimal(match))

    return parse


def _probability_parser(decimal_separator: str) -> Parser:
    number = _number_parser(decimal_separator)

    def parse(raw: str) -> float:
        percent = raw.endswith("%")
        value: float = number(raw.removesuffix("%").strip())
        if percent or value > 1:
            value /= 100
        if not 0 <= value <= 1:
            raise ValueError(f"probability {raw!r} is not between 0 and 1 (or 0 and 100 %)")
        return value

    return parse


def _stage_parser(stages: Mapping[str, str]) -> Parser:
    statuses = {name.strip().casefold(): status for name, status in stages.items()}
    known = ", ".join(stages)

    def parse(raw: str) -> tuple[str, str]:
        status = statuses.get(raw.casefold())
        if status is None:
            raise ValueError(f"unknown stage {raw!r} (the stages mapping knows {known})")
        return raw, status

    return parse


def _currency(raw: str) -> str:
    code = raw.upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"unknown currency {raw!r} (expected a code such as USD or EUR)")
    return code


def _survey_kind(raw: str) -> str:
    kind = raw.casefold()
    if kind not in ("csat", "nps"):
        raise ValueError(f"unknown survey kind {raw!r} (expected csat or nps)")
    return kind


def _text_parser(limit: int | None) -> Parser:
    def parse(raw: str) -> str:
        # Names end up in messages: no line breaks, nothing invisible (bot.crm_text).
        text = one_line(raw)
        if limit is not None and len(text) > limit:
            raise ValueError(f"longer than {limit} characters")
        return text

    return parse


def _check_storable(raw: str, encoding: str) -> None:
    """Refuse what no field can store: a byte the file's encoding does not have (the reader
    keeps it as a lone surrogate) or a NUL character, which PostgreSQL refuses in text."""
    if raw.isprintable():  # the common case, in C
        return
    if "\x00" in raw:
        raise ValueError("a NUL character (\\x00), which the database cannot store")
    for char in raw:
        if "\udc80" <= char <= "\udcff":
            raise ValueError(
                f"byte 0x{ord(char) - 0xDC00:02x} is not {encoding} text (set the mapping's "
                "encoding to the file's, e.g. cp1252)"
            )


def _length(table: Table, column: str) -> int | None:
    kind = table.c[column].type if column in table.c else None
    return kind.length if isinstance(kind, String) else None


# ---------------------------------------------------------------------------------------------
# Planning: the config checked against the files before anything is written


class _Column(NamedTuple):
    """One mapped column (a tuple, unpacked once per column of each chunk)."""

    field: str
    header: str
    offset: int  # in the row's fields
    parse: Parser
    required: bool


@dataclass(frozen=True)
class _Plan:
    kind: Kind
    mapping: ColumnMap
    width: int  # fields in the header
    columns: tuple[_Column, ...]
    currency: str

    @property
    def table(self) -> Table:
        return Base.metadata.tables[self.kind.name]

    def mapped(self, field: str) -> bool:
        return field in self.mapping.columns


def _parser(kind: Kind, field: str, mapping: ColumnMap) -> Parser:
    field_type = kind.fields[field]
    table = Base.metadata.tables[kind.name]
    if field_type is FieldType.DATE:
        return _date_parser(mapping.date_format)
    if field_type is FieldType.AMOUNT:
        return _amount_parser(mapping.decimal_separator)
    if field_type is FieldType.NUMBER:
        return _number_parser(mapping.decimal_separator)
    if field_type is FieldType.PROBABILITY:
        return _probability_parser(mapping.decimal_separator)
    if field_type is FieldType.STAGE:
        return _stage_parser(mapping.stages)
    if field_type is FieldType.CURRENCY:
        return _currency
    if field_type is FieldType.SURVEY_KIND:
        return _survey_kind
    if field_type is FieldType.REF:
        return _text_parser(_length(table, "source_id"))
    column = "source_id" if field == "id" else field
    return _text_parser(_length(table, column))


def field_parser(table: str, field: str, mapping: ColumnMap) -> Parser:
    """How the import reads ``field`` of ``table`` under ``mapping``: text → value, raising
    ``ValueError`` with the reason (a stage parses to its name and status)."""
    return _parser(_KINDS_BY_NAME[table], field, mapping)


def _header(path: Path, mapping: ColumnMap) -> list[str]:
    # Decoded like the rows: a bad byte further down the file is that row's problem.
    with path.open(newline="", encoding=mapping.encoding, errors="surrogateescape") as handle:
        row = next(csv.reader(handle, delimiter=mapping.delimiter), None)
    return [] if row is None else [name.strip() for name in row]


def _plan(
    key: str,
    kind: Kind,
    mapping: ColumnMap,
    header: Sequence[str],
    currency: str,
    problems: list[str],
) -> _Plan | None:
    """``mapping`` checked against the names of the cells each row will have."""
    columns = []
    for field, column_name in mapping.columns.items():
        if column_name.strip() not in header:
            problems.append(
                f"{key}.columns.{field}: no column {column_name!r} in {mapping.file} "
                f"(its columns: {', '.join(header) or 'none'})"
            )
            continue
        index = header.index(column_name.strip())
        parse = _parser(kind, field, mapping)
        columns.append(_Column(field, column_name, index, parse, field in kind.required))
    if len(columns) < len(mapping.columns):
        return None
    return _Plan(kind, mapping, len(header), tuple(columns), currency)


def _plans(
    name: str, source: CsvSource, base_dir: Path, base_currency: str
) -> list[tuple[_Plan, Path]]:
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
            header = _header(path, mapping)
        except (UnicodeDecodeError, csv.Error) as error:
            problems.append(f"{key}.file: cannot read the header of {path}: {error}")
            continue
        plan = _plan(key, kind, mapping, header, source.currency or base_currency, problems)
        if plan is not None:
            plans.append((plan, path))
    if missing or problems:
        raise ConfigError(f"import.csv.{name} ({base_dir})", [*missing, *problems])
    return plans


# ---------------------------------------------------------------------------------------------
# Reading rows


Records = Callable[[list[RowProblem]], Iterable[tuple[int, list[str]]]]


class _Lines:
    """The file's physical lines, handed to the csv reader one at a time; the lines of the
    record being read are kept so that all but its first can be read again."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._again: list[str] = []  # lines to read again, the next one last
        self._taken: list[str] = []
        self.read = 0  # lines handed out so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else next(self._handle)
        self._taken.append(line)
        self.read += 1
        return line

    def next_record(self) -> int:
        """Start a record; returns the line it starts on."""
        self._taken.clear()
        return self.read + 1

    def read_again(self) -> int:
        """Give back every line of the current record but its first; returns how many."""
        rest = self._taken[1:]
        self._again.extend(reversed(rest))
        self.read -= len(rest)
        return len(rest)


def _csv_problem(error: csv.Error) -> str:
    message = str(error)
    if message.startswith("field larger than field limit"):
        return f"a cell longer than {csv.field_size_limit()} characters (the CSV field-size limit)"
    if message == "unexpected end of data":
        return "a quote opens a cell that never closes"
    return f"unbalanced quotes ({message})"


def _records(
    plan: _Plan, path: Path, problems: list[RowProblem]
) -> Iterator[tuple[int, list[str]]]:
    """Data rows with the physical line each starts on (a quoted cell may span lines). A row the
    csv module cannot read, or of the wrong width over several lines, goes to ``problems``, and
    the lines after its first are read again as rows of their own: a quote that never closes
    would otherwise swallow them, so one stray quote costs one row. Bytes that are not in the
    file's encoding are kept as surrogates, for ``_parse_chunk`` to report on their row."""
    file = plan.mapping.file
    encoding = plan.mapping.encoding
    with path.open(newline="", encoding=encoding, errors="surrogateescape") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines, delimiter=plan.mapping.delimiter, strict=True)
        lines.next_record()
        next(reader, None)  # the header, read when planning
        while True:
            start = lines.next_record()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                reason = _csv_problem(error)
            else:
                # Spreadsheets pad exports with blank lines and lines of bare delimiters.
                if not any(fields):
                    continue
                # A row of the wrong width is reported with the others (``_parse_chunk``),
                # unless it spans lines that must be read again.
                if len(fields) == plan.width or lines.read == start:
                    yield start, fields
                    continue
                reason = f"{len(fields)} fields where the header has {plan.width}"
            end = lines.read
            again = lines.read_again()
            if again:
                reason += (
                    f"; it ran to line {end}, so lines {start + 1}–{end} were read again as "
                    "rows of their own"
                )
            problems.append(RowProblem(file, start, reason))


def _chunks(records: Iterable[tuple[int, list[str]]]) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _row_hash(fields: Sequence[str]) -> str:
    # surrogateescape: a row with an undecodable byte is bad, but gets an id like the others.
    data = "\x1f".join(fields).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class _Columns:
    """One chunk's rows of the right width, as columns of canonical values (and later of
    foreign keys); ``bad`` holds the reason of each bad row by position, first reason first."""

    lines: list[int]
    values: dict[str, list[Any]]
    bad: dict[int, str]

    def fail(self, position: int, reason: str) -> None:
        self.bad.setdefault(position, reason)


def _parse_chunk(
    plan: _Plan, chunk: list[tuple[int, list[str]]], problems: list[RowProblem]
) -> _Columns:
    """Parse a chunk column by column; rows of the wrong width go straight to ``problems``."""
    lines: list[int] = []
    rows: list[list[str]] = []
    for line, fields in chunk:
        if len(fields) == plan.width:
            lines.append(line)
            rows.append(fields)
        else:
            reason = f"{len(fields)} fields where the header has {plan.width}"
            problems.append(RowProblem(plan.mapping.file, line, reason))
    columns = _Columns(lines, {}, {})
    for field, header, offset, parse, required in plan.columns:
        raws = [row[offset].strip() for row in rows]
        parsed: dict[str, Any] = {}
        failed: dict[str, str] = {}
        # Exports repeat most values (owners, stages, dates): each distinct one is parsed once.
        for raw in set(raws):
            if raw:
                try:
                    _check_storable(raw, plan.mapping.encoding)
                    parsed[raw] = parse(raw)
                except ValueError as error:
                    failed[raw] = f"{header}: {error}"
            elif required:
                failed[raw] = f"missing {field} ({header} is empty)"
            else:
                parsed[raw] = None
        if failed:
            for position, raw in enumerate(raws):
                if raw in failed:
                    columns.fail(position, failed[raw])
        columns.values[field] = [parsed.get(raw) for raw in raws]
    _complete(plan, columns, rows)
    return columns


def _complete(plan: _Plan, columns: _Columns, rows: list[list[str]]) -> None:
    """Default ids, and the check that needs two columns: a closed deal has a close date."""
    values = columns.values
    ids = values.setdefault("id", [None] * len(rows))
    if plan.kind.id_default is not None and None in ids:
        names = values.get("name")
        # The mapped cells only, by field name: a column added to the export, or the mapping
        # written in another order, must not give every row a new id.
        offsets = [c.offset for c in sorted(plan.columns, key=lambda c: c.field)]
        for position, key in enumerate(ids):
            if key is not None:
                continue
            if plan.kind.id_default == "hash":
                ids[position] = _row_hash([rows[position][offset].strip() for offset in offsets])
            elif names is not None:
                ids[position] = names[position]
    if "stage" in values:
        header = plan.mapping.columns["close_date"]
        for position, (stage, closed) in enumerate(
            zip(values["stage"], values["close_date"], strict=True)
        ):
            if stage is not None and stage[1] != "open" and closed is None:
                columns.fail(position, f"{stage[0]} deal without a close date ({header} is empty)")
        amounts = values.get("amount")
        if amounts is not None:
            header = plan.mapping.columns["amount"]
            for position, (stage, amount) in enumerate(zip(values["stage"], amounts, strict=True)):
                if stage is not None and stage[1] == "won" and amount is None:
                    columns.fail(position, f"{stage[0]} deal without an amount ({header} is empty)")


# ---------------------------------------------------------------------------------------------
# References


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
class _Tally:
    read: int = 0
    merged: int = 0
    changed: int = 0
    created_rows: int = 0
    removed: int = 0


# A repeated id is compared with its first row through a hash of the values; the hash and the
# first line share one int so that a million ids stay a few dozen megabytes.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_HASH_MASK = (1 << 64) - 1


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

    def run(
        self, plan: _Plan, records: Records, *, full_export: bool = False
    ) -> tuple[TableReport, int]:
        """Import one file (or other rows) into one table; returns its report and the rows it
        wrote. In a ``full_export``, opportunities the rows no longer name were deleted."""
        tally = _Tally()
        created: list[str] = []
        problems: list[RowProblem] = []
        seen: dict[str, int] = {}
        # Every id the file names, bad rows included: a deal on a bad line is not deleted.
        present: set[str] = set()
        unidentified = 0
        unreadable: list[RowProblem] = []
        for chunk in _chunks(records(unreadable)):
            tally.read += len(chunk)
            columns = _parse_chunk(plan, chunk, problems)
            ids = columns.values["id"]
            present.update(key for key in ids if key is not None)
            unidentified += len(chunk) - len(ids) + ids.count(None)
            self._resolve(plan, columns, created, tally)
            batch = []
            for line, row in self._store_rows(plan, columns, problems):
                key = row["source_id"]
                packed = (hash(tuple(row.values())) & _HASH_MASK) << _LINE_BITS | line
                first = seen.get(key)
                if first is None:
                    seen[key] = packed
                    batch.append(row)
                elif first >> _LINE_BITS == packed >> _LINE_BITS:
                    tally.merged += 1
                else:
                    where = f"{self.position} {first & _LINE_MASK}"
                    reason = f"id {key!r} is already on {where} with other values"
                    problems.append(RowProblem(plan.mapping.file, line, reason))
            tally.changed += upsert(self.session, plan.table, batch)
        # Rows the reader could not split into cells are rows too, of unknown id.
        tally.read += len(unreadable)
        unidentified += len(unreadable)
        problems += unreadable
        # A deal a full export no longer names was deleted, unless some rows could not be
        # identified.
        kept = 0
        if full_export and plan.kind.name == "opportunities":
            absent = self._absent(present)
            if unidentified:
                kept = len(absent)
            else:
                tally.removed = delete_sourced(
                    self.session, Base.metadata.tables["opportunities"], self.source, absent
                )
        skipped = tally.read - len(seen) - tally.merged
        self.problems.extend(sorted(problems, key=lambda problem: problem.line))
        creating = [
            ref.table for name, ref in plan.kind.refs.items() if ref.create and plan.mapped(name)
        ]
        report = TableReport(
            table=plan.kind.name,
            file=plan.mapping.file,
            read=tally.read,
            imported=tally.read - skipped,
            skipped=skipped,
            distinct=len(seen),
            changed=tally.changed,
            removed=tally.removed,
            kept=kept,
            created=tuple(created),
            created_table=creating[0] if creating else "",
        )
        return report, tally.changed + tally.created_rows + tally.removed

    def _absent(self, present: set[str]) -> list[str]:
        """Source ids of this source's undeleted deals that ``present`` does not name."""
        current = self.session.scalars(
            select(Opportunity.source_id).where(
                Opportunity.source == self.source, Opportunity.deleted_at.is_(None)
            )
        )
        return [key for key in current if key not in present]

    def _resolve(self, plan: _Plan, columns: _Columns, created: list[str], tally: _Tally) -> None:
        """Add a column of database ids for each reference, creating the teams and accounts
        that good rows name and that do not exist yet."""
        values = columns.values
        bad = columns.bad
        for field, ref in plan.kind.refs.items():
            keys = values.get(field)
            if keys is None:
                continue
            directory = self.directory(ref.table)
            wanted = {key for i, key in enumerate(keys) if key is not None and i not in bad}
            missing = directory.unknown(wanted)
            if ref.create and missing:
                first: dict[str, int] = {}
                for position, key in enumerate(keys):
                    if key in missing and position not in bad:
                        first.setdefault(key, position)
                new = sorted(missing)
                rows = []
                for key in new:
                    row: dict[str, Any] = {"source": self.source, "source_id": key, "name": key}
                    for carried in ref.carried:
                        column = values.get(carried)
                        row[carried] = None if column is None else column[first[key]]
                    rows.append(row)
                tally.created_rows += directory.create(rows)
                created.extend(new)
            ids = directory.ids
            resolved: list[int | None] = []
            for position, key in enumerate(keys):
                row_id = None if key is None else ids.get(key)
                if key is not None and row_id is None:
                    columns.fail(
                        position, f"unknown {field} {key!r} (no {ref.noun} with that id or name)"
                    )
                elif row_id == _AMBIGUOUS:
                    columns.fail(
                        position,
                        f"{field} {key!r} names several {ref.table}; map their ids instead",
                    )
                resolved.append(row_id)
            values[ref.column] = resolved

    def _store_rows(
        self, plan: _Plan, columns: _Columns, problems: list[RowProblem]
    ) -> list[tuple[int, dict[str, Any]]]:
        """The good rows as the store's columns (only those the mapping names); the bad ones
        go to ``problems``."""
        values = columns.values
        count = len(columns.lines)
        names = ["source", "source_id"]
        data: list[list[Any]] = [[self.source] * count, values["id"]]
        for column in plan.columns:
            field = column.field
            if field in plan.kind.refs:
                names.append(plan.kind.refs[field].column)
                data.append(values[plan.kind.refs[field].column])
            elif field not in plan.kind.unstored and field not in ("id", "stage", "currency"):
                names.append(field)
                data.append(values[field])
        if "stage" in values:
            stages = values["stage"]
            names += ["stage", "is_closed", "is_won"]
            data.append([None if s is None else s[0] for s in stages])
            data.append([s is not None and s[1] != "open" for s in stages])
            data.append([s is not None and s[1] == "won" for s in stages])
        if plan.kind.name in _CURRENCY_KINDS:
            currencies = values.get("currency", [None] * count)
            names.append("currency")
            data.append([code or plan.currency for code in currencies])
        out = []
        bad = columns.bad
        for position, (line, *row) in enumerate(zip(columns.lines, *data, strict=True)):
            if position in bad:
                problems.append(RowProblem(plan.mapping.file, line, bad[position]))
            else:
                out.append((line, dict(zip(names, row, strict=True))))
        return out


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
    with _collector_skips_older_objects():
        for plan, path in plans:
            # A CSV file is the whole export, every time.
            records = functools.partial(_records, plan, path)
            report, rows = run.run(plan, records, full_export=True)
            tables.append(report)
            written += rows
    version = bump_data_version(session) if written else None
    return ImportReport(source_name, tuple(tables), tuple(run.problems), version)


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
        return mapping_problems(key, _KINDS_BY_NAME[table], mapping)

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
        kind = _KINDS_BY_NAME[table]
        problems = self.check(key, table, mapping)
        plan = _plan(key, kind, mapping, header, currency, problems)
        if plan is None or problems:
            raise ConfigError(key, problems)
        before = len(self._import.problems)
        report, written = self._import.run(plan, lambda _problems: rows)
        return report, self._import.problems[before:], written

    def forget(self, table: str) -> None:
        """Drop what is known of ``table``'s rows (after deleting some)."""
        self._import.forget(table)

    def known(self, table: str, ids: Mapping[str, int]) -> None:
        """Resolve these keys to these rows of ``table`` (database ids), which other sources
        hold: a CRM's users matched to reps by email (``bot.sources.owners``)."""
        self._import.directory(table).add(ids)
