"""Facts snapshots: the mapped path gives exactly the facts and answers of the store path, a
sync's new facts are swapped in only when ready, and a damaged snapshot is rebuilt."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gc
import json
import logging
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from bot.service import KpiService
from bot.settings import load_settings
from bot.store.database import (
    VersionStamp,
    bump_data_version,
    make_engine,
    migrate,
    session_factory,
    transaction,
    version_token,
)
from bot.store.facts_loader import FactsCache, load_facts, snapshot_folder
from bot.store.facts_snapshot import TABLES, Snapshots, snapshot_key
from bot.store.models import Lead, Opportunity, Rep, Spend, Survey, Team
from bot.store.upsert import ids_by_source_id, upsert
from metrics.answers import answer
from metrics.evaluation import Policy
from metrics.facts import LIVE_COLUMNS, Facts
from metrics.kpis import KPIS, usual_scopes
from metrics.periods import Grain, period_containing
from metrics.query import Query
from metrics.scopes import Level, Scope
from metrics.targets import TargetBook

RATES = {"USD": Decimal("0.9")}
AS_OF = date(2026, 11, 26)
START = AS_OF - timedelta(days=500)

days = st.integers(0, 520).map(lambda n: START + timedelta(days=n))
maybe_days = st.none() | days
amounts = st.none() | st.decimals(0, 10**9, places=2, allow_nan=False, allow_infinity=False)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
channels = st.none() | st.sampled_from(["Salon", "Site web", "Partenaire"])


@st.composite
def companies(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """A random company: a few teams and reps, deals in every state (closed without an amount,
    open without a close date, other currencies), leads, spend and surveys, any of them empty."""
    teams = [
        {"source": "t", "source_id": f"T{i}", "name": draw(names) or f"T{i}",
         "region": draw(st.none() | st.sampled_from(["North", "Sud", "Østen"])), "manager": None}
        for i in range(draw(st.integers(1, 4)))
    ]  # fmt: skip
    reps = [
        {"source": "t", "source_id": f"R{i}", "name": f"{draw(names)} {i}", "email": None,
         "team": draw(st.none() | st.sampled_from([t["source_id"] for t in teams])),
         "active_from": draw(maybe_days), "active_to": draw(maybe_days)}
        for i in range(draw(st.integers(0, 5)))
    ]  # fmt: skip
    owners = st.none() | st.sampled_from([r["source_id"] for r in reps]) if reps else st.none()
    deals = []
    for i in range(draw(st.integers(0, 40))):
        closed, won = draw(st.sampled_from([(False, False), (True, True), (True, False)]))
        created = draw(days)
        deals.append(
            {"source": "t", "source_id": f"O{i}", "owner": draw(owners), "stage": "s",
             "is_closed": closed, "is_won": won, "amount": draw(amounts),
             "currency": draw(st.sampled_from(["EUR", "USD"])), "created_at": created,
             "close_date": draw(maybe_days),
             "probability": draw(st.none() | st.floats(0, 1, allow_nan=False))}
        )  # fmt: skip
    leads = [
        {"source": "t", "source_id": f"L{i}", "owner": draw(owners), "created_at": draw(days),
         "converted_at": draw(maybe_days), "channel": draw(channels)}
        for i in range(draw(st.integers(0, 40)))
    ]  # fmt: skip
    spend = [
        {"source": "t", "source_id": f"S{i}", "date": draw(days),
         "amount": draw(st.decimals(0, 10**6, places=2, allow_nan=False)), "currency": "EUR",
         "team": draw(st.none() | st.sampled_from([t["source_id"] for t in teams])),
         "region": draw(st.none() | st.just("North")), "channel": draw(channels)}
        for i in range(draw(st.integers(0, 10)))
    ]  # fmt: skip
    surveys = [
        {"source": "t", "source_id": f"V{i}", "date": draw(days), "rep": draw(owners),
         "kind": kind, "score": float(draw(st.integers(0, 10 if kind == "nps" else 5)))}
        for i, kind in enumerate(draw(st.lists(st.sampled_from(["csat", "nps"]), max_size=10)))
    ]  # fmt: skip
    return {"teams": teams, "reps": reps, "opportunities": deals, "leads": leads,
            "spend": spend, "surveys": surveys}  # fmt: skip


def _refer(session: Any, rows: list[dict[str, Any]], key: str, table: Any, column: str) -> None:
    ids = ids_by_source_id(session, table, "t", [r[key] for r in rows if r[key] is not None])
    for row in rows:
        reference = row.pop(key)
        row[column] = None if reference is None else ids[reference]


def store_company(engine: Engine, company: dict[str, list[dict[str, Any]]]) -> None:
    with transaction(session_factory(engine)) as session:
        upsert(session, Team.__table__, company["teams"])
        _refer(session, company["reps"], "team", Team.__table__, "team_id")
        upsert(session, Rep.__table__, company["reps"])
        for table, model, key, column in (
            ("opportunities", Opportunity, "owner", "owner_id"),
            ("leads", Lead, "owner", "owner_id"),
            ("spend", Spend, "team", "team_id"),
            ("surveys", Survey, "rep", "rep_id"),
        ):
            target = Team.__table__ if table == "spend" else Rep.__table__
            _refer(session, company[table], key, target, column)
            upsert(session, model.__table__, company[table])
        bump_data_version(session)


def stamp(engine: Engine, version: int) -> VersionStamp:
    """``version`` as the store made it: what its snapshot is named by."""
    with session_factory(engine)() as session:
        return VersionStamp(version, version_token(session, version))


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@functools.cache
def _migrated() -> Path:
    """An empty migrated store, copied by each example: migrating takes longer than a test.
    Its folder goes when the tests' process ends."""
    folder = tempfile.mkdtemp(prefix="kpibot-migrated-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "kpibot.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


def _engine(folder: Path) -> Engine:
    shutil.copyfile(_migrated(), folder / "kpibot.db")
    return make_engine(f"sqlite:///{folder / 'kpibot.db'}")


def _answers(facts: Facts) -> list[object]:
    """Every KPI for the company broken down by team, and for the first team by rep; those
    broken down by lead source, by source."""
    period = period_containing(Grain.QUARTER, AS_OF)
    scopes = [(Scope.company(), Level.TEAM)] + [
        (team, Level.REP) for team in facts.children(Scope.company(), Level.TEAM)[:1]
    ]
    by_channel = [
        answer(Query(kpi, Scope.company(), period, None, by_channel=True), AS_OF, facts,
               TargetBook([]), Policy())
        for kpi in KPIS if KPIS[kpi].by_channel
    ]  # fmt: skip
    return [
        answer(Query(kpi, scope, period, level), AS_OF, facts, TargetBook([]), Policy())
        for kpi in KPIS
        for scope, level in scopes
    ] + by_channel


def _missing_as_none(frame: pd.DataFrame, exact_categories: bool = True) -> pd.DataFrame:
    """Arrow has one null where object columns have two (None from the store, NaN from a
    merge); pandas reads both as missing (``isna``), and so does every KPI. Without
    ``exact_categories`` a categorical column counts by its values alone: a category no row
    uses any more (a refresh keeps it) changes no figure."""
    out = frame.copy()
    for column in out.columns:
        if not exact_categories and isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(object)
        if out[column].dtype == object:
            out[column] = out[column].where(out[column].notna(), None)
    return out


def records(facts: Facts) -> Facts:
    """``facts`` without the rows a refresh emptied in place for records deleted
    (``metrics.facts``): what a whole load of the same store holds."""
    tables = {
        table: frame[frame[column].notna().to_numpy()].reset_index(drop=True)
        for table, column in LIVE_COLUMNS.items()
        if not (frame := getattr(facts, table))[column].notna().all()
    }
    return facts._without_caches(**tables) if tables else facts


def assert_same_facts(mapped: Facts, loaded: Facts, exact_categories: bool = True) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(
            _missing_as_none(getattr(mapped, table), exact_categories),
            _missing_as_none(getattr(loaded, table), exact_categories),
        )
    assert (mapped.version, mapped.currency, mapped.minor_digits) == (
        loaded.version,
        loaded.currency,
        loaded.minor_digits,
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies())
def test_snapshot_facts_and_answers_are_exactly_the_stores(company):
    with tempfile.TemporaryDirectory() as name:
        engine = _engine(Path(name))
        try:
            store_company(engine, company)
            loaded = load_facts(engine, "EUR", RATES, 0.5)
            snapshots = Snapshots(Path(name) / "facts", "k")
            written = snapshots.write(loaded, stamp(engine, loaded.version).token)
            mapped = snapshots.read(stamp(engine, loaded.version))
            assert mapped is not None
            assert_same_facts(mapped, loaded)
            # Names and statuses are stored as their categories' codes among the arrays,
            # and come back as categoricals over the mapped codes.
            arrays = json.loads((written / "opportunities.columns.json").read_text())["columns"]
            assert {"rep", "team", "region", "status"} <= set(arrays)
            for name in ("rep", "team", "region", "status"):
                codes = mapped.opportunities[name].array._ndarray
                assert not codes.flags.writeable and not codes.flags.owndata
            # The writer's indexes come mapped with it: no question builds one, and the
            # answers below read them.
            assert set(mapped._ordered) == _usual_keys(usual_scopes(mapped))
            assert _index_arrays(mapped) and not any(
                a.flags.writeable for a in _index_arrays(mapped)
            )
            # Nullable ids (a deal's or a lead's account) are mapped too, values and mask,
            # not copied out of Arrow's nulls (pandas keeps them as ``_data`` and ``_mask``).
            for table in ("opportunities", "leads"):
                account = getattr(mapped, table)["account"].array
                assert account.dtype == "Int64"
                assert not account._data.flags.writeable and not account._mask.flags.writeable
            # What a process answers from: the snapshot, given the store's history of the past.
            served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots).get()
            assert served.history is not None
            assert _answers(served) == _answers(loaded)
        finally:
            engine.dispose()


