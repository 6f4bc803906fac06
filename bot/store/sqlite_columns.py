"""Whole SELECTs of an SQLite file read as Arrow tables by a child process: how a whole load
of the facts reads its large tables (``bot.store.facts_loader``).

Python's sqlite3 makes a Python object of every value: reading 1M opportunities and 2M
leads that way took 9-12 s on this project's machines, most of building a snapshot. The
ADBC SQLite driver fills Arrow arrays in C instead (2.6 s for the same rows). It carries its
own copy of SQLite, and two copies of SQLite in one process must not open the same database:
POSIX locks belong to the process, so one copy closing the file drops the locks the other
holds (SQLite's "How To Corrupt" §2.2.1; tried in process, a read missed a commit). In a
child process it is one more reader of the file, as a second ``kpibot serve`` is.

The child reads the statements two at a time (the driver steps SQLite without the GIL) and
writes each result to its standard output as an Arrow IPC stream, in order."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa

# The driver infers each column's type from the first batch of rows and refuses a later value
# of another type (a text after a first batch of NULLs): one batch holding the whole result
# makes it look at every value. The largest power of two the option accepts.
_WHOLE = str(2**30)
_BUSY_MS = 30_000


class ColumnsUnreadable(Exception):
    """The child process could not read the statements (its error says why)."""


def read_tables(database: Path, statements: list[str]) -> list[pa.Table]:
    """The rows of each of ``statements`` (SQL without parameters), read from ``database``."""
    request = json.dumps({"database": str(database), "statements": statements}).encode()
    # -P: the module from where kpibot is installed, never from the working directory. Its
    # error output goes to a file: a pipe the parent reads only at the end could fill up and
    # stop the child while the parent waits for its results.
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            [sys.executable, "-P", "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        ) as child,
    ):
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(request)
        child.stdin.close()
        results = pa.PythonFile(_io(child.stdout), mode="r")
        tables: list[pa.Table] = []
        try:
            for _ in statements:
                tables.append(pa.ipc.open_stream(results).read_all())
        except (pa.ArrowException, OSError):  # a stream cut short is an OSError
            pass  # the child stopped: its exit status and error output say why
        code = child.wait()
        errors.seek(0)
        error = errors.read().decode(errors="replace").strip()
    if code or len(tables) < len(statements):
        # A traceback's last line is the error; the driver's may go on with its query.
        reason = next((line for line in error.splitlines() if "Error: " in line), error)
        reason = reason or "its results ended before the last one"
        raise ColumnsUnreadable(f"reading {database} failed (exit {code}): {reason}")
    return tables


def _io(pipe: IO[bytes]) -> io.IOBase:
    # A buffered pipe is an IOBase; its declared type is the protocol, which the stubs refuse.
    return cast(io.IOBase, pipe)


def _read(database: str, sql: str) -> pa.Table:
    # Run in the child only: the driver's own SQLite must never open the store in a process
    # whose sqlite3 holds it (it may open a staging file there: bot.store.sqlite_staging).
    # The driver's own API, not its DB-API module, which imports pandas (a second more for
    # the child).
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite

    with adbc_driver_sqlite.connect(database) as handle, adbc.AdbcConnection(handle) as connection:
        with adbc.AdbcStatement(connection) as pragma:
            # As the engine's connections wait (bot.store.database.make_engine): a writer's
            # commit, or the other read opening the write-ahead log, holds a lock briefly.
            pragma.set_sql_query(f"PRAGMA busy_timeout = {_BUSY_MS}")
            pragma.execute_update()
        with adbc.AdbcStatement(connection) as statement:
            statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: _WHOLE})
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            return pa.RecordBatchReader._import_from_c(stream.address).read_all()


def _serve(request: dict[str, Any]) -> None:
    out = pa.PythonFile(_io(sys.stdout.buffer), mode="w")
    with ThreadPoolExecutor(2) as pool:
        for table in pool.map(lambda sql: _read(request["database"], sql), request["statements"]):
            with pa.ipc.new_stream(out, table.schema) as writer:
                writer.write_table(table)
    out.flush()


if __name__ == "__main__":
    _serve(json.load(sys.stdin))
