"""Bulk upserts keyed on (source, source_id): the one way facts are written, by the CSV import,
the CRM sync and the demo company alike, so that re-importing the same rows changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

# SQLite allows 32766 bound parameters per statement; stay well below for wide tables.
_BATCH = 2000


def _batches(rows: Sequence[Mapping[str, Any]]) -> Iterable[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), _BATCH):
        yield rows[start : start + _BATCH]


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` or update the existing row with the same (source, source_id); returns how
    many rows were inserted or actually changed."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = [c for c in rows[0] if c not in ("source", "source_id")]
    changed = 0
    for batch in _batches(rows):
        statement = insert(table).values(list(batch))
        excluded = statement.excluded
        # Only touch rows whose values differ: a re-import of the same file changes nothing
        # and does not bump the data version.
        differs = None
        for column in columns:
            clause = table.c[column].is_distinct_from(excluded[column])
            differs = clause if differs is None else differs | clause
        statement = statement.on_conflict_do_update(
            index_elements=["source", "source_id"],
            set_={c: excluded[c] for c in columns},
            where=differs,
        )
        # RETURNING yields only inserted or updated rows; rowcount is not reliable for
        # multi-row inserts on every driver (psycopg reports -1).
        changed += len(session.execute(statement.returning(table.c.id)).all())
    return changed


def ids_by_source_id(
    session: Session, table: Table, source: str, keys: Iterable[str]
) -> dict[str, int]:
    """Database ids of rows of ``source`` with the given source ids (for foreign keys)."""
    wanted = list(dict.fromkeys(keys))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        query = select(table.c.source_id, table.c.id).where(
            tuple_(table.c.source, table.c.source_id).in_([(source, k) for k in chunk])
        )
        out.update({str(k): int(i) for k, i in session.execute(query)})
    return out