def _usual_keys(scopes: Iterable[Scope]) -> set[tuple[str, Scope, str, object]]:
    return {
        key
        for scope in scopes
        for key in (
            ("opportunities", scope, "close", ("status_code", 1)),
            ("opportunities", scope, "close", None),
            ("opportunities", scope, "created", None),
            ("leads", scope, "created", None),
        )
    }


def _index_arrays(facts: Facts) -> list[np.ndarray]:
    """The arrays of ``facts``' indexes: orders, dates and each scope's positions."""
    arrays = []
    for index in facts._ordered.values():
        table = index.table
        arrays += [a for a in (table.order, table.dates, index.among) if a is not None]
        arrays += list(table.columns.values()) + list(index.kept.values())
    return arrays


def _company(amount: str) -> dict[str, list[dict[str, Any]]]:
    team = {"source": "t", "source_id": "T1", "name": "Lyon", "region": "Sud", "manager": None}
    rep = {"source": "t", "source_id": "R1", "name": "Ann", "email": None, "team": "T1",
           "active_from": None, "active_to": None}  # fmt: skip
    deal = {"source": "t", "source_id": "O1", "owner": "R1", "stage": "Won", "is_closed": True,
            "is_won": True, "amount": Decimal(amount), "currency": "EUR",
            "created_at": date(2026, 10, 1), "close_date": date(2026, 11, 2),
            "probability": None}  # fmt: skip
    return {"teams": [team], "reps": [rep], "opportunities": [deal], "leads": [], "spend": [],
            "surveys": []}  # fmt: skip


