"""Bulk upserts keyed on (source, source_id): the one way facts are written (and deleted), by
the CSV import, the CRM sync and the demo company alike, so that re-importing the same rows
changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Dialect,
    Table,
    bindparam,
    delete,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from bot.store.changes import pending, record_deletions

# Bounds the memory of the converted parameter rows.
_BATCH = 20_000
# SQLite allows 32,766 bound parameters per statement (since 3.32).
_SQLITE_PARAMETERS = 32_766
# Rows per multi-row INSERT on SQLite.
_SQLITE_PAGE = 1_000
# Two bound parameters per key.
_LOOKUP = 5_000


def _statement(table: Table, keys: Sequence[str], dialect: Dialect) -> tuple[str, list[str]]:
    """The upsert as driver SQL for one row, and the order of its parameters (positional
    paramstyles such as SQLite's) or their names (named ones such as psycopg's)."""
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    # inline(): no implicit "RETURNING id" for the new primary key, which nobody reads here.
    insert_row = insert(table).inline().values({k: bindparam(k) for k in keys})
    excluded = insert_row.excluded
    columns = [k for k in keys if k not in ("source", "source_id")]
    # Only touch rows whose values differ: a re-import of the same file changes nothing and
    # does not bump the data version.
    differs = [table.c[c].is_distinct_from(excluded[c]) for c in columns]
    assigned: dict[str, Any] = {c: excluded[c] for c in columns}
    if "deleted_at" in table.c and "deleted_at" not in keys:
        # A row written is present: one deleted earlier (see delete_sourced) comes back.
        assigned["deleted_at"] = null()
        differs.append(table.c.deleted_at.is_not(None))
    assigned.update(pending(table))  # the row changed in this data version (bot.store.changes)
    statement = insert_row.on_conflict_do_update(
        index_elements=["source", "source_id"],
        set_=assigned,
        where=or_(*differs),
    )
    compiled = statement.compile(dialect=dialect)
    order = list(compiled.positiontup) if compiled.positiontup is not None else list(keys)
    return str(compiled), order


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


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` or update the existing row with the same (source, source_id); returns how
    many rows were inserted or actually changed. Every row must have the same keys."""
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    sql, order = _statement(table, list(rows[0]), dialect)
    convert = [_converter(table.c[k].type, dialect) for k in order]
    changed = 0
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        # Column by column: one list per column, converted by a map or a comprehension.
        values = [
            [row[k] for row in batch] if f is None else f([row[k] for row in batch])
            for k, f in zip(order, convert, strict=True)
        ]
        if dialect.name == "sqlite":
            changed += _sqlite_pages(connection, sql, len(order), list(zip(*values, strict=True)))
        else:
            # psycopg pipelines an executemany, and its rowcount sums the "INSERT 0 n" command
            # tags: the rows inserted or updated, not those whose WHERE was false.
            params = [dict(zip(order, row, strict=True)) for row in zip(*values, strict=True)]
            changed += connection.exec_driver_sql(sql, params).rowcount
    return changed


def _sqlite_pages(connection: Connection, sql: str, width: int, params: list[Any]) -> int:
    """Run the one-row ``sql`` over ``params`` as multi-row INSERTs, as SQLAlchemy did: sqlite3's
    executemany steps the statement once per row, which took SQLite itself half as long again
    (3.1 s against 1.9 s for the 300,000 rows of a 100,000-opportunity import)."""
    group = "(" + ", ".join(["?"] * width) + ")"
    head, values, tail = sql.partition(f" VALUES {group}")
    assert values, sql
    page = max(1, min(_SQLITE_PAGE, _SQLITE_PARAMETERS // width))
    changed = 0
    for start in range(0, len(params), page):
        rows = params[start : start + page]
        statement = f"{head} VALUES {', '.join([group] * len(rows))}{tail}"
        # No RETURNING: rowcount is sqlite3_changes(), the rows inserted or updated (an update
        # whose WHERE is false counts 0), without the rows triggers might change.
        changed += connection.exec_driver_sql(statement, tuple(chain.from_iterable(rows))).rowcount
    return changed


def ids_by_source_id(
    session: Session, table: Table, source: str, keys: Iterable[str]
) -> dict[str, int]:
    """Database ids of rows of ``source`` with the given source ids (for foreign keys)."""
    wanted = list(dict.fromkeys(keys))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), _LOOKUP):
        chunk = wanted[start : start + _LOOKUP]
        query = select(table.c.source_id, table.c.id).where(
            tuple_(table.c.source, table.c.source_id).in_([(source, k) for k in chunk])
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
