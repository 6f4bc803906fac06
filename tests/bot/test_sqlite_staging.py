"""Large Arrow tables written to SQLite through a staging database (``bot.store.sqlite_staging``)
store exactly what binding their cells stores, and leave nothing attached or behind."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, event, func, inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.store import sqlite_staging
from bot.store import upsert as upsert_module
from bot.store.database import make_engine, migrate, session_factory, transaction
from bot.store.models import Base, Opportunity
from bot.store.sqlite_staging import staged
from bot.store.upsert import upsert

OPPORTUNITIES = Base.metadata.tables["opportunities"]
REPS = Base.metadata.tables["reps"]
_COLUMNS = [c.name for c in OPPORTUNITIES.c]
_TYPES: dict[str, pa.DataType] = {
    "source": pa.string(),
    "source_id": pa.string(),
    "name": pa.string(),
    "amount": pa.float64(),
    "probability": pa.float64(),
    "created_at": pa.date32(),
    "close_date": pa.date32(),
    "stage": pa.string(),
    "is_closed": pa.bool_(),
    "is_won": pa.bool_(),
    "currency": pa.string(),
    "owner_id": pa.int64(),
}


def _deal(draw: Any, key: str) -> dict[str, Any]:
    texts = st.one_of(st.none(), st.text(max_size=6))
    numbers = st.one_of(
        st.none(),
        st.integers(-(10**6), 10**6).map(float),  # whole: NUMERIC stores them as integers
        st.floats(-1e9, 1e9, allow_nan=False),
    )
    days = st.one_of(st.none(), st.dates())  # years 1 to 9999: ISO text has four digits
    return {
        "source": "crm",
        "source_id": key,
        "name": draw(texts),
        "amount": draw(numbers),
        "probability": draw(numbers),
        "created_at": draw(days),
        "close_date": draw(days),
        "stage": draw(st.sampled_from(["Won", " Open ", "Clôturé"])),
        "is_closed": draw(st.booleans()),
        "is_won": draw(st.booleans()),
        "currency": draw(st.sampled_from(["EUR", "GBP"])),
        "owner_id": None,
    }


@st.composite
def _loads(draw: Any) -> list[pa.Table]:
    """A first load (keys distinct: the bulk path), then one or two upserts whose keys may
    repeat and may be the first load's."""
    keys = st.text("abcé1", min_size=1, max_size=3)
    first = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    loads = [[_deal(draw, key) for key in first]]
    for _ in range(draw(st.integers(1, 2))):
        later = draw(st.lists(st.one_of(st.sampled_from(first), keys), min_size=1, max_size=8))
        loads.append([_deal(draw, key) for key in later])
    return [pa.Table.from_pylist(rows, pa.schema(_TYPES)) for rows in loads]


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """A migrated empty store, copied for each example (migrating takes longer than one)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()
        yield path


def _written(template: Path, loads: list[pa.Table]) -> tuple[list[int], list[tuple[Any, ...]]]:
    """What each load reported and the opportunities stored, each value with its SQLite type."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kpibot.db"
        shutil.copyfile(template, path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            counts = []
            for rows in loads:
                with transaction(session_factory(engine)) as session:
                    counts.append(upsert(session, OPPORTUNITIES, rows))
            stored = ", ".join(f'"{c}", typeof("{c}")' for c in _COLUMNS)
            with engine.connect() as connection:
                read = f"SELECT {stored} FROM opportunities ORDER BY id"
                return counts, [tuple(row) for row in connection.exec_driver_sql(read)]
        finally:
            engine.dispose()


@settings(max_examples=60, deadline=None)
@given(loads=_loads())
def test_a_staged_write_stores_what_binding_the_cells_stores(
    template: Path, loads: list[pa.Table]
) -> None:
    """The same loads, staged and bound: the same counts, the same rows in the same order (ids
    included), every value of the same SQLite type (NUMERIC's whole floats as integers, dates
    as ISO text, booleans as 0/1, text as given), the last row of a repeated key winning."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bot.store.upsert._BULK", 1)
        staged = _written(template, loads)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bot.store.upsert._BULK", 10**9)
        bound = _written(template, loads)
    assert staged == bound
    assert staged[0][0] == loads[0].num_rows


def _staged(connection: Connection) -> list[str]:
    """The staging databases attached to ``connection``."""
    names = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
    return [name for name in names if name.startswith("kpibot_staged_")]


def test_a_staged_write_leaves_nothing_attached_or_behind(
    sqlite_store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging file is gone once attached, and the attachment once the connection is back
    in the pool: the next transaction on the same connection sees the store alone."""
    monkeypatch.setattr("bot.store.upsert._BULK", 1)
    rows = pa.table({"source": ["hr"] * 3, "source_id": ["a", "b", "c"], "name": ["A", "B", "C"]})
    with transaction(session_factory(sqlite_store)) as session:
        assert upsert(session, REPS, rows) == 3
        assert len(_staged(session.connection())) == 3  # a part per row: four asked for
        for schema in _staged(session.connection()):  # read once: SQLite's largest pages
            page = session.connection().exec_driver_sql(f'PRAGMA "{schema}".page_size')
            assert page.scalar_one() == 65_536
        assert list(tmp_path.glob(".kpibot-staged-*")) == []
        again = rows.set_column(2, "name", pa.array(["A", "B2", "C"]))
        assert upsert(session, REPS, again) == 1  # more stages in one transaction
        assert len(_staged(session.connection())) == 6
        used = session.connection().connection.dbapi_connection
    with sqlite_store.connect() as connection:
        assert connection.connection.dbapi_connection is used  # the pool's one connection
        assert _staged(connection) == []
        assert connection.scalar(select(func.count()).select_from(REPS)) == 3
    assert list(tmp_path.glob(".kpibot-staged-*")) == []


def test_a_staged_bulk_load_that_fails_is_rolled_back_with_its_indexes(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged load refused by the store (a rep without a name, NOT NULL) raises the store's
    error and leaves the table as it was, the indexes it dropped built again."""
    monkeypatch.setattr("bot.store.upsert._BULK", 2)
    rows = pa.table({"source": ["hr"] * 3, "source_id": ["a", "b", "c"], "name": ["A", "B", None]})
    with pytest.raises(IntegrityError), transaction(session_factory(sqlite_store)) as session:
        upsert(session, REPS, rows)
    assert "ix_reps_name" in {index["name"] for index in inspect(sqlite_store).get_indexes("reps")}
    with sqlite_store.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(REPS)) == 0
        assert _staged(connection) == []


def test_columns_the_driver_would_store_otherwise_are_bound(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timestamp column (whose text ADBC would write otherwise than sqlite3 binds it) is
    written by binding its cells, as SQLAlchemy stores a datetime."""
    monkeypatch.setattr("bot.store.upsert._BULK", 1)
    rows = pa.table(
        {
            "source": ["t"],
            "source_id": ["o1"],
            "stage": ["Won"],
            "is_closed": [True],
            "is_won": [True],
            "currency": ["EUR"],
            "deleted_at": pa.array([datetime(2026, 7, 3, 4, 5, 6, 789)], pa.timestamp("us")),
        }
    )
    with transaction(session_factory(sqlite_store)) as session:
        assert upsert(session, OPPORTUNITIES, rows) == 1
        assert _staged(session.connection()) == []
    with sqlite_store.connect() as connection:
        stored = connection.scalar(select(Opportunity.deleted_at))
        raw = connection.exec_driver_sql("SELECT deleted_at FROM opportunities").scalar()
    assert stored == datetime(2026, 7, 3, 4, 5, 6, 789)
    assert raw == "2026-07-03 04:05:06.000789"


def test_a_staging_file_that_cannot_be_written_is_the_stores_failure(
    sqlite_store: Engine, tmp_path: Path
) -> None:
    """A staging file that cannot be made (here its folder is a file; a full disk alike) fails
    as the store's own writes do, with SQLAlchemy's OperationalError naming the folder, which
    commands report without a traceback, and nothing is attached."""
    not_a_folder = tmp_path / "store.db"
    not_a_folder.write_text("")
    rows = pa.table({"source": ["hr"], "source_id": ["a"], "name": ["A"]})
    with sqlite_store.connect() as connection:
        with pytest.raises(OperationalError, match=f"staging rows in {not_a_folder}"):
            next(staged(connection, rows, not_a_folder))
        assert _staged(connection) == []


def test_the_next_part_is_written_while_the_caller_reads_the_one_before(
    sqlite_store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a part is handed over, the next one is being written on the staging thread; a
    caller that stops early (its INSERT failed) leaves no file behind, the part written ahead
    included, and a part that cannot be written fails at its turn."""
    real = sqlite_staging._write
    writing: dict[str, str] = {}
    second = threading.Event()

    def recorded(path: str, rows: pa.Table) -> None:
        writing[rows.column("source_id")[0].as_py()] = threading.current_thread().name
        if rows.column("source_id")[0].as_py() == "b":
            second.set()
        if rows.column("source_id")[0].as_py() == "c":
            raise OperationalError("staging rows in the test", None, OSError("disk full"))
        real(path, rows)

    monkeypatch.setattr(sqlite_staging, "_write", recorded)
    rows = pa.table({"source": ["hr"] * 3, "source_id": ["a", "b", "c"], "name": ["A", "B", "C"]})
    with sqlite_store.connect() as connection:
        with closing(staged(connection, rows, tmp_path, 3)) as parts:
            first = next(parts)
            assert second.wait(10), "the second part was not written ahead"
            assert connection.execute(select(first.c.source_id)).scalars().all() == ["a"]
            assert next(parts) is not None
            with pytest.raises(OperationalError, match="staging rows in the test"):
                next(parts)
        assert [name.startswith("kpibot-staging") for name in writing.values()] == [True] * 3
        assert list(tmp_path.glob(".kpibot-staged-*")) == []
        second.clear()
        with closing(staged(connection, rows.slice(0, 2), tmp_path, 2)) as parts:
            next(parts)
            assert second.wait(10)
        assert list(tmp_path.glob(".kpibot-staged-*")) == []  # the one written ahead too
        before = _staged(connection)
        assert list(staged(connection, rows.slice(0, 0), tmp_path, 4)) == []  # no rows, no part
        assert _staged(connection) == before


def test_rows_are_bound_once_no_more_databases_can_be_attached(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite attaches ten databases at most (by default): each large table takes half the
    free ones at most, so that five tables of a transaction are staged; the sixth is written
    by binding its cells, and all are written the same."""
    monkeypatch.setattr("bot.store.upsert._BULK", 1)
    names = pa.array([f"N{n}" for n in range(8)])
    attached = []
    with transaction(session_factory(sqlite_store)) as session:
        connection = session.connection()
        dbapi = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        dbapi.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 10)
        for source in ("hr", "crm", "erp", "bi", "dw", "ops"):
            keys = pa.array([f"{source}-{n}" for n in range(8)])
            rows = pa.table({"source": [source] * 8, "source_id": keys, "name": names})
            assert upsert(session, REPS, rows) == 8
            attached.append(len(_staged(connection)))
        assert attached == [4, 7, 8, 9, 10, 10]
    with sqlite_store.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(REPS)) == 48


def _open_deals(count: int) -> pa.Table:
    """``count`` open deals of one source, ids D00, D01... in key order: what a first load
    writes."""
    return pa.table(
        {
            "source": ["crm"] * count,
            "source_id": [f"D{n:02}" for n in range(count)],
            "stage": ["Open"] * count,
            "is_closed": [False] * count,
            "is_won": [False] * count,
            "currency": ["EUR"] * count,
        }
    )


def test_a_staged_tables_dates_are_made_text_on_the_staging_thread(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's values (dates as ISO text) are made part by part on the thread that
    writes the staging files, not on the one the store's INSERTs wait on."""
    monkeypatch.setattr("bot.store.upsert._BULK", 1)
    real = upsert_module._driver_array
    threads: list[str] = []

    def recorded(values: Any, dialect: Any) -> Any:
        if pa.types.is_date(values.type):
            threads.append(threading.current_thread().name)
        return real(values, dialect)

    monkeypatch.setattr(upsert_module, "_driver_array", recorded)
    count = 12
    rows = _open_deals(count).append_column(
        "created_at", pa.array([datetime(2026, 3, 1 + n).date() for n in range(count)])
    )
    with transaction(session_factory(sqlite_store)) as session:
        assert upsert(session, OPPORTUNITIES, rows) == count
    assert threads and all(name.startswith("kpibot-staging") for name in threads), threads
    with sqlite3.connect(sqlite_store.url.database or "") as connection:
        stored = connection.execute(
            "SELECT source_id, created_at FROM opportunities ORDER BY source_id"
        ).fetchall()
    assert stored == [(f"D{n:02}", f"2026-03-{1 + n:02}") for n in range(count)]


def test_a_first_load_keeps_the_index_on_its_marks_and_builds_the_others_after(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty table, the owner index (random keys) is dropped for the load and built
    again; the ``changed_in`` index, whose entries the load appends (one version, rowids in
    order), is kept. Both hold every row afterwards."""
    monkeypatch.setattr("bot.store.upsert._BULK", 1)
    statements: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(sqlite_store, "before_cursor_execute", executed)
    count = 9
    rows = _open_deals(count)
    with transaction(session_factory(sqlite_store)) as session:
        assert upsert(session, OPPORTUNITIES, rows) == count
        version = session.execute(select(func.max(Opportunity.changed_in))).scalar_one()
    dropped = [s for s in statements if s.startswith("DROP INDEX")]
    assert dropped == ["DROP INDEX ix_opportunities_owner_id"]
    with sqlite3.connect(sqlite_store.url.database or "") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {row[1] for row in connection.execute("PRAGMA index_list(opportunities)")}
        assert {"ix_opportunities_owner_id", "ix_opportunities_changed_in"} <= names
        by_version = connection.execute(
            "SELECT count(*) FROM opportunities INDEXED BY ix_opportunities_changed_in "
            "WHERE changed_in = ?",
            (version,),
        ).fetchone()
    assert by_version == (count,)


@settings(max_examples=300, deadline=None)
@given(count=st.integers(0, 3_000_000), parts=st.integers(1, 8))
def test_staging_parts_grow_from_a_small_first_one_and_cover_every_row_once(
    count: int, parts: int
) -> None:
    """The first part, the one waited for, is the smallest; each part after is up to half as
    large again (the rounding aside), none is empty, and together they are the rows in order."""
    ends = sqlite_staging._part_ends(count, parts)
    sizes = [end - start for start, end in itertools.pairwise([0, *ends])]
    assert sum(sizes) == count and len(sizes) == min(count, parts)
    assert all(size >= 1 for size in sizes)
    assert all(
        earlier <= later <= earlier * 1.5 + 2 for earlier, later in itertools.pairwise(sizes)
    )
    if count >= 1000 * parts:  # far from the one-row floor: the first is the growth's share
        assert sizes[0] == pytest.approx(count * 0.5 / (1.5**parts - 1), abs=1)


def test_a_million_rows_in_four_parts_wait_for_an_eighth_of_them_not_a_quarter() -> None:
    assert sqlite_staging._part_ends(1_000_000, 4) == [123_077, 307_692, 584_615, 1_000_000]