def _won(facts: Facts) -> int:
    return int(facts.opportunities["amount"].sum())


class GatedSnapshots(Snapshots):
    """Snapshots whose writing waits for ``opened``: a rebuild held half-way."""

    def __init__(self, folder: Path, key: str) -> None:
        super().__init__(folder, key)
        self.opened = threading.Event()
        self.entered = threading.Event()  # set when a write waits for ``opened``

    def write(self, facts: Facts, *args: Any) -> Path:
        self.entered.set()
        assert self.opened.wait(10)
        return super().write(facts, *args)


def test_a_snapshot_lives_beside_an_sqlite_file_and_nowhere_for_memory(folder):
    engine = _engine(folder)
    assert snapshot_folder(engine) == folder / "kpibot.db.facts"
    assert snapshot_folder(make_engine("sqlite://")) is None


def test_a_float_column_with_gaps_is_mapped_with_its_nan_and_kept_chunk_by_chunk(folder):
    # A deleted deal's emptied probability is NaN: the column stays an array of the snapshot,
    # mapped (no private copy of Arrow's nulls) and not in the Arrow file of the categories.
    engine = _engine(folder)
    try:
        store_company(engine, _company("100.00"))
        loaded = load_facts(engine, "EUR", RATES, 0.5)
        gaps = loaded.opportunities.assign(probability=np.nan)
        facts = dataclasses.replace(loaded.uncached(), opportunities=gaps)
        snapshots = Snapshots(folder / "facts", "k")
        written = snapshots.write(facts, stamp(engine, loaded.version).token)
        mapped = snapshots.read(stamp(engine, loaded.version))
        assert mapped is not None
        probability = mapped.opportunities["probability"].to_numpy()
        assert probability.dtype == np.float64 and np.isnan(probability).all()
        assert not probability.flags.writeable
        columns = json.loads((written / "opportunities.columns.json").read_text())
        assert "probability" in columns["columns"]
    finally:
        engine.dispose()


