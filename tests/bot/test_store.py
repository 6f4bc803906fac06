"""The store on SQLite and PostgreSQL: migrations, idempotent upserts, data version, facts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from bot.store.database import (
    bump_data_version,
    data_version,
    make_engine,
    migrate,
    session_factory,
    transaction,
)
from bot.store.day_numbers import day_number
from bot.store.facts_loader import FactsCache, load_facts
from bot.store.models import Base, Opportunity, OpportunityHistory, Rep, Team
from bot.store.upsert import ids_by_source_id, key_runs, upsert


def seed(engine: Engine, amount: str = "1000.00") -> int:
    with transaction(session_factory(engine)) as session:
        changed = upsert(
            session,
            Team.__table__,
            [{"source": "t", "source_id": "A", "name": "A", "region": "North", "manager": "Ann"}],
        )
        team_ids = ids_by_source_id(session, Team.__table__, "t", ["A"])
        changed += upsert(
            session,
            Rep.__table__,
            [{"source": "t", "source_id": "alice", "name": "alice", "email": None,
              "team_id": team_ids["A"], "slack_user_id": None, "active_from": None,
              "active_to": None}],
        )  # fmt: skip
        rep_ids = ids_by_source_id(session, Rep.__table__, "t", ["alice"])
        rows = [
            {"source": "t", "source_id": "o1", "name": None, "account_id": None,
             "owner_id": rep_ids["alice"], "product": None, "stage": "Won", "is_closed": True,
             "is_won": True, "amount": Decimal(amount), "currency": "EUR",
             "created_at": date(2026, 7, 1), "close_date": date(2026, 7, 20),
             "probability": None, "forecast_category": None, "last_activity_at": None,
             "updated_at": None},
            {"source": "t", "source_id": "o2", "name": None, "account_id": None,
             "owner_id": rep_ids["alice"], "product": None, "stage": "Open", "is_closed": False,
             "is_won": False, "amount": Decimal("500.00"), "currency": "GBP",
             "created_at": date(2026, 7, 2), "close_date": date(2026, 9, 20),
             "probability": 0.4, "forecast_category": None, "last_activity_at": None,
             "updated_at": None},
        ]  # fmt: skip
        changed += upsert(session, Opportunity.__table__, rows)
        if changed:
            bump_data_version(session)
    return changed


def test_migrations_create_the_canonical_model_and_are_idempotent(store: Engine) -> None:
    migrate(store)  # a second time: nothing to do, no error
    tables = set(inspect(store).get_table_names())
    assert {"teams", "reps", "accounts", "leads", "opportunities", "spend", "surveys",
            "fx_rates", "data_version", "alembic_version"} <= tables  # fmt: skip


def test_reimport_changes_nothing_and_keeps_the_data_version(store: Engine) -> None:
    assert seed(store) == 4
    with session_factory(store)() as session:
        assert data_version(session) == 1
    assert seed(store) == 0
    with session_factory(store)() as session:
        assert data_version(session) == 1
    # a changed amount is one changed row and a new data version
    assert seed(store, amount="1200.00") == 1
    with session_factory(store)() as session:
        assert data_version(session) == 2


def test_facts_in_base_currency_minor_units(store: Engine) -> None:
    seed(store)
    facts = load_facts(store, "EUR", {"GBP": Decimal("1.15")}, 0.5)
    opps = facts.opportunities.sort_values("created")
    # o1 in EUR, o2: 500 GBP at 1.15
    assert list(opps["amount"]) == [100_000, 57_500]
    assert list(opps["status"]) == ["won", "open"]
    assert list(opps["probability"]) == [0.5, 0.4]  # o1 has none: the default
    assert (opps["team"].iloc[0], opps["region"].iloc[0], opps["rep"].iloc[0]) == (
        "A",
        "North",
        "alice",
    )


def test_facts_are_reloaded_only_when_the_data_version_changes(store: Engine) -> None:
    seed(store)
    cache = FactsCache(store, "EUR", {"GBP": Decimal("1.15")}, 0.5)
    first = cache.get()
    assert cache.get() is first
    seed(store, amount="2000.00")
    # Nobody published the change: the facts in hand answer while they are rebuilt.
    assert cache.get() is first
    cache.wait()
    second = cache.get()
    assert second is not first
    assert second.opportunities.sort_values("created")["amount"].iloc[0] == 200_000


OPPORTUNITIES = Base.metadata.tables["opportunities"]


# A row of every kind of value the facts use, as the importers pass them.
def _opportunity(source_id: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "source": "t", "source_id": source_id, "name": "Deal", "account_id": None,
        "owner_id": None, "product": None, "stage": "Won", "is_closed": True, "is_won": False,
        "amount": Decimal("1234.56"), "currency": "EUR", "created_at": date(2026, 7, 1),
        "close_date": date(2026, 7, 20), "probability": 0.25, "forecast_category": None,
        "last_activity_at": None, "updated_at": datetime(2026, 7, 3, 4, 5, 6, 789, tzinfo=UTC),
    }  # fmt: skip
    row.update(values)
    return row


def test_upsert_stores_values_as_sqlalchemy_binds_them(store: Engine) -> None:
    """The driver-level upsert writes what SQLAlchemy's own insert writes, read raw and
    through the ORM, so that existing stores and the facts loader see no difference."""
    fast = _opportunity("fast")
    slow = _opportunity("slow", amount=None, created_at=None, probability=None)
    slow_full = _opportunity("slow-full")
    with transaction(session_factory(store)) as session:
        assert upsert(session, OPPORTUNITIES, [fast, {**slow, "source_id": "fast-2"}]) == 2
        session.execute(insert(OPPORTUNITIES), [slow_full, slow])
    with session_factory(store)() as session:
        raw = {
            row[0]: row[1:]
            for row in session.execute(
                text("SELECT source_id, amount, created_at, updated_at, is_closed, is_won,"
                     " probability FROM opportunities")
            )
        }  # fmt: skip
        assert raw["fast"] == raw["slow-full"]
        assert raw["fast-2"] == raw["slow"]
        orm = {o.source_id: o for o in session.scalars(select(Opportunity))}
        # changed_in: the upsert marks its rows with the version the transaction will make
        # (SQLite) where the ORM's insert leaves NULL; both mean pending (bot.store.changes).
        columns = [c.key for c in OPPORTUNITIES.c if c.key not in ("id", "source_id", "changed_in")]
        for a, b in (("fast", "slow-full"), ("fast-2", "slow")):
            assert [getattr(orm[a], c) for c in columns] == [getattr(orm[b], c) for c in columns]
        assert orm["fast"].amount == Decimal("1234.56")
        assert orm["fast"].created_at == date(2026, 7, 1)


def test_dates_are_read_as_day_numbers_and_loaded_as_the_same_dates(store: Engine) -> None:
    """The facts select their dates as whole days since 1970-01-01 (``day_number``) on
    SQLite and PostgreSQL alike, before the epoch and NULL included, and load them as the
    dates they are."""
    days = [date(1969, 12, 31), date(1970, 1, 1), date(2026, 7, 1), date(2096, 2, 29), None]
    rows = [_opportunity(f"o{i}", created_at=day) for i, day in enumerate(days)]
    with transaction(session_factory(store)) as session:
        upsert(session, OPPORTUNITIES, rows)
        bump_data_version(session)
    with store.connect() as connection:
        numbers = connection.scalars(
            select(day_number(Opportunity.created_at, "n")).order_by(Opportunity.source_id)
        ).all()
    assert numbers == [None if d is None else (d - date(1970, 1, 1)).days for d in days]
    assert numbers[:3] == [-1, 0, 20635]

    created = load_facts(store, "EUR", {}, 0.5).opportunities["created"]

    assert created.dtype == "datetime64[ns]"
    assert [None if pd.isna(d) else d.date() for d in created] == days


def test_upsert_counts_inserted_and_changed_rows_only(store: Engine) -> None:
    rows = [_opportunity(f"o{i}") for i in range(5)]
    with transaction(session_factory(store)) as session:
        assert upsert(session, OPPORTUNITIES, rows) == 5
        assert upsert(session, OPPORTUNITIES, rows) == 0
        changed = [
            _opportunity("o0", amount=Decimal("1234.57")),  # a value changed
            _opportunity("o1", name=None),  # a value became NULL
            _opportunity("o2"),  # unchanged
            _opportunity("o3", updated_at=None),
            _opportunity("o4", is_won=True),
            _opportunity("o5"),  # new
        ]
        assert upsert(session, OPPORTUNITIES, changed) == 5
        assert upsert(session, OPPORTUNITIES, changed) == 0
        # NULL back to a value is a change too (IS DISTINCT FROM, not <>)
        assert upsert(session, OPPORTUNITIES, rows[1:2]) == 1
    with session_factory(store)() as session:
        amounts = dict(session.execute(select(Opportunity.source_id, Opportunity.amount)).all())
        assert amounts["o0"] == Decimal("1234.57")
        assert len(amounts) == 6


def test_upsert_in_several_batches_and_in_the_callers_transaction(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.store.upsert._BATCH", 5)
    monkeypatch.setattr("bot.store.upsert._SQLITE_PAGE", 2)  # and a short last page
    rows = [_opportunity(f"o{i}") for i in range(10)]
    with transaction(session_factory(store)) as session:
        assert upsert(session, OPPORTUNITIES, rows) == 10
        assert upsert(session, OPPORTUNITIES, rows) == 0
    with session_factory(store)() as session, session.begin():
        assert upsert(session, OPPORTUNITIES, [_opportunity("o10")]) == 1
        session.rollback()  # the caller owns the transaction: nothing is left behind
    with session_factory(store)() as session:
        assert session.scalar(select(func.count()).select_from(Opportunity)) == 10


def test_a_bulk_load_that_fails_leaves_the_indexes_it_dropped(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load into an empty table drops its secondary indexes and builds them again
    afterwards; when it is its transaction's first write and fails, the rollback brings them
    back (sqlite3 begins a transaction only before a write, not before a DROP INDEX)."""
    monkeypatch.setattr("bot.store.upsert._BULK", 2)
    monkeypatch.setattr("bot.store.upsert._SQLITE_PAGE", 1)
    rows = pa.table({"source": ["hr"] * 3, "source_id": ["a", "b", "c"], "name": ["A", "B", None]})
    # The third rep has no name, a NOT NULL column.
    with pytest.raises(IntegrityError), transaction(session_factory(sqlite_store)) as session:
        upsert(session, Rep.__table__, rows)
    indexes = {index["name"] for index in inspect(sqlite_store).get_indexes("reps")}
    assert "ix_reps_name" in indexes
    with session_factory(sqlite_store)() as session:
        assert session.scalar(select(func.count()).select_from(Rep)) == 0


