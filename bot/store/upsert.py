"""Bulk upserts keyed on (source, source_id): the one way facts are written (and deleted), by
the CSV import, the CRM sync and the demo company alike, so that re-importing the same rows
changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Connection,
    Date,
    Dialect,
    Index,
    Table,
    bindparam,
    delete,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import (
    column as sa_column,
)
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from bot.store.changes import pending, record_deletions, upcoming
from bot.store.database import sqlite_file
from bot.store.sqlite_staging import free_attachments, staged

# Rows converted to the driver's values at a time: bounds the memory of the Python objects.
_BATCH = 20_000
# SQLite allows 32,766 bound parameters per statement (since 3.32).
_SQLITE_PARAMETERS = 32_766
# Rows per multi-row INSERT on SQLite.
_SQLITE_PAGE = 1_000
# Keys per lookup (a bound parameter each).
_LOOKUP = 5_000
# Rows from which an SQLite write is a bulk one: a load into an empty table builds its
# secondary indexes afterwards, and an Arrow table is written through a staging database
# (bot.store.sqlite_staging), whose file, second connection and attachment cost about what
# binding the cells does up to here (50,000 leads: 84 ms staged, 86 ms bound; 10,000: 23 ms
# against 21 ms).
_BULK = 50_000
# Staging databases a bulk write's rows are cut into: each is written while SQLite reads the
# one before, so only the first is waited for. A table takes half of SQLite's free attachments
# at most (of ten: 4, 3, 1, 1, 1), so that five large tables of a transaction are all staged.
_STAGING_PARTS = 4
# SQLite's page cache while a large write runs, in KiB (its default is 2 MB): the unique
# (source, source_id) index of a million rows did not fit, and evicting and re-reading its
# pages took a third of the write; 128 MB holds it and keeps an import of 3M rows under 1 GB.
# A CSV import keeps it to its end: the history of a million new deals, written after the
# upserts, took 2.0-2.2 s with it against 2.9-3.0 s with the default (the commit then writes
# a little more at once: 0.6-1.1 s less for the whole import of 3M rows).
_BULK_CACHE_KIB = 131_072

Rows = Sequence[Mapping[str, Any]] | pa.Table


def _on_conflict(
    insert_row: Any, table: Table, keys: Sequence[str], version: int | None = None
) -> Any:
    """``insert_row`` made an upsert on (source, source_id) that touches only rows whose values
    differ: a re-import of the same file changes nothing and does not bump the data version.
    ``version``: the one the transaction will make, when known (``bot.store.changes``)."""
    excluded = insert_row.excluded
    columns = [k for k in keys if k not in ("source", "source_id")]
    differs = [table.c[c].is_distinct_from(excluded[c]) for c in columns]
    assigned: dict[str, Any] = {c: excluded[c] for c in columns}
    if "deleted_at" in table.c and "deleted_at" not in keys:
        # A row written is present: one deleted earlier (see delete_sourced) comes back.
        assigned["deleted_at"] = null()
        differs.append(table.c.deleted_at.is_not(None))
    # The row changed in this data version (bot.store.changes).
    assigned.update(pending(table, version))
    return insert_row.on_conflict_do_update(
        index_elements=["source", "source_id"], set_=assigned, where=or_(*differs)
    )


def _driver_sql(statement: Any, keys: Sequence[str], dialect: Dialect) -> tuple[str, list[str]]:
    """``statement`` as driver SQL for one row, and the order of its parameters (positional
    paramstyles such as SQLite's) or their names (named ones such as psycopg's)."""
    compiled = statement.compile(dialect=dialect)
    order = list(compiled.positiontup) if compiled.positiontup is not None else list(keys)
    return str(compiled), order


def _values_row(
    table: Table, keys: Sequence[str], dialect: Dialect, marks: Mapping[str, Any] | None = None
) -> Any:
    """One row's INSERT of ``keys`` (bound) and ``marks`` (literals, the same in every row)."""
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    # inline(): no implicit "RETURNING id" for the new primary key, which nobody reads here.
    return insert(table).inline().values({**{k: bindparam(k) for k in keys}, **(marks or {})})