def _serving(folder: Path) -> tuple[Engine, GatedSnapshots, FactsCache, Facts]:
    """A process answering from its first facts, whose own rebuilds are held."""
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    gated = GatedSnapshots(folder / "s", "k")
    gated.opened.set()
    cache = FactsCache(engine, "EUR", RATES, 0.5, snapshots=gated)
    first = cache.get()
    gated.opened.clear()
    gated.entered.clear()
    return engine, gated, cache, first


def test_a_process_maps_the_snapshot_a_sync_published_without_reading_the_store(folder):
    engine, _, server, first = _serving(folder)
    assert _won(first) == 10_000
    # The sync's process: it writes the store, then publishes the snapshot.
    store_company(engine, _company("250.00"))
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    writer.publish()
    # The server's own rebuild is held: the new facts can only come from the mapped snapshot,
    # swapped in by the background thread once their indexes are built.
    assert server.get() is first
    server.wait()
    assert _won(server.get()) == 25_000


def test_a_writer_that_exits_publishes_a_version_once_and_nothing_without_snapshots(folder):
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    snapshots = Snapshots(folder / "s", "k")
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots).publish()
    (version,) = snapshots.versions()
    published = snapshots.path(version).stat().st_ino
    mapped = snapshots.read(version)
    assert mapped is not None and _won(mapped) == 10_000
    # Another writer of the same version (a sync that changed nothing since) writes nothing.
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots).publish()
    assert snapshots.versions() == [version]
    assert snapshots.path(version).stat().st_ino == published
    # A store without snapshots has nothing to publish: not even its version is read (this
    # one has no tables at all).
    FactsCache(create_engine("sqlite://"), "EUR", RATES, 0.5).publish()


_USUAL = {"revenue", "win_rate", "pipeline", "overdue", "forecast", "new_pipeline",
          "conversion", "avg_deal", "sales_cycle"}  # fmt: skip


def _indexes(facts: Facts) -> set[tuple[str, Scope, str, object]]:
    return set(facts._ordered)


def _ask_usual(facts: Facts) -> None:
    period = period_containing(Grain.QUARTER, AS_OF)
    for scope in (Scope.company(), Scope(Level.TEAM, "Lyon"), Scope(Level.REGION, "Sud")):
        for kpi in _USUAL:
            answer(Query(kpi, scope, period, None), AS_OF, facts, TargetBook([]), Policy())


def test_a_swap_builds_the_usual_indexes_before_any_question(folder):
    engine, _, server, first = _serving(folder)
    store_company(engine, _company("250.00"))
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).refresh()
    assert server.get() is first
    server.wait()
    new = server.get()
    assert new.version == first.version + 1
    scopes = (Scope.company(), Scope(Level.TEAM, "Lyon"), Scope(Level.REGION, "Sud"))
    assert _indexes(new) == _usual_keys(scopes)
    # The usual questions read only those: asking them builds no other.
    built = _indexes(new)
    _ask_usual(new)
    assert _indexes(new) == built


def test_replaced_facts_are_freed_at_once_not_when_the_cycle_collector_runs(folder):
    """Facts that reached their past through a cycle stayed, with their mapped files, until
    a collection that numpy's allocations hardly ever trigger: after every sync, a serving
    process held two sets of facts."""
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    cache = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    first = cache.get()
    assert first.history is not None and first.history.stood(AS_OF) is not None
    replaced = weakref.ref(first)
    del first
    gc.collect()
    gc.disable()
    try:
        store_company(engine, _company("250.00"))
        assert _won(cache.refresh()) == 25_000
        assert replaced() is None
    finally:
        gc.enable()


def test_a_process_warmed_at_start_builds_the_usual_indexes_in_the_background(folder):
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).refresh()
    serving = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    serving.warm()
    serving.wait()
    facts = serving.get()
    assert len(_indexes(facts)) == 12  # 4 indexes for each of the company, Lyon and Sud
    built = _indexes(facts)
    _ask_usual(facts)
    assert _indexes(facts) == built


