"""A first load written once: an SQLite store's first import or sync of its facts goes
through a rollback journal instead of the write-ahead log.

In WAL mode every page a transaction writes goes into the log, and the commit's checkpoint
copies it into the store: a first import of 1M deals and 2M leads writes 400 MB twice, and the
copy was 1.3–2.5 s of its 10–13 s (the commit, AMD EPYC, 2 cores). A rollback journal keeps
only the pages a transaction changes that were already in the file (SQLite writes none of
those it appends at the end: a rollback cuts them off), so into a store holding no deal and
no lead almost every page is written once, where it stays.

Leaving WAL needs the store to itself (SQLite refuses while another connection has it open,
in this process or any other), and a rollback journal blocks readers while its transaction
spills or commits. So the switch is made only when the store holds no deal and no lead (no
one has anything to read yet), only outside a transaction, and only if SQLite grants it
(refused, the load runs in WAL as any other). The connection goes back to WAL when it is
returned to its pool, after its commit or rollback (``back_to_wal``); a process that dies
first leaves a hot journal that the next connection rolls back before it turns WAL on
(``enter_wal``). A connection opened during the load finds WAL refused: it reads through the
rollback journal (waiting while the load holds the file) and tries again each time it goes back
to its pool, so that whichever connection finds the store to itself first returns it to WAL;
the others follow at their next read, as SQLite keeps the mode in the file's header."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Lead, Opportunity

# The pool record's key: the connection found its store out of WAL (it left it for a first
# load, or could not turn it on while another connection's first load held it).
_OUT_OF_WAL = "kpibot_out_of_wal"


def written_once(session: Session) -> bool:
    """Switch ``session``'s connection to a rollback journal if its transaction is an SQLite
    store's first load (no deal, no lead, nothing written yet); returns whether it did."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return False
    dbapi: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
    # pysqlite begins SQLite's transaction at the first write: the journal can only change
    # before it.
    if dbapi.in_transaction:
        return False
    for table in (Opportunity, Lead):
        if session.execute(select(table.id).limit(1)).first() is not None:
            return False
    try:
        mode = dbapi.execute("PRAGMA main.journal_mode = DELETE").fetchone()
    except sqlite3.OperationalError as error:
        if not _busy(error):
            raise
        return False  # another connection has the store open
    if mode is None or mode[0] != "delete":  # SQLite kept the journal it had
        return False
    connection.connection.info[_OUT_OF_WAL] = True
    return True


def enter_wal(dbapi_connection: sqlite3.Connection, info: dict[Any, Any]) -> None:
    """Put a new connection's store in WAL mode; while another connection's first load holds
    it, mark the connection to try again when it goes back to its pool."""
    try:
        dbapi_connection.execute("PRAGMA main.journal_mode = WAL")
    except sqlite3.OperationalError as error:
        if not _busy(error):
            raise
        info[_OUT_OF_WAL] = True


def back_to_wal(dbapi_connection: Any, info: dict[Any, Any]) -> None:
    """Return the store of a connection marked out of WAL to WAL, as the connection goes back
    to its pool (its transaction has ended). A connection that was closed leaves it to the
    next one opened."""
    if info.pop(_OUT_OF_WAL, False) and dbapi_connection is not None:
        enter_wal(dbapi_connection, info)


def _busy(error: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused a journal change because another connection holds the store
    ("database is locked"; a journal change does not wait for it)."""
    return error.sqlite_errorcode == sqlite3.SQLITE_BUSY