def _iso_dates(values: list[Any]) -> list[Any]:
    # date.isoformat is SQLAlchemy's SQLite storage format ("%04d-%02d-%02d", also for a
    # datetime) and, like it, raises TypeError for anything else, at a third of the cost.
    iso = date.isoformat
    return [None if v is None else iso(v) for v in values]


def _converter(
    column_type: TypeEngine[Any], dialect: Dialect
) -> Callable[[list[Any]], list[Any]] | None:
    """What turns a column's Python values into the driver's, or None when they pass as-is.

    SQLAlchemy's own bind processors (Numeric as float and datetimes as text on SQLite, bools
    checked), so that rows read back exactly as when SQLAlchemy bound them; looked up once per
    column instead of per value, which was most of the time of SQLAlchemy's executemany."""
    if dialect.name == "sqlite" and isinstance(column_type, Date):
        return _iso_dates  # the commonest conversion of all, done faster
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    return lambda values: list(map(process, values))


def _driver_array(values: Any, dialect: Dialect) -> Any:
    """An Arrow column (an array or a chunked one) as what SQLAlchemy's bind processors make
    of the same Python values (dates as ISO text on SQLite, numbers as floats, bools as
    bools)."""
    if dialect.name == "sqlite" and pa.types.is_date(values.type):
        return pc.cast(values, pa.string())  # ISO 8601, SQLAlchemy's SQLite storage format
    return values


def _arrow_values(values: pa.Array[Any], dialect: Dialect) -> list[Any]:
    """An Arrow column as the driver's values (``_driver_array``'s, as Python objects)."""
    values_list: list[Any] = _driver_array(values, dialect).to_pylist()
    return values_list


def _column_batches(
    table: Table, rows: Rows, order: Sequence[str], dialect: Dialect
) -> Iterator[list[list[Any]]]:
    """The rows as the driver's values, one list per column in ``order``, a batch at a time."""
    if isinstance(rows, pa.Table):
        for start in range(0, rows.num_rows, _BATCH):
            part = rows.slice(start, _BATCH)
            yield [_arrow_values(part.column(k).combine_chunks(), dialect) for k in order]
        return
    convert = [_converter(table.c[k].type, dialect) for k in order]
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        # Column by column: one list per column, converted by a map or a comprehension.
        yield [
            [row[k] for row in batch] if f is None else f([row[k] for row in batch])
            for k, f in zip(order, convert, strict=True)
        ]


def _batches(
    table: Table, rows: Rows, order: Sequence[str], dialect: Dialect
) -> Iterator[list[Any]]:
    """The rows as tuples of the driver's values, in ``order``, a batch at a time."""
    for columns in _column_batches(table, rows, order, dialect):
        yield list(zip(*columns, strict=True))


def _pages(
    table: Table, rows: Rows, order: Sequence[str], dialect: Dialect, page: int
) -> Iterator[list[Any]]:
    """The parameters of each multi-row INSERT of ``page`` rows, row after row in one flat
    list, filled a column at a time by slice assignment: no tuple per row to build and then
    take apart again."""
    width = len(order)
    for columns in _column_batches(table, rows, order, dialect):
        count = len(columns[0])
        for start in range(0, count, page):
            stop = min(start + page, count)
            params: list[Any] = [None] * ((stop - start) * width)
            for position, values in enumerate(columns):
                params[position::width] = values[start:stop]
            yield params


def upsert(session: Session, table: Table, rows: Rows) -> int:
    """Insert ``rows`` or update the existing row with the same (source, source_id); returns how
    many rows were inserted or actually changed. ``rows`` are mappings with the same keys, or
    an Arrow table whose columns are named after the table's (the columnar import's)."""
    count = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
    if not count:
        return 0
    keys = list(rows.column_names) if isinstance(rows, pa.Table) else list(rows[0])
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return _sqlite_upsert(connection, table, keys, rows, count)
    return _postgresql_upsert(connection, table, keys, rows)


