"""Bulk upserts keyed on (source, source_id): the one way facts are written, by the CSV import,
the CRM sync and the demo company alike, so that re-importing the same rows changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

# Bounds memory for the RETURNING rows; SQLAlchemy splits each batch to fit the driver.
_BATCH = 20_000
# Two bound parameters per key; SQLite allows 32,766 per statement.
_LOOKUP = 5_000


def _batches(rows: Sequence[Mapping[str, Any]]) -> Iterable[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), _BATCH):
        yield rows[start : start + _BATCH]


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` or update the existing row with the same (source, source_id); returns how
    many rows were inserted or actually changed. Every row must have the same keys."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = [c for c in rows[0] if c not in ("source", "source_id")]
    insert_rows = insert(table)
    excluded = insert_rows.excluded
    # Only touch rows whose values differ: a re-import of the same file changes nothing and
    # does not bump the data version.
    differs = or_(*(table.c[c].is_distinct_from(excluded[c]) for c in columns))
    statement = insert_rows.on_conflict_do_update(
        index_elements=["source", "source_id"],
        set_={c: excluded[c] for c in columns},
        where=differs,
    ).returning(table.c.id)
    changed = 0
    for batch in _batches(rows):
        # One statement, many parameter sets: SQLAlchemy batches them ("insertmanyvalues")
        # and RETURNING yields only the inserted or updated rows (rowcount is -1 on psycopg).
        changed += len(session.execute(statement, list(batch)).all())
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
