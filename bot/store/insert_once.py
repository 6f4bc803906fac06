"""``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL: the database decides which of
several concurrent writers owns a row (a job claim, an outbox entry), without an error and an
aborted transaction for the losers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def insert_once(
    connection: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> bool:
    """Insert ``values`` unless a row with the same ``keys`` exists; True if this call did."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(dict(values))
        .on_conflict_do_nothing(index_elements=keys)
        # RETURNING rather than rowcount, which psycopg reports as -1 for this statement.
        .returning(table.c[keys[0]])
    )
    return connection.execute(statement).first() is not None