@pytest.mark.parametrize("form", ["arrow", "mappings"])
def test_a_bulk_load_writes_its_rows_in_key_order(
    sqlite_store: Engine, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """Into an empty table the rows are inserted sorted by (source, source_id), byte-wise as
    the unique index holds them, whatever order they came in; a load whose keys repeat takes
    the upsert instead, the last row of a key winning."""
    monkeypatch.setattr("bot.store.upsert._BULK", 2)
    names = ["b", "é", "a10", "a9", "A", "a1"]
    rows = pa.table({"source": ["crm"] * 6, "source_id": names, "name": [n.upper() for n in names]})
    given: Any = rows if form == "arrow" else rows.to_pylist()
    with transaction(session_factory(sqlite_store)) as session:
        assert upsert(session, Rep.__table__, given) == 6
    with session_factory(sqlite_store)() as session:
        stored = session.execute(select(Rep.source_id, Rep.name).order_by(Rep.id)).all()
    assert stored == [(n, n.upper()) for n in sorted(names, key=lambda n: n.encode())]

    again = pa.table({"source": ["hr"] * 3, "source_id": ["z", "y", "z"], "name": ["1", "2", "3"]})
    with transaction(session_factory(sqlite_store)) as session:
        session.execute(delete(Rep))
        upsert(session, Rep.__table__, again if form == "arrow" else again.to_pylist())
    with session_factory(sqlite_store)() as session:
        stored = session.execute(select(Rep.source_id, Rep.name).order_by(Rep.id)).all()
    assert stored == [("z", "3"), ("y", "2")]


def test_ids_are_looked_up_by_searching_the_key_index(sqlite_store: Engine) -> None:
    """A lookup by source ids (a sync's deletions, the import's references) finds only the
    given source's rows, and SQLite searches the (source, source_id) index for them: a row
    value IN made it scan the whole index (0.17 s a statement among two million leads)."""
    rows = [
        {"source": source, "source_id": key, "name": f"{source}-{key}"}
        for source in ("crm", "hr")
        for key in ("a", "b", "c")
    ]
    statements: list[tuple[str, Any]] = []

    def executed(conn: Any, cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if sql.lstrip().startswith("SELECT reps.source_id"):
            statements.append((sql, parameters))

    with transaction(session_factory(sqlite_store)) as session:
        upsert(session, Rep.__table__, rows)
        ids = {name: id_ for name, id_ in session.execute(select(Rep.name, Rep.id))}
        event.listen(sqlite_store, "before_cursor_execute", executed)
        try:
            found = ids_by_source_id(session, Rep.__table__, "hr", ["c", "a", "zz", "a"])
        finally:
            event.remove(sqlite_store, "before_cursor_execute", executed)
        assert found == {"c": ids["hr-c"], "a": ids["hr-a"]}
        [(sql, parameters)] = statements
        plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)
        details = [row[-1] for row in plan]
    assert any(d.startswith("SEARCH reps USING") and "source_id=?" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details


def test_a_bulk_load_without_an_id_is_refused_by_the_store(sqlite_store: Engine) -> None:
    """Sorting the rows of a first load does not trip over a missing id: the INSERT refuses
    it (NOT NULL), as before there was a sort."""
    rows = [
        {"source": "hr", "source_id": "b", "name": "B"},
        {"source": "hr", "source_id": None, "name": "A"},
    ]
    with pytest.raises(IntegrityError), transaction(session_factory(sqlite_store)) as session:
        upsert(session, Rep.__table__, rows)


def test_upsert_rejects_values_sqlalchemy_would_reject(sqlite_store: Engine) -> None:
    with transaction(session_factory(sqlite_store)) as session:
        with pytest.raises((TypeError, StatementError)):  # StatementError: SQLAlchemy's
            upsert(session, OPPORTUNITIES, [_opportunity("o", created_at="2026-07-01")])
        with pytest.raises((TypeError, StatementError)):
            upsert(session, OPPORTUNITIES, [_opportunity("o", is_won="yes")])
        assert upsert(session, OPPORTUNITIES, []) == 0


def test_rows_carry_the_version_their_bump_makes_and_the_history_records_them(
    store: Engine,
) -> None:
    """On SQLite the upsert marks its rows with the version the transaction will make (it
    holds the write lock); on PostgreSQL with NULL, stamped by the bump. Either way every row
    ends with the version it changed in, and the history records each change once."""
    with transaction(session_factory(store)) as session:
        upsert(session, OPPORTUNITIES, [_opportunity(f"o{i}") for i in range(3)])
        before = set(session.scalars(select(Opportunity.changed_in)))
        assert before == ({1} if store.dialect.name == "sqlite" else {None})
        first = bump_data_version(session)
    with transaction(session_factory(store)) as session:
        changed = [_opportunity("o0", amount=Decimal("1.00")), _opportunity("o1")]
        upsert(session, OPPORTUNITIES, [*changed, _opportunity("o3")])
        second = bump_data_version(session)
    with session_factory(store)() as session:
        marks = dict(session.execute(select(Opportunity.source_id, Opportunity.changed_in)).all())
        recorded = session.execute(
            select(Opportunity.source_id, func.count())
            .join(OpportunityHistory, OpportunityHistory.opportunity_id == Opportunity.id)
            .group_by(Opportunity.source_id)
        ).all()
    assert (first, second) == (1, 2)
    assert marks == {"o0": second, "o1": first, "o2": first, "o3": second}
    assert dict(recorded) == {"o0": 2, "o1": 1, "o2": 1, "o3": 1}


_KEY_VALUES = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(first=_KEY_VALUES, second=_KEY_VALUES, constant=st.sampled_from([None, "crm"]))
def test_repeats_are_the_rows_whose_key_an_earlier_row_has(
    first: list[str | None], second: list[str | None], constant: str | None
) -> None:
    """The sort behind the import's merge of repeated ids and the bulk path's uniqueness check
    agrees with a plain dictionary of first rows, nulls equal to nulls, a constant column
    (the source) included."""
    count = min(len(first), len(second))
    columns = [pa.array([constant] * count, pa.string()), pa.array(first[:count], pa.string())]
    columns.append(pa.array(second[:count], pa.string()))
    seen: dict[tuple[str | None, ...], int] = {}
    expected_again, expected_first = [], []
    for position in range(count):
        key = tuple(column[position].as_py() for column in columns)
        if key in seen:
            expected_again.append(position)
            expected_first.append(seen[key])
        else:
            seen[key] = position

    runs = key_runs(columns)
    again, earlier = runs.repeats()

    assert again.tolist() == expected_again
    assert earlier.tolist() == expected_first

    def sort_key(position: int) -> tuple[tuple[bool, str], ...]:  # Arrow's: nulls last
        return tuple(
            (value is None, value or "") for value in (c[position].as_py() for c in columns)
        )

    assert runs.firsts().tolist() == sorted(seen.values(), key=sort_key)


@settings(max_examples=300, deadline=None)
@given(keys=_KEY_VALUES, kept=st.lists(st.booleans(), min_size=12, max_size=12))
def test_the_runs_of_some_rows_are_those_of_the_rows_taken_alone(
    keys: list[str | None], kept: list[bool]
) -> None:
    """The import sorts every row's id while reading, and keeps only the good rows once the
    store has been asked: their runs, at the same positions, are those of the good rows
    sorted alone (the first of each id written, the rows repeating one earlier in the
    file)."""
    column = pa.array(keys, pa.string())
    mask = np.array(kept[: len(keys)], dtype=bool)
    good = np.flatnonzero(mask)
    alone = key_runs([column.take(good)])
    among = key_runs([column]).among(mask)

    assert among.firsts().tolist() == good[alone.firsts()].tolist()
    again, first = alone.repeats()
    assert [a.tolist() for a in among.repeats()] == [good[again].tolist(), good[first].tolist()]


def _page_bytes(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())


def test_a_new_sqlite_store_has_large_pages_and_one_made_before_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new store is made with 32 KiB pages (fewer system calls for a large write); a store
    made before with SQLite's 4 KiB pages keeps them (its file is not rewritten) and takes a
    large staged load and a sync's bump as before, its file sound."""
    new = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    migrate(new)
    assert _page_bytes(new) == 32_768
    new.dispose()

    before = tmp_path / "before.db"
    with closing(sqlite3.connect(before)) as connection:
        connection.execute("PRAGMA page_size = 4096")
        connection.execute("PRAGMA journal_mode = WAL")  # writes the file's first page
    engine = make_engine(f"sqlite:///{before}")
    try:
        migrate(engine)
        seed(engine)
        monkeypatch.setattr("bot.store.upsert._BULK", 1)  # staged, as a large import is
        reps = pa.table(
            {"source": ["hr"] * 3, "source_id": ["a", "b", "c"], "name": ["A", "B", "C"]}
        )
        with transaction(session_factory(engine)) as session:
            assert upsert(session, Rep.__table__, reps) == 3
            bump_data_version(session)
        assert _page_bytes(engine) == 4096
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            assert connection.scalar(select(func.count()).select_from(Rep)) == 4
        facts = load_facts(engine, "EUR", {"GBP": Decimal("1.15")}, 0.5)
        assert sorted(facts.opportunities["amount"]) == [57_500, 100_000]
    finally:
        engine.dispose()
