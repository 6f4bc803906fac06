"""What SQLite's journal was while a table was written: the tests of a first load
(``bot.store.first_load``) record it at every INSERT into the table."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from sqlalchemy import Engine, event


def journal_while_writing(engine: Engine, table: str) -> list[str]:
    """A list the engine fills, at each INSERT into ``table``, with the journal mode of the
    connection running it ("wal", "delete")."""
    modes: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            dbapi: sqlite3.Connection = connection.connection.dbapi_connection
            modes.append(str(dbapi.execute("PRAGMA main.journal_mode").fetchone()[0]))

    return modes


def journal_of(path: object) -> str:
    """The journal mode a new connection finds the store at ``path`` in."""
    with closing(sqlite3.connect(str(path))) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
