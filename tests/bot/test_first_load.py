"""A first load written once (``bot.store.first_load``): an SQLite store's first import goes
through a rollback journal, only when the store holds no fact and no other connection has it,
and the store is in WAL again once the load's transaction has ended, whatever its end."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from bot.importers import csv_import
from bot.importers.csv_import import import_csv
from bot.store.database import make_engine, migrate, session_factory, transaction
from bot.store.first_load import back_to_wal, enter_wal
from bot.store.models import Lead, Opportunity
from tests.bot.journal_support import journal_of, journal_while_writing
from tests.bot.test_csv_import import ENGLISH, FIXTURES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    yield engine, path
    engine.dispose()


def imported(engine: Engine) -> None:
    with transaction(session_factory(engine)) as session:
        import_csv(session, "crm", ENGLISH, FIXTURES / "crm", "USD")


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        deals = connection.scalar(select(func.count()).select_from(Opportunity))
        leads = connection.scalar(select(func.count()).select_from(Lead))
    return int(deals or 0), int(leads or 0)


def test_a_first_import_is_written_through_a_rollback_journal_then_the_store_is_in_wal(
    store: tuple[Engine, Path],
) -> None:
    engine, path = store
    modes = journal_while_writing(engine, "opportunities")
    imported(engine)
    assert modes == ["delete"]
    assert journal_of(path) == "wal"
    with engine.connect() as connection:  # the pool's connection, as the next writer finds it
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    assert counts(engine) == (4, 2)


def test_an_import_into_a_store_holding_facts_stays_in_wal(store: tuple[Engine, Path]) -> None:
    engine, path = store
    imported(engine)
    modes = journal_while_writing(engine, "opportunities")
    with engine.begin() as connection:  # an edited deal, so that the import writes again
        connection.execute(text("UPDATE opportunities SET amount = amount + 1"))
    imported(engine)
    assert modes == ["wal"]
    assert journal_of(path) == "wal"


def test_a_first_import_stays_in_wal_while_another_connection_has_the_store(
    store: tuple[Engine, Path],
) -> None:
    engine, path = store
    modes = journal_while_writing(engine, "opportunities")
    with closing(sqlite3.connect(path)) as other:  # another process's connection, say
        other.execute("SELECT count(*) FROM opportunities").fetchall()
        imported(engine)
        assert other.execute("SELECT count(*) FROM opportunities").fetchone() == (4,)
    assert modes == ["wal"]
    assert journal_of(path) == "wal"


def test_a_first_import_that_fails_leaves_the_store_empty_and_in_wal(
    store: tuple[Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, path = store

    def failing(session: object) -> int:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(csv_import, "bump_data_version", failing)
    modes = journal_while_writing(engine, "opportunities")
    with pytest.raises(RuntimeError, match="disk went away"):
        imported(engine)
    assert modes == ["delete"]
    assert counts(engine) == (0, 0)
    assert journal_of(path) == "wal"


def test_a_connection_opened_during_a_first_load_works_and_the_store_returns_to_wal(
    store: tuple[Engine, Path], tmp_path: Path
) -> None:
    engine, path = store
    newcomer = make_engine(f"sqlite:///{path}")  # a process started while the load runs
    try:
        with transaction(session_factory(engine)) as session:
            import_csv(session, "crm", ENGLISH, FIXTURES / "crm", "USD")
            # The load holds the store: WAL is refused to the newcomer, which still connects
            # and reads what was committed (nothing yet).
            with newcomer.connect() as connection:
                assert connection.scalar(select(func.count()).select_from(Opportunity)) == 0
        with newcomer.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(Opportunity)) == 4
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        newcomer.dispose()
    assert journal_of(path) == "wal"


def test_a_connection_refused_wal_tries_again_when_it_goes_back_to_its_pool(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    with (
        closing(sqlite3.connect(path, isolation_level=None)) as loader,
        closing(sqlite3.connect(path, isolation_level=None)) as reader,
    ):
        loader.execute("CREATE TABLE t (x)")
        assert loader.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchall()  # holds the store's shared lock
        info: dict[object, object] = {}
        enter_wal(loader, info)
        assert loader.execute("PRAGMA journal_mode").fetchone() == ("delete",) and info
        back_to_wal(loader, info)  # the reader still holds it: refused again, still marked
        assert loader.execute("PRAGMA journal_mode").fetchone() == ("delete",) and info
        reader.execute("COMMIT")
        back_to_wal(loader, info)
        assert loader.execute("PRAGMA journal_mode").fetchone() == ("wal",) and not info
        back_to_wal(loader, info)  # unmarked: nothing to do
    assert journal_of(path) == "wal"


def test_a_new_connection_raises_what_is_not_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with closing(sqlite3.connect(path)) as writer:
        writer.execute("CREATE TABLE t (x)")
    read_only = closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    with read_only as connection, pytest.raises(sqlite3.OperationalError, match="readonly"):
        enter_wal(connection, {})


CRASHING_LOAD = """
import os, sys
from bot.importers.csv_import import import_csv
from bot.store import upsert
from bot.store.database import make_engine, session_factory
from tests.bot.test_csv_import import ENGLISH, FIXTURES

def crash(session, *args):
    # The load has written pages to the store itself (the cache spilled), not yet committed.
    session.connection().exec_driver_sql("PRAGMA cache_size = 1")
    session.connection().exec_driver_sql("CREATE TABLE filler AS SELECT * FROM opportunities")
    session.connection().exec_driver_sql(
        "INSERT INTO filler SELECT filler.* FROM filler, (SELECT 1 UNION SELECT 2 UNION SELECT 3)"
    )
    mode = session.connection().exec_driver_sql("PRAGMA journal_mode").scalar_one()
    with open(sys.argv[1], "rb") as written:
        changes = int.from_bytes(written.read(28)[24:28], "big")  # the file change counter
    print(mode, os.path.exists(sys.argv[1] + "-journal"), changes, flush=True)
    os._exit(3)

import bot.importers.csv_import as csv_import
csv_import.bump_data_version = crash
engine = make_engine("sqlite:///" + sys.argv[1])
with session_factory(engine).begin() as session:
    import_csv(session, "crm", ENGLISH, FIXTURES / "crm", "USD")
"""


def test_a_process_that_dies_in_its_first_load_leaves_a_store_that_rolls_back_into_wal(
    store: tuple[Engine, Path],
) -> None:
    """The hot journal a dead first load leaves is rolled back by the next connection, which
    then puts the store in WAL: nothing of the load is there, and the store is whole."""
    engine, path = store
    engine.dispose()
    before = int.from_bytes(path.read_bytes()[24:28], "big")
    root = Path(__file__).resolve().parents[2]
    died = subprocess.run(
        [sys.executable, "-c", CRASHING_LOAD, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert died.returncode == 3, died.stderr
    mode, journal, changes = died.stdout.split()
    # It died holding a hot journal, the store's own pages already written over.
    assert (mode, journal) == ("delete", "True") and int(changes) != before
    reopened = make_engine(f"sqlite:///{path}")
    try:
        with reopened.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            tables = connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars()
            assert "filler" not in list(tables)
        assert counts(reopened) == (0, 0)
    finally:
        reopened.dispose()
    assert not Path(f"{path}-journal").exists()