def _sqlite_upsert(
    connection: Connection, table: Table, keys: list[str], rows: Rows, count: int
) -> int:
    """Multi-row INSERTs in the caller's transaction, or for a large Arrow table INSERT …
    SELECT from staging databases (``_sqlite_staged``). Into an empty table, plain INSERTs in
    key order, and for many rows the secondary indexes are dropped and built again
    afterwards: one sort instead of a million random insertions into each B-tree."""
    dialect = connection.dialect
    empty = connection.exec_driver_sql(f'SELECT 1 FROM "{table.name}" LIMIT 1').first() is None
    ordered = _in_key_order(rows) if empty else None
    bulk = ordered is not None
    if ordered is not None:
        rows = ordered
    # Rows written with the version the transaction will make are not written a second time
    # by bump_data_version's stamp (a million new rows took it as long again as their index).
    # Called for every table: its write begins the transaction (sqlite3 begins one only before
    # a write), so that a DROP INDEX below is rolled back with the rest if the import fails.
    version = upcoming(connection)
    # An index on the marks alone (changed_in: one value for every row written) takes their
    # entries in rowid order, appended: kept, it costs less than built afterwards (the
    # benchmark's import: 8.2 s against 8.8 s, medians of six alternate runs).
    rebuilt: list[Index] = []
    if bulk and count >= _BULK:
        marked = set(pending(table, version))
        rebuilt = [
            index
            for index in table.indexes
            if not index.unique and not {column.name for column in index.columns} <= marked
        ]
    with large_cache(connection) if count >= _BULK else nullcontext():
        for index in rebuilt:
            index.drop(connection)
        # A large Arrow table is staged while SQLite can attach databases (ten by default);
        # other rows are bound.
        staging = isinstance(rows, pa.Table) and count >= _BULK and _stageable(rows.schema)
        slots = free_attachments(connection) if staging else 0
        if isinstance(rows, pa.Table) and slots:
            # Half the free slots at most, so that the tables after it can be staged too.
            parts = max(1, min(slots // 2, _STAGING_PARTS))
            changed = _sqlite_staged(connection, table, keys, rows, bulk, version, parts)
        else:
            statement = _values_row(table, keys, dialect, pending(table, version))
            sql, order = _driver_sql(
                statement if bulk else _on_conflict(statement, table, keys, version), keys, dialect
            )
            page = max(1, min(_SQLITE_PAGE, _SQLITE_PARAMETERS // len(order)))
            pages = _pages(table, rows, order, dialect, page)
            changed = _sqlite_pages(connection, sql, order, pages)
        for index in rebuilt:
            index.create(connection)
    return changed


def _stageable(schema: pa.Schema) -> bool:
    """Whether ADBC's SQLite driver stores every column of ``schema`` as SQLAlchemy stores the
    same values on SQLite (text, integers, floats, booleans as 0/1, dates as ISO text): the
    types the import's columns have. Others (a timestamp's text form differs) are bound."""
    known = (pa.types.is_string, pa.types.is_integer, pa.types.is_float64, pa.types.is_boolean)
    return all(pa.types.is_date(f.type) or any(k(f.type) for k in known) for f in schema)


def _sqlite_staged(
    connection: Connection,
    table: Table,
    keys: list[str],
    rows: pa.Table,
    bulk: bool,
    version: int | None,
    parts: int,
) -> int:
    """``rows`` written through ``parts`` staging databases (``bot.store.sqlite_staging``),
    each read by one ``INSERT … SELECT`` in their order, upserting as ``_on_conflict`` says
    unless ``bulk`` (an empty table, no key twice). The rows keep their order, so a key given
    twice keeps its last row, as with the multi-row INSERTs; the values are the bound ones
    (``_driver_array``: the driver would write the dates as the same text, but 0.5 s slower
    for the 2M leads' two date columns than Arrow's cast), made part by part on the staging
    thread (on the caller's, the casts took 0.4-0.6 s of the benchmark's import)."""
    dialect = connection.dialect

    def driven(part: pa.Table) -> pa.Table:
        return pa.table([_driver_array(part.column(k), dialect) for k in keys], names=keys)

    store = sqlite_file(connection.engine)
    folder = None if store is None else store.parent
    marks = pending(table, version)
    # In the order given; the ORDER BY also keeps SQLite from reading the "ON CONFLICT" that
    # follows a bare FROM as a join's ON.
    rowid: Any = literal_column("rowid")
    changed = 0
    # Closed at once if an INSERT fails: the part written ahead is removed then, not whenever
    # the traceback lets go of the generator.
    with closing(staged(connection, rows.select(keys), folder, parts, driven)) as sources:
        for source in sources:
            chosen = select(*(source.c[k] for k in keys), *marks.values()).order_by(rowid)
            statement = sqlite_insert(table).from_select([*keys, *marks], chosen)
            if not bulk:
                statement = _on_conflict(statement, table, keys, version)
            changed += int(connection.execute(statement).rowcount)
    return changed


@contextmanager
def large_cache(connection: Connection) -> Iterator[None]:
    """SQLite's page cache at ``_BULK_CACHE_KIB`` while a large write runs, then as it was (a
    no-op on PostgreSQL)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    cache = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
    connection.exec_driver_sql(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {cache}")


def _in_key_order(rows: Rows) -> Rows | None:
    """``rows`` sorted by (source, source_id), or None when two of them share a key: only
    then may an empty table take plain INSERTs (a repeat would fail the unique constraint
    instead of updating). In key order each insertion into the unique index lands after the
    previous one instead of on a random page: a million opportunities and two million leads
    were written 0.8-0.9 s faster. The CSV import hands its rows over in that order already
    (``KeyRuns.firsts``), which a pass over neighbours confirms without a sort or a copy."""
    if isinstance(rows, pa.Table):
        columns = [rows.column("source"), rows.column("source_id")]
        if _strictly_ascending(columns):
            return rows
        runs = key_runs(columns)
        return None if runs.repeated.any() else rows.take(runs.order)
    keys = {(row["source"], row["source_id"]) for row in rows}
    if len(keys) < len(rows):
        return None
    # str(): a missing id is for the INSERT to refuse (NOT NULL), not for the sort.
    return sorted(rows, key=lambda row: (str(row["source"]), str(row["source_id"])))


def _strictly_ascending(columns: Sequence[pa.Array[Any] | pa.ChunkedArray[Any]]) -> bool:
    """Whether the rows' keys, with every column but the last constant, rise strictly (no
    null), as a byte-wise sort and SQLite's index order them."""
    keys = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    *leading, last = keys
    if last.null_count or not all(_constant(key) and not key.null_count for key in leading):
        return False
    if len(last) < 2:
        return True
    rising: Any = pc.less(last.slice(0, len(last) - 1), last.slice(1))
    return bool(pc.all(rising).as_py())


@dataclass(frozen=True)
class KeyRuns:
    """Rows sorted by their key, stably, a null equal to a null (``key_runs``)."""

    order: npt.NDArray[np.int64]  # the rows' positions in key order
    repeated: npt.NDArray[np.bool_]  # in that order: whether the key is the previous row's

    def repeats(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The positions of the rows whose key an earlier row has already, ascending, and the
        position of that earlier row, the first with the key, for each."""
        repeated = self.repeated
        none = np.zeros(0, dtype=np.int64)
        if not repeated.any():
            return none, none
        # The stable sort puts the first row of each key at the start of its run.
        starts = np.flatnonzero(~repeated)
        run = np.cumsum(~repeated) - 1
        again, firsts = self.order[repeated], self.order[starts[run[repeated]]]
        ascending = np.argsort(again, kind="stable")
        return again[ascending], firsts[ascending]

    def firsts(self) -> npt.NDArray[np.int64]:
        """The position of each key's first row, in key order."""
        return self.order[~self.repeated]

    def among(self, kept: npt.NDArray[np.bool_]) -> KeyRuns:
        """The runs of the rows ``kept`` marks alone, at the same positions: a kept row repeats
        a key when an earlier kept row has it. No sort: a key's rows are one run already."""
        run = np.cumsum(~self.repeated)
        inside = kept[self.order]
        runs = run[inside]
        repeated = np.zeros(len(runs), dtype=bool)
        repeated[1:] = runs[1:] == runs[:-1]
        return KeyRuns(self.order[inside], repeated)


def key_runs(columns: Sequence[pa.Array[Any] | pa.ChunkedArray[Any]]) -> KeyRuns:
    """The rows' order by their values in ``columns``, and which repeat a key: by a stable
    sort and a comparison of neighbours (hashing two million distinct ids took 1.5 s here,
    sorting them 0.2 s)."""
    keys = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    count = len(keys[0])
    # A column of one value (the source) sets no order, and sorting by it cost as much again.
    keys = [key for key in keys if not _constant(key)]
    if count < 2 or not keys:  # every row has the first row's key
        return KeyRuns(np.arange(count, dtype=np.int64), np.arange(count) > 0)
    names = [str(number) for number in range(len(keys))]
    order = pc.sort_indices(
        pa.table(dict(zip(names, keys, strict=True))),
        sort_keys=[(name, "ascending") for name in names],
    ).to_numpy()
    same = np.ones(count - 1, dtype=bool)
    for key in keys:
        ordered = key.take(order)
        later, earlier = ordered.slice(1), ordered.slice(0, count - 1)
        equal: Any = pc.equal(later, earlier).fill_null(False)
        same &= np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool) | (
            _is_null(later) & _is_null(earlier)
        )
    return KeyRuns(order.astype(np.int64), np.concatenate(([False], same)))


def _is_null(values: pa.Array[Any]) -> npt.NDArray[np.bool_]:
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _constant(values: pa.Array[Any]) -> bool:
    """Whether every value is the same (all nulls included)."""
    if values.null_count:
        return values.null_count == len(values)
    extremes = pc.min_max(values)
    return bool(extremes["min"] == extremes["max"])


def _sqlite_pages(
    connection: Connection, sql: str, order: Sequence[str], pages: Iterable[list[Any]]
) -> int:
    """Run the one-row ``sql`` over ``pages`` (flat parameters, see ``_pages``) as multi-row
    INSERTs, as SQLAlchemy did: sqlite3's executemany steps the statement once per row, which
    took SQLite itself half as long again (3.1 s against 1.9 s for the 300,000 rows of a
    100,000-opportunity import)."""
    head, values, rest = sql.partition(" VALUES (")
    inside, _, tail = rest.partition(")")  # bound "?"s and literal numbers: no parenthesis
    group = f"({inside})"
    width = len(order)
    assert values and inside.count("?") == width, sql
    statements: dict[int, str] = {}
    changed = 0
    for params in pages:
        rows = len(params) // width
        if rows not in statements:
            statements[rows] = f"{head} VALUES {', '.join([group] * rows)}{tail}"
        # No RETURNING: rowcount is sqlite3_changes(), the rows inserted or updated (an update
        # whose WHERE is false counts 0), without the rows triggers might change.
        changed += connection.exec_driver_sql(statements[rows], tuple(params)).rowcount
    return changed


def _postgresql_upsert(connection: Connection, table: Table, keys: list[str], rows: Rows) -> int:
    """COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT … WHERE IS DISTINCT
    FROM: the rows travel in PostgreSQL's bulk format instead of one statement each. A key
    given twice keeps its last row, as upserting the rows one by one would."""
    dialect = connection.dialect
    staging = f"kpibot_upsert_{table.name}"
    names = ", ".join(f'"{k}"' for k in keys)
    connection.exec_driver_sql(f'DROP TABLE IF EXISTS pg_temp."{staging}"')
    connection.exec_driver_sql(
        f'CREATE TEMP TABLE "{staging}" ON COMMIT DROP AS '
        f'SELECT {names} FROM "{table.name}" WITH NO DATA'
    )
    source, source_id = keys.index("source"), keys.index("source_id")
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f'COPY "{staging}" ({names}) FROM STDIN') as copy:
        for batch in _batches(table, rows, keys, dialect):
            last = {(row[source], row[source_id]): row for row in batch}
            for row in last.values() if len(last) < len(batch) else batch:
                copy.write_row(row)
    staged = sa_table(staging, *(sa_column(k) for k in keys))
    insert_rows = pg_insert(table).from_select(keys, select(*(staged.c[k] for k in keys)))
    sql, _ = _driver_sql(_on_conflict(insert_rows, table, keys), keys, dialect)
    # The driver's rowcount: the "INSERT 0 n" command tag, rows inserted or updated.
    changed = connection.exec_driver_sql(sql).rowcount
    connection.exec_driver_sql(f'DROP TABLE "{staging}"')
    return int(changed)


def absent_source_ids(
    session: Session, table: Table, source: str, present: pa.Array[Any]
) -> list[str]:
    """The source ids of ``source``'s rows of ``table`` (not already marked deleted) that are
    not among ``present`` (text, nulls ignored): what a full export or a full read no longer
    names, found by Arrow's hash lookup rather than a Python set of millions of ids."""
    query = select(table.c.source_id).where(table.c.source == source)
    if "deleted_at" in table.c:
        query = query.where(table.c.deleted_at.is_(None))
    held = pa.array([str(key) for key in session.execute(query).scalars()], pa.string())
    if not len(held):  # a first import: hashing the ids it names took 0.8 s for a million
        return []
    named: Any = pc.is_in(held, value_set=present.drop_null())
    return [str(key) for key in held.filter(pc.invert(named)).to_pylist()]


def ids_by_source_id(
    session: Session, table: Table, source: str, keys: Iterable[str]
) -> dict[str, int]:
    """Database ids of rows of ``source`` with the given source ids (for foreign keys), found
    by searches of the (source, source_id) index, in time proportional to the keys: SQLite
    scans the whole index for a row value ``(source, source_id) IN (...)`` (0.17 s a statement
    among two million leads; the benchmark's sync deleting 100 deals and 100 leads wrote the
    store in 0.9-1.3 s with it, 0.3-0.4 s without)."""
    wanted = list(dict.fromkeys(keys))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), _LOOKUP):
        chunk = wanted[start : start + _LOOKUP]
        query = select(table.c.source_id, table.c.id).where(
            table.c.source == source, table.c.source_id.in_(chunk)
        )
        out.update({str(k): int(i) for k, i in session.execute(query)})
    return out


