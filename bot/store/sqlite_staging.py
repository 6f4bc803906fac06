"""Large Arrow tables handed to SQLite without a Python object per cell.

The SQLite upsert binds every cell as a Python object (``bot.store.upsert._sqlite_pages``):
for the 2M leads of the benchmark the objects (0.6 s), the pages of parameters (0.4 s) and the
multi-row INSERTs (2.4 s) took 3.4 s, against 1.1 s for SQLite's own ``INSERT … SELECT`` of
the same rows into the same table. Here the
rows are first written by ADBC's SQLite driver (Apache Arrow's ``adbc-driver-sqlite``, which
binds Arrow's buffers in C: 0.7 s for those rows) into a database file of their own, which the
writing connection attaches and reads with one ``INSERT … SELECT`` in the caller's transaction,
as PostgreSQL's upsert reads a ``COPY``-filled temporary table.

The driver links its own copy of SQLite. Two copies must never hold the same file open at once
(SQLite's "How To Corrupt An SQLite Database File", §2.2.1: POSIX locks are the process's):
the driver opens only the staging file, and closes it before the engine's connection opens it.
The file is removed once attached (the connection keeps it open; nothing is left behind if the
process dies), but an attached database that a transaction has read cannot be detached before
the transaction ends: each staging database stays attached until its connection goes back to
the pool (``detach_staged``, a pool ``checkin`` listener on every SQLite engine)."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, TableClause
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.exc import OperationalError

# The pool record's key for the names of the staging databases its connection has attached.
_ATTACHED = "kpibot_staged"
_names = itertools.count(1)


def staged(connection: Connection, rows: pa.Table, folder: Path | None) -> TableClause:
    """``rows`` (of the types ``bot.store.upsert._stageable`` takes) written to a new staging
    database in ``folder`` (the store's, where there is room for its rows; None:
    the system's temporary folder) and attached to ``connection``: the table to select them
    from, in the order they were given (``rowid``)."""
    try:
        handle, path = tempfile.mkstemp(prefix=".kpibot-staged-", suffix=".sqlite", dir=folder)
    except OSError as error:
        raise _unwritable(folder, error) from error
    os.close(handle)
    schema = f"kpibot_staged_{next(_names)}"
    try:
        _write(path, rows)
        connection.exec_driver_sql(f'ATTACH DATABASE ? AS "{schema}"', (path,))
    finally:
        os.unlink(path)
    attached: list[str] = connection.connection.info.setdefault(_ATTACHED, [])
    attached.append(schema)
    return sa_table("rows", *(sa_column(name) for name in rows.column_names), schema=schema)


def _unwritable(folder: Path | None, error: Exception) -> OperationalError:
    """A staging file that could not be written (a full disk, a folder that went away) as
    the store's own failure to write, which commands report as such, without a traceback."""
    where = folder or Path(tempfile.gettempdir())
    return OperationalError(f"staging rows in {where}", None, error)


def _write(path: str, rows: pa.Table) -> None:
    # Imported here: a serving process, which never writes in bulk, does not load them.
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite

    try:
        with (
            adbc_driver_sqlite.connect(path) as database,
            adbc.AdbcConnection(database) as written,
        ):
            with adbc.AdbcStatement(written) as pragma:
                # A scratch file read once: no journal to write beside it.
                pragma.set_sql_query("PRAGMA journal_mode = OFF")
                pragma.execute_update()
            with adbc.AdbcStatement(written) as insert:
                insert.set_options(
                    **{
                        adbc.StatementOptions.INGEST_TARGET_TABLE.value: "rows",
                        adbc.StatementOptions.INGEST_MODE.value: adbc.INGEST_OPTION_MODE_CREATE,
                    }
                )
                insert.bind_stream(rows)
                insert.execute_update()
    except adbc.OperationalError as error:  # the driver's I/O errors: a full disk
        raise _unwritable(Path(path).parent, error) from error


def detach_staged(dbapi_connection: Any, info: dict[Any, Any]) -> None:
    """Detach the staging databases a connection attached, as it goes back to its pool (its
    transaction has ended). A connection that was closed took them with it."""
    attached: list[str] = info.pop(_ATTACHED, [])
    if dbapi_connection is None:
        return
    cursor = dbapi_connection.cursor()
    try:
        for schema in attached:
            cursor.execute(f'DETACH DATABASE "{schema}"')
    finally:
        cursor.close()