def test_answers_come_from_the_old_facts_until_the_new_are_ready(folder):
    engine, snapshots, cache, old = _serving(folder)
    store_company(engine, _company("250.00"))  # a change nobody published

    assert cache.get() is old  # the rebuild starts in the background
    assert cache.get() is old  # still under way: the request does not wait for it
    snapshots.opened.set()
    cache.wait()

    new = cache.get()
    assert _won(new) == 25_000 and new.version == old.version + 1
    assert snapshots.versions() == [stamp(engine, old.version), stamp(engine, new.version)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: (path / "opportunities.arrow").write_bytes(b"ARROW1 not really"),
        lambda path: (path / "leads.arrow").unlink(),
        lambda path: (path / "facts.json").write_text("{", encoding="utf-8"),
        lambda path: next(path.glob("opportunities.index.v*")).write_bytes(b"\0" * 8),
        lambda path: next(path.glob("leads.index.v*")).unlink(),
        lambda path: (path / "leads.index.json").write_text("{", encoding="utf-8"),
        lambda path: next(path.glob("opportunities.columns.v*")).write_bytes(b"\0" * 8),
        lambda path: (path / "leads.columns.json").unlink(),
    ],
    ids=[
        "corrupt file",
        "missing file",
        "bad metadata",
        "truncated index",
        "missing index data",
        "bad index list",
        "truncated columns",
        "missing column list",
    ],
)
def test_a_damaged_snapshot_is_rebuilt_from_the_store_with_a_log_line(folder, caplog, damage):
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    snapshots = Snapshots(folder / "s", "k")
    version = stamp(
        engine, FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots).refresh().version
    )
    damage(snapshots.path(version))

    with caplog.at_level(logging.WARNING, logger="bot.store.facts_loader"):
        facts = FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots).get()

    assert_same_facts(facts, load_facts(engine, "EUR", RATES, 0.5))
    assert "facts snapshot unreadable, rebuilding it from the store" in caplog.text
    rebuilt = snapshots.read(version)
    assert rebuilt is not None and _won(rebuilt) == 10_000


def test_facts_built_with_other_settings_are_not_mapped(folder):
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    euros = FactsCache(engine, "EUR", RATES, 0.5).refresh()
    dollars = FactsCache(engine, "USD", {"EUR": Decimal("1.25")}, 0.5).get()
    assert _won(euros) == 10_000 and _won(dollars) == 12_500
    published = [p.name for p in (folder / "kpibot.db.facts").iterdir() if p.is_dir()]
    assert len(published) == 2 and len({name.rsplit("-", 1)[1] for name in published}) == 2


def test_database_snapshots_names_the_folder_relative_to_the_config(folder):
    engine = _engine(folder)
    store_company(engine, _company("100.00"))
    config = folder / "conf" / "kpibot.yaml"
    config.parent.mkdir()
    config.write_text(
        "organisation: {name: Acme, currency: EUR}\n"
        f"database: {{url: 'sqlite:///{folder / 'kpibot.db'}', snapshots: ../shared}}\n",
        encoding="utf-8",
    )
    service = KpiService(load_settings(config, {}), engine)
    service.refresh_facts()
    published = [p for p in (folder / "shared").iterdir() if p.is_dir()]
    assert [p.name.split("-")[0] for p in published] == ["v1"]
    assert not (folder / "kpibot.db.facts").exists()


def test_a_configured_folder_shares_the_facts_of_any_store(store, tmp_path):
    """PostgreSQL too: with a folder set, a second process maps what the first published."""
    store_company(store, _company("100.00"))
    published = FactsCache(store, "EUR", RATES, 0.5, snapshots=tmp_path / "shared").refresh()
    snapshots = Snapshots(tmp_path / "shared", snapshot_key("EUR", RATES, 0.5, UTC))
    mapped = snapshots.read(stamp(store, published.version))
    assert mapped is not None
    assert_same_facts(mapped, load_facts(store, "EUR", RATES, 0.5))
    assert_same_facts(
        FactsCache(store, "EUR", RATES, 0.5, snapshots=snapshots.folder).get(), mapped
    )


class CountedSnapshots(Snapshots):
    def __init__(self, folder: Path, key: str) -> None:
        super().__init__(folder, key)
        self.written = 0

    def write(self, facts: Facts, *args: Any) -> Path:
        self.written += 1
        return super().write(facts, *args)


def test_one_process_builds_a_change_the_others_map_it(folder):
    engine, gated, _, first = _serving(folder)
    store_company(engine, _company("250.00"))
    # The sync's process holds the folder while it builds (held half-way here)...
    sync = threading.Thread(target=FactsCache(engine, "EUR", RATES, 0.5, snapshots=gated).refresh)
    sync.start()
    assert gated.entered.wait(10)
    # ...so a serving process that saw the change waits for it instead of building it too.
    other = CountedSnapshots(folder / "s", "k")
    waiting = FactsCache(engine, "EUR", RATES, 0.5, snapshots=other)
    gated.opened.set()
    facts = waiting.refresh()
    sync.join()
    assert _won(facts) == 25_000 and facts.version == first.version + 1
    assert other.written == 0