def delete_sourced(session: Session, table: Table, source: str, keys: Iterable[str]) -> int:
    """Delete the rows of ``source`` with the given source ids (records deleted in the CRM);
    returns how many rows were deleted. A table with a ``deleted_at`` column (opportunities)
    keeps its rows, marked deleted: they leave every figure, their history records the
    deletion, and an upsert of the same id brings them back. From other tables the rows go,
    and rows that pointed at them keep existing, with the reference cleared."""
    wanted = list(dict.fromkeys(keys))
    marked = "deleted_at" in table.c
    referring = [
        (fk.parent.table, fk.parent)
        for other in table.metadata.sorted_tables
        for fk in other.foreign_keys
        if fk.column.table is table
    ]
    now = datetime.now(UTC)
    deleted = 0
    for start in range(0, len(wanted), _LOOKUP):
        ids = list(
            ids_by_source_id(session, table, source, wanted[start : start + _LOOKUP]).values()
        )
        if not ids:
            continue
        if marked:
            statement = (
                update(table)
                .where(table.c.id.in_(ids), table.c.deleted_at.is_(None))
                .values(deleted_at=now, **pending(table))
            )
            deleted += session.execute(statement).rowcount  # type: ignore[attr-defined]
            continue
        for other, column in referring:
            unlinked = {column.name: None, **pending(other)}
            session.execute(update(other).where(column.in_(ids)).values(unlinked))
        record_deletions(session, table, ids)
        deleted += session.execute(delete(table).where(table.c.id.in_(ids))).rowcount  # type: ignore[attr-defined]
    return deleted
