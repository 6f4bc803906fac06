"""Large Arrow tables handed to SQLite without a Python object per cell.

The SQLite upsert binds every cell as a Python object (``bot.store.upsert._sqlite_pages``):
for the 2M leads of the benchmark the objects (0.6 s), the pages of parameters (0.4 s) and the
multi-row INSERTs (2.4 s) took 3.4 s, against 1.1 s for SQLite's own ``INSERT … SELECT`` of
the same rows into the same table. Here the rows are first written by ADBC's SQLite driver
(Apache Arrow's ``adbc-driver-sqlite``, which binds Arrow's buffers in C: 0.42–0.47 s for
those rows, in two halves at once) into database files of their own, which the writing
connection attaches and reads with ``INSERT … SELECT`` in the caller's transaction, as
PostgreSQL's upsert reads a ``COPY``-filled temporary table. The rows are cut into parts, each
written while SQLite reads the one before: the import's main thread waited 1.4 s for the two
halves of its tables to be written, 0.5 s for the first parts (profiled at 1M deals).

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
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
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


def free_attachments(connection: Connection) -> int:
    """How many more databases ``connection`` can attach (SQLite allows 10 by default)."""
    dbapi: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
    schemas = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
    attached = [schema for schema in schemas if schema not in ("main", "temp")]
    return int(dbapi.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)) - len(attached)


def staged(
    connection: Connection,
    rows: pa.Table,
    folder: Path | None,
    parts: int = 1,
    driven: Callable[[pa.Table], pa.Table] | None = None,
) -> Generator[TableClause, None, None]:
    """``rows`` cut into ``parts`` in their order, each larger than the one before
    (``_part_ends``; fewer parts for fewer rows), each made the driver's values by ``driven``
    (``bot.store.upsert._driver_array``; None: they are) and written to a new staging database
    in ``folder`` (the store's, where there is room for the rows; None: the system's temporary
    folder) and attached to ``connection``: yields the table to select each part from, in
    order, each in the order of its rows (``rowid``). While the caller reads a part, the next
    one is made and written on a thread (Arrow's casts, the driver and SQLite's steps all let
    go of the GIL), so that only the first part's is waited for."""
    ends = _part_ends(rows.num_rows, parts)
    pieces = [rows.slice(start, end - start) for start, end in itertools.pairwise([0, *ends])]
    if not pieces:
        return
    attached: list[str] = connection.connection.info.setdefault(_ATTACHED, [])
    with ThreadPoolExecutor(1, thread_name_prefix="kpibot-staging") as writer:
        writes = deque([writer.submit(_stage, folder, pieces[0], driven)])
        try:
            for following in [*pieces[1:], None]:
                path = writes.popleft().result()
                if following is not None:
                    writes.append(writer.submit(_stage, folder, following, driven))
                schema = f"kpibot_staged_{next(_names)}"
                try:
                    connection.exec_driver_sql(f'ATTACH DATABASE ? AS "{schema}"', (path,))
                finally:
                    os.unlink(path)
                attached.append(schema)
                yield sa_table("rows", *(sa_column(n) for n in rows.column_names), schema=schema)
        finally:
            # Written ahead of a caller that stopped early (its INSERT failed): removed too. A
            # part that failed removed its own file.
            for write in writes:
                if not write.cancel() and write.exception() is None:
                    os.unlink(write.result())


# How much larger each staging part is than the one before. The caller waits for the first part
# only, so it is the smallest; SQLite reads a part in 1.3-1.6 times as long as the staging
# thread takes to write it (the benchmark's deals and leads), so a part half as large again as
# the one before is still written by the time SQLite is done with that one.
_PART_GROWTH = 1.5


def _part_ends(count: int, parts: int) -> list[int]:
    """Where each of ``parts`` parts of ``count`` rows ends, each ``_PART_GROWTH`` times the
    one before, none empty (fewer parts for fewer rows)."""
    parts = min(parts, count)
    weights = list(itertools.accumulate(_PART_GROWTH**part for part in range(parts)))
    ends = [round(count * weight / weights[-1]) for weight in weights] if parts else []
    for part in range(parts):  # a row at least, and a row left for each part after
        after = ends[part - 1] + 1 if part else 1
        ends[part] = min(max(ends[part], after), count - (parts - 1 - part))
    return ends


def _stage(
    folder: Path | None, rows: pa.Table, driven: Callable[[pa.Table], pa.Table] | None
) -> str:
    """A new staging file in ``folder`` holding ``rows`` (made the driver's values by
    ``driven``): its path. A file that could not be written whole is removed."""
    if driven is not None:
        rows = driven(rows)
    try:
        handle, path = tempfile.mkstemp(prefix=".kpibot-staged-", suffix=".sqlite", dir=folder)
    except OSError as error:
        raise _unwritable(folder, error) from error
    os.close(handle)
    try:
        _write(path, rows)
    except BaseException:
        os.unlink(path)
        raise
    return path


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
            # A scratch file read once: no journal beside it, nothing to wait for on disk, and
            # SQLite's largest pages (a system call per page, each way; nothing updated in place).
            for setting in ("page_size = 65536", "journal_mode = OFF", "synchronous = OFF"):
                with adbc.AdbcStatement(written) as pragma:
                    pragma.set_sql_query(f"PRAGMA {setting}")
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
