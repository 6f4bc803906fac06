"""Facts refreshed by the rows a sync changed (``bot.store.changes``) are exactly the facts
loaded from scratch, over random sequences of syncs: inserts, updates, deletions, reopenings,
owners and teams changing."""

from __future__ import annotations

import copy
import json
import mmap
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from bot.store import array_files, database, facts_loader, facts_merge, facts_snapshot
from bot.store.array_files import bytes_used
from bot.store.database import bump_data_version, session_factory, transaction
from bot.store.facts_loader import FactsCache, load_facts
from bot.store.facts_snapshot import Snapshots
from bot.store.index_files import entries, index_files, read_indexes
from bot.store.models import (
    FactDeletion,
    FxRate,
    Lead,
    Opportunity,
    OpportunityHistory,
    Rep,
    Spend,
    Survey,
    Team,
    VersionToken,
)
from bot.store.upsert import delete_sourced, upsert
from metrics.facts import Facts
from metrics.index import TableIndexes
from metrics.index_patch import patched_indexes
from metrics.kpis import INDEXED_TABLES, prepared_indexes
from metrics.scopes import Level, Scope
from tests.bot.test_facts_snapshot import (
    RATES,
    _answers,
    _company,
    _engine,
    _refer,
    _won,
    assert_same_facts,
    companies,
    records,
    stamp,
)
from tests.bot.test_index_files import chunk_files
from tests.metrics.test_index_patch import assert_same_indexes

_TABLES = (
    ("teams", Team, None),
    ("reps", Rep, ("team", Team, "team_id")),
    ("opportunities", Opportunity, ("owner", Rep, "owner_id")),
    ("leads", Lead, ("owner", Rep, "owner_id")),
    ("spend", Spend, ("team", Team, "team_id")),
    ("surveys", Survey, ("rep", Rep, "rep_id")),
)


def sync(engine: Engine, company: dict[str, list[dict[str, Any]]]) -> None:
    """A full import of ``company``: every row upserted (only those that differ change), the
    rows it no longer holds deleted, the data version bumped."""
    with transaction(session_factory(engine)) as session:
        for name, model, reference in _TABLES:
            table = model.__table__
            rows = [dict(row) for row in company[name]]
            if reference is not None:
                key, target, column = reference
                _refer(session, rows, key, target.__table__, column)
            upsert(session, table, rows)
            present = {row["source_id"] for row in rows}
            held = session.scalars(select(table.c.source_id).where(table.c.source == "t"))
            delete_sourced(session, table, "t", [k for k in held if k not in present])
        bump_data_version(session)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(companies(), min_size=2, max_size=5), fresh=st.lists(st.booleans(), max_size=5)
)
def test_facts_refreshed_by_changes_equal_facts_loaded_from_scratch(steps, fresh):
    with tempfile.TemporaryDirectory() as name:
        engine = _engine(Path(name))
        folder = Path(name) / "facts"
        try:
            sync(engine, steps[0])
            writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder, "k"))
            writer.refresh()
            for step, company in enumerate(steps[1:]):
                sync(engine, company)
                if step < len(fresh) and fresh[step]:
                    # A new process (kpibot sync) refreshes from the newest snapshot.
                    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder, "k"))
                refreshed = writer.refresh()
                assert_same_facts(
                    records(refreshed),
                    load_facts(engine, "EUR", RATES, 0.5),
                    exact_categories=False,
                )
                # Its indexes, patched or built, are those built again from the facts.
                published = Snapshots(folder, "k").path(stamp(engine, refreshed.version))
                for table in INDEXED_TABLES:
                    rows = len(getattr(refreshed, table))
                    indexes = read_indexes(published, table, rows)
                    assert indexes is not None
                    assert_same_indexes(indexes, prepared_indexes(refreshed, table))
                    assert_linked_files_mostly_used(published, table)
                # What a serving process maps is the same, and so are the answers it gives
                # from the indexes published with it (some linked from earlier snapshots).
                served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder, "k"))
                assert_same_facts(served.get(), refreshed)
                assert _answers(served.get()) == _answers(load_facts(engine, "EUR", RATES, 0.5))
        finally:
            engine.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies(), data=st.data())
def test_reps_renamed_moved_added_or_gone_place_again_only_the_rows_they_own(company, data):
    """A sync that changes reps and nothing else (a rep renamed, moved to another team or to
    none, hired, or gone, taking their rows' owner with them) writes the rows those reps own
    and no other, so that the indexes are patched by them: the facts are those loaded from
    scratch and the patched indexes those built again."""
    changed = copy.deepcopy(company)
    teams = [team["source_id"] for team in changed["teams"]]
    for rep in changed["reps"]:
        what = data.draw(st.sampled_from(["kept", "renamed", "moved"]))
        if what == "renamed":
            rep["name"] += " bis"
        elif what == "moved":
            rep["team"] = data.draw(st.none() | st.sampled_from(teams))
    if changed["reps"] and data.draw(st.booleans()):
        gone = changed["reps"].pop()["source_id"]  # its rows lose their owner: changed rows
        for table, key in (("opportunities", "owner"), ("leads", "owner"), ("surveys", "rep")):
            for row in changed[table]:
                if row[key] == gone:
                    row[key] = None
    if data.draw(st.booleans()):
        changed["reps"].append(
            {"source": "t", "source_id": "R-new", "name": "Nouvelle 9", "email": None,
             "team": data.draw(st.none() | st.sampled_from(teams)), "active_from": None,
             "active_to": None}
        )  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        engine = _engine(Path(name))
        try:
            sync(engine, company)
            held = facts_loader._loaded(engine, "EUR", RATES, 0.5)
            with engine.connect() as connection:
                ids = dict(connection.execute(select(Rep.source_id, Rep.id)).all())
            # The reps named or placed otherwise now, by name, team and region, or gone.
            before, after = _places(company), _places(changed)
            owners = {ids[rep] for rep, place in before.items() if after.get(rep) != place}
            sync(engine, changed)
            refreshed = facts_loader._refreshed(engine, held, "EUR", RATES, 0.5)
            assert refreshed is not None
            assert_same_facts(refreshed.facts, load_facts(engine, "EUR", RATES, 0.5))
            for table in INDEXED_TABLES:
                rows = getattr(held.facts, table)
                owned = np.flatnonzero(rows["rep_id"].isin(list(owners)).to_numpy())
                assert refreshed.written[table].tolist() == owned.tolist()
                old = prepared_indexes(held.facts, table)
                patched = patched_indexes(old, refreshed.facts, table, refreshed.written[table])
                if patched is not None:  # None: the usual scopes changed (a team emptied)
                    assert_same_indexes(patched, prepared_indexes(refreshed.facts, table))
        finally:
            engine.dispose()


def _places(company: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[Any, ...]]:
    """Each rep's name, team and region in ``company``."""
    teams = {team["source_id"]: (team["name"], team["region"]) for team in company["teams"]}
    return {
        rep["source_id"]: (rep["name"], *teams.get(rep["team"], (None, None)))
        for rep in company["reps"]
    }


def _deal(source_id: str, amount: str, owner: str = "R1") -> dict[str, Any]:
    return {"source": "t", "source_id": source_id, "owner": owner, "stage": "Won",
            "is_closed": True, "is_won": True, "amount": Decimal(amount), "currency": "EUR",
            "created_at": date(2026, 10, 1), "close_date": date(2026, 11, 2),
            "probability": None}  # fmt: skip


def _with_deals(*deals: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    company = _company("100.00")
    company["opportunities"] = list(deals)
    return company


@pytest.fixture
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def test_a_sync_stamps_only_the_rows_it_changed_with_its_version(folder):
    engine = _engine(folder)
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O2", "200"), _deal("O3", "300")))
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O2", "250")))  # O2 changed, O3 gone
    with engine.connect() as connection:
        stamps = dict(
            connection.execute(select(Opportunity.source_id, Opportunity.changed_in)).all()
        )
        history = connection.scalar(select(func.count()).select_from(OpportunityHistory))
    assert stamps == {"O1": 1, "O2": 2, "O3": 2}
    assert history == 5  # three opened at version 1; O2's new amount and O3's deletion
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O2", "250")))  # nothing changed
    with engine.connect() as connection:
        assert connection.scalar(select(func.max(Opportunity.changed_in))) == 2


def _leads(count: int) -> list[dict[str, Any]]:
    """Leads L0, L1... of rep R1."""
    return [
        {"source": "t", "source_id": f"L{i}", "owner": "R1", "created_at": date(2026, 11, 1),
         "converted_at": None}
        for i in range(count)
    ]  # fmt: skip


def test_rows_deleted_outright_leave_a_tombstone_of_their_version(folder):
    engine = _engine(folder)
    company = _company("100.00")
    company["leads"] = _leads(3)
    sync(engine, company)
    with engine.connect() as connection:
        ids = dict(connection.execute(select(Lead.source_id, Lead.id)).all())
    company["leads"] = company["leads"][:1]
    sync(engine, company)
    with engine.connect() as connection:
        tombstones = connection.execute(
            select(FactDeletion.table_name, FactDeletion.row_id, FactDeletion.version)
        ).all()
    assert sorted(tombstones) == [("leads", ids["L1"], 2), ("leads", ids["L2"], 2)]


def test_tokens_and_tombstones_of_versions_past_those_kept_are_forgotten(folder, monkeypatch):
    """Facts older than the versions kept (a process idle that long) are read whole: their
    token is gone with the tombstones a refresh from them would need."""
    monkeypatch.setattr(database, "KEPT_VERSIONS", 2)
    engine = _engine(folder)
    company = _company("100.00")
    company["leads"] = _leads(2)
    sync(engine, company)  # version 1
    idle = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    assert len(idle.refresh().leads) == 2
    company["leads"] = company["leads"][:1]
    sync(engine, company)  # version 2: L1 deleted outright, its tombstone made
    for amount in ("200.00", "300.00", "400.00"):  # versions 3 to 5
        company["opportunities"][0]["amount"] = Decimal(amount)
        sync(engine, company)
    with engine.connect() as connection:
        tokens = connection.scalars(select(VersionToken.version)).all()
        tombstones = connection.scalars(select(FactDeletion.version)).all()
    assert sorted(tokens) == [3, 4, 5] and tombstones == []
    refreshed = idle.refresh()
    assert (refreshed.version, len(refreshed.leads), _won(refreshed)) == (5, 1, 40_000)
    assert_same_facts(refreshed, load_facts(engine, "EUR", RATES, 0.5))


def test_a_refresh_after_a_sync_reads_only_what_changed(folder, monkeypatch):
    engine = _engine(folder)
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O2", "200")))
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    before = writer.refresh()
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O2", "250"), _deal("O3", "50")))

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the refresh read the facts whole")

    monkeypatch.setattr(facts_loader, "_loaded", whole)
    after = writer.refresh()
    assert (before.version, _won(before)) == (1, 30_000)
    assert (after.version, _won(after)) == (2, 40_000)
    # The leads' file did not change: the new snapshot links the previous one's.
    previous, new = (Snapshots(folder / "s", "k").path(stamp(engine, v)) for v in (1, 2))
    assert (new / "leads.arrow").stat().st_ino == (previous / "leads.arrow").stat().st_ino
    assert (new / "opportunities.arrow").stat().st_ino != (
        previous / "opportunities.arrow"
    ).stat().st_ino
    # A sync's process holds no facts: it refreshes from the newest snapshot of the store's.
    sync(engine, _with_deals(_deal("O1", "100"), _deal("O3", "50")))
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).publish()
    published = Snapshots(folder / "s", "k").read(stamp(engine, 3))
    assert published is not None and _won(published) == 15_000


def _two_teams(*deals: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    company = _with_deals(*deals)
    company["teams"].append(
        {"source": "t", "source_id": "T2", "name": "Nice", "region": "Nord", "manager": None}
    )
    company["reps"].append(
        {"source": "t", "source_id": "R2", "name": "Bob", "email": None, "team": "T2",
         "active_from": None, "active_to": None}
    )  # fmt: skip
    return company


def test_a_sync_that_updates_and_adds_deals_publishes_their_indexes_patched(folder, monkeypatch):
    engine = _engine(folder)
    sync(engine, _two_teams(_deal("O1", "100"), _deal("O2", "200", owner="R2")))
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    writer.refresh()
    moved = _deal("O1", "150", owner="R2")  # to the other team, and later in the close order
    moved["close_date"] = date(2026, 11, 30)
    sync(engine, _two_teams(moved, _deal("O2", "200", owner="R2"), _deal("O3", "50")))
    built = facts_snapshot.prepared_indexes

    def only_leads(facts: Facts, table: str) -> TableIndexes:
        assert table != "opportunities", "the deals' indexes were built again"
        return built(facts, table)

    monkeypatch.setattr(facts_snapshot, "prepared_indexes", only_leads)
    after = writer.refresh()
    assert _won(after) == 40_000
    published = read_indexes(
        Snapshots(folder / "s", "k").path(stamp(engine, 2)), "opportunities", 3
    )
    assert published is not None
    assert_same_indexes(published, built(after, "opportunities"))
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _answers(served) == _answers(load_facts(engine, "EUR", RATES, 0.5))
    nice = served.ordered("opportunities", Scope(Level.TEAM, "Nice"), "close")
    assert nice.between(None, None, ("amount",))["amount"].tolist() == [20_000, 15_000]


def test_a_sync_that_deletes_rows_empties_them_in_place_and_patches_the_indexes(
    folder, monkeypatch
):
    engine = _engine(folder)
    company = _two_teams(_deal("O1", "100"), _deal("O2", "200", owner="R2"), _deal("O3", "50"))
    company["leads"] = _leads(3)
    sync(engine, company)
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    before = writer.refresh()
    company["opportunities"].pop(1)  # O2, Nice's only deal
    company["leads"].pop(0)  # L0, deleted outright
    sync(engine, company)
    built = facts_snapshot.prepared_indexes

    def never(facts: Facts, table: str) -> TableIndexes:
        raise AssertionError(f"the {table}' indexes were built again")

    monkeypatch.setattr(facts_snapshot, "prepared_indexes", never)
    after = writer.refresh()
    # Every row where it was: the deleted deal's and lead's emptied, found by no deal lookup.
    assert after.opportunities["id"].tolist() == before.opportunities["id"].tolist()
    assert after.opportunities["status"].isna().tolist() == [False, True, False]
    assert after.opportunities["amount"].tolist() == [10_000, 0, 5_000]
    assert after.leads["created"].isna().tolist() == [True, False, False]
    assert after.deal_rows(before.opportunities["id"].to_numpy()).tolist() == [0, 2]
    published = Snapshots(folder / "s", "k").path(stamp(engine, 2))
    for table in INDEXED_TABLES:
        indexes = read_indexes(published, table, 3)
        assert indexes is not None
        assert_same_indexes(indexes, built(after, table))
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _answers(served) == _answers(load_facts(engine, "EUR", RATES, 0.5))
    assert served.children(Scope.company(), Level.TEAM) == [
        Scope(Level.TEAM, "Lyon"),
        Scope(Level.TEAM, "Nice"),
    ]
    nice = served.ordered("opportunities", Scope(Level.TEAM, "Nice"), "close")
    assert nice.between(None, None, ("amount",))["amount"].tolist() == []


def assert_linked_files_mostly_used(folder: Path, table: str) -> None:
    """The index data files a snapshot holds from earlier ones (all but the newest) hold at
    most twice the bytes of the arrays it reads from them."""
    manifest = json.loads((folder / f"{table}.index.json").read_text(encoding="utf-8"))
    used = bytes_used(entries(manifest).values())
    newest = max(used, key=lambda name: int(name.rpartition(".v")[2]), default=None)
    linked = [name for name in used if name != newest]
    held = sum((folder / name).stat().st_size for name in linked)
    assert held <= 2 * sum(used[name] for name in linked)


def _published_twice(
    folder: Path, deals: list[dict[str, Any]], change: Callable[[list[dict[str, Any]]], None]
) -> tuple[Engine, Facts]:
    """A store synced with ``deals`` (two teams) and its facts published, then synced again
    after ``change`` and refreshed from that snapshot: the store and the facts refreshed."""
    engine = _engine(folder)
    sync(engine, _two_teams(*deals))
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    writer.refresh()
    change(deals)
    sync(engine, _two_teams(*deals))
    return engine, writer.refresh()


def test_a_sync_that_changes_amounts_writes_only_the_index_arrays_it_changed(folder):
    deals = [_deal(f"O{n}", "100", owner="R1" if n % 2 else "R2") for n in range(200)]
    engine, after = _published_twice(
        folder, deals, lambda deals: deals.__setitem__(7, _deal("O7", "175", owner="R1"))
    )
    first, second = (Snapshots(folder / "s", "k").path(stamp(engine, v)) for v in (1, 2))
    manifest = json.loads((second / "opportunities.index.json").read_text(encoding="utf-8"))
    # The dates in order and every scope's places are where the first snapshot wrote them.
    kept = [o["dates"] for o in manifest["orders"].values()]
    kept += [p["among"] for p in manifest["parts"] if p["among"]]
    assert {entry["file"] for entry in kept} == {"opportunities.index.v1"}
    assert (second / "opportunities.index.v1").stat().st_ino == (
        first / "opportunities.index.v1"
    ).stat().st_ino
    written = (second / "opportunities.index.v2").stat().st_size
    assert written < (first / "opportunities.index.v1").stat().st_size / 2
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _won(served) == _won(after) == 200 * 10_000 + 7_500
    assert _answers(served) == _answers(load_facts(engine, "EUR", RATES, 0.5))


def test_a_sync_that_replaces_most_index_arrays_writes_them_all_afresh(folder):
    """Every close date and amount changes: the arrays by creation date alone could stay in
    the first data file, but they are a small part of it; the rest would be kept for them."""

    def moved(deals: list[dict[str, Any]]) -> None:
        for n, deal in enumerate(deals):
            deal.update(close_date=date(2026, 11, 3 + n % 20), amount=Decimal(120))

    deals = [_deal(f"O{n}", "100", owner="R1" if n % 2 else "R2") for n in range(200)]
    engine, after = _published_twice(folder, deals, moved)
    second = Snapshots(folder / "s", "k").path(stamp(engine, 2))
    assert index_files(second, "opportunities") == [
        "opportunities.index.json",
        "opportunities.index.v2",
    ]
    assert_linked_files_mostly_used(second, "opportunities")
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _answers(served) == _answers(after) == _answers(load_facts(engine, "EUR", RATES, 0.5))


def test_a_sync_that_changes_one_deal_writes_only_the_chunks_it_falls_in(folder, monkeypatch):
    """Chunks of a page (512 numbers): of 3,000 deals one changes its amount. The deals'
    amounts and the close order's amounts are written for the chunk holding it; every other
    chunk stays in the first snapshot's files, which are linked; what a serving process maps
    from both gives the answers of the store loaded whole. The other columns, still those
    mapped, are kept whole; the amounts were written over a copy of the mapped column made
    copy on write, and only the chunk written is looked at."""
    monkeypatch.setattr(array_files, "_CHUNK", mmap.PAGESIZE)
    looked: list[tuple[str, list[bool] | None]] = []
    same_chunks = array_files._same_chunks

    def spied(array: np.ndarray, before: np.ndarray, stored: Any, unwritten: Any) -> Any:
        name = stored.names[stored.file[0]]
        looked.append((name, None if unwritten is None else unwritten.tolist()))
        return same_chunks(array, before, stored, unwritten)

    monkeypatch.setattr(array_files, "_same_chunks", spied)
    deals = [_deal(f"O{n:04d}", "100", owner="R1" if n % 2 else "R2") for n in range(3_000)]
    engine, after = _published_twice(
        folder, deals, lambda deals: deals.__setitem__(1_500, _deal("O1500", "175", owner="R2"))
    )
    first, second = (Snapshots(folder / "s", "k").path(stamp(engine, v)) for v in (1, 2))
    columns = [
        json.loads((path / "opportunities.columns.json").read_text(encoding="utf-8"))["columns"]
        for path in (first, second)
    ]
    assert {name for name, entry in columns[1].items() if entry != columns[0][name]} == {"amount"}
    looked_at = [chunks for name, chunks in looked if name.startswith("opportunities.columns")]
    assert looked_at == [[True, True, False, True, True, True]]

    def files(manifest: str, *where: str) -> list[str]:
        entry = json.loads((second / manifest).read_text(encoding="utf-8"))
        for key in where:
            entry = entry[key]
        return chunk_files(entry)

    old, new = "opportunities.columns.chunks.v1", "opportunities.columns.chunks.v2"
    amounts = files("opportunities.columns.json", "columns", "amount")
    assert len(amounts) == 6  # 3,000 amounts of 8 bytes
    assert amounts == [old] * 2 + [new] + [old] * 3  # row 1,500 is in the third chunk
    assert files("opportunities.columns.json", "columns", "id") == [old] * 6
    assert (second / old).stat().st_ino == (first / old).stat().st_ino
    assert (second / new).stat().st_size == mmap.PAGESIZE
    ordered = files("opportunities.index.json", "orders", "close", "columns", "amount")
    assert ordered.count("opportunities.index.chunks.v2") == 1
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _won(served) == _won(after) == 3_000 * 10_000 + 7_500
    assert _answers(served) == _answers(load_facts(engine, "EUR", RATES, 0.5))


def test_a_sync_that_moves_deals_patches_the_indexes_over_copy_on_write_maps(folder, monkeypatch):
    """Chunks of a page (512 numbers, some 50 days of closes): of 3,000 deals closing over
    300 days, a sync pushes two a month, the last one to next year, and adds one. The patch
    starts each changed index array from the first snapshot's chunks mapped copy on write;
    what it publishes is what building the indexes again gives, it keeps the chunks the
    moves did not reach, and a serving process answers as from the store loaded whole."""
    monkeypatch.setattr(array_files, "_CHUNK", mmap.PAGESIZE)
    mapped = []
    writable = array_files.writable_copy

    def spied(*args: Any) -> np.ndarray:
        mapped.append(args[1])  # the entry of the array mapped
        return writable(*args)

    monkeypatch.setattr(array_files, "writable_copy", spied)
    deals = [_deal(f"O{n:04d}", "100", owner="R1" if n % 2 else "R2") for n in range(3_000)]
    for n, deal in enumerate(deals):
        deal["close_date"] = date.fromordinal(date(2026, 1, 1).toordinal() + n % 300)

    def moved(deals: list[dict[str, Any]]) -> None:
        for n in (10, 2_240):  # days 10 and 140: the first chunk, the third and fourth
            deals[n]["close_date"] = date.fromordinal(deals[n]["close_date"].toordinal() + 30)
        deals[2_999]["close_date"] = date(2027, 3, 1)  # day 299 to the end: the last chunk
        deals.append(_deal("O3000", "50"))

    engine, after = _published_twice(folder, deals, moved)
    assert mapped, "the patch copied the old arrays by mapping them"
    second = Snapshots(folder / "s", "k").path(stamp(engine, 2))
    published = read_indexes(second, "opportunities", len(after.opportunities))
    assert published is not None
    assert_same_indexes(published, prepared_indexes(after, "opportunities"))
    entry = json.loads((second / "opportunities.index.json").read_text(encoding="utf-8"))
    chunks = chunk_files(entry["orders"]["close"]["dates"])
    kept, written = "opportunities.index.chunks.v1", "opportunities.index.chunks.v2"
    assert chunks == [written, kept, written, written, kept, written]
    # The deals' close dates, written over a copy on write too: rows 10, 2,240 and 2,999
    # (the first, fifth and last chunks; the last one longer by the deal added).
    first = Snapshots(folder / "s", "k").path(stamp(engine, 1))
    closes = [
        json.loads((path / "opportunities.columns.json").read_text(encoding="utf-8"))["columns"][
            "close"
        ]
        for path in (first, second)
    ]
    old, new = "opportunities.columns.chunks.v1", "opportunities.columns.chunks.v2"
    assert chunk_files(closes[1]) == [new, old, old, old, new, new]
    assert closes[0] in mapped, "the close dates mapped again"
    served = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).get()
    assert _answers(served) == _answers(load_facts(engine, "EUR", RATES, 0.5))


def test_new_exchange_rates_load_the_facts_whole(folder):
    engine = _engine(folder)
    deal = _deal("O1", "100") | {"currency": "USD"}
    sync(engine, _with_deals(deal))
    writer = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))
    assert _won(writer.refresh()) == 9_000
    with transaction(session_factory(engine)) as session:
        session.add(FxRate(currency="USD", valid_from=date(2026, 1, 1), rate=Decimal("0.8")))
        bump_data_version(session)
    assert _won(writer.refresh()) == 8_000


def test_a_process_warmed_at_start_answers_from_the_mapped_snapshot(folder, monkeypatch):
    engine = _engine(folder)
    sync(engine, _with_deals(_deal("O1", "100")))
    FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k")).refresh()
    serving = FactsCache(engine, "EUR", RATES, 0.5, snapshots=Snapshots(folder / "s", "k"))

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("the facts were built, not mapped")

    monkeypatch.setattr(facts_loader, "_loaded", built)
    serving.warm()
    facts = serving.get()
    assert (facts.version, _won(facts)) == (1, 10_000)
    assert serving.get() is facts


def test_a_process_warmed_without_a_snapshot_builds_it_in_the_background(folder):
    engine = _engine(folder)
    sync(engine, _with_deals(_deal("O1", "100")))
    snapshots = Snapshots(folder / "s", "k")
    serving = FactsCache(engine, "EUR", RATES, 0.5, snapshots=snapshots)
    serving.warm()
    serving.wait()
    assert snapshots.versions() == [stamp(engine, 1)]
    assert _won(serving.get()) == 10_000


def _published(folder: Path) -> list[str]:
    return sorted(path.name for path in (folder / "kpibot.db.facts").iterdir() if path.is_dir())


def _made_again(folder: Path, engine: Engine) -> Engine:
    """The store's file deleted and a new one made in its place, the snapshots left beside."""
    engine.dispose()
    (folder / "kpibot.db").unlink()
    return _engine(folder)


def test_a_store_made_again_in_its_place_never_reads_the_old_ones_snapshots(folder):
    """Deleted and imported anew, a store reaches the version numbers of the snapshots the old
    one left: a new process maps none of them, and a writer that refreshes from the newest
    snapshot (``kpibot sync``) does not refresh from theirs; they are pruned."""
    engine = _engine(folder)
    for deals in ([_deal("O1", "100")], [_deal("O1", "100"), _deal("O2", "200")]):
        sync(engine, _with_deals(*deals))
        FactsCache(engine, "EUR", RATES, 0.5).publish()
    old = _published(folder)
    engine = _made_again(folder, engine)
    for deals in ([_deal("O1", "500")], [_deal("O1", "500"), _deal("O3", "50")]):
        sync(engine, _with_deals(*deals))
    # Version 2 of each: the old one's snapshot is not this store's.
    assert _won(FactsCache(engine, "EUR", RATES, 0.5).get()) == 55_000
    sync(engine, _with_deals(_deal("O1", "500"), _deal("O3", "50"), _deal("O4", "1")))
    FactsCache(engine, "EUR", RATES, 0.5).publish()  # version 3: from its own version 2
    served = FactsCache(engine, "EUR", RATES, 0.5).get()
    assert _won(served) == 55_100
    assert_same_facts(served, load_facts(engine, "EUR", RATES, 0.5))
    kept = [Snapshots(folder, "k").path(stamp(engine, v)).name.split("-k")[0] for v in (2, 3)]
    assert [name.rsplit("-", 1)[0] for name in _published(folder)] == kept
    assert not set(old) & set(_published(folder))
    engine.dispose()


def _copied(source: Path, target: Path) -> None:
    """``source`` copied onto ``target`` by SQLite's online backup (WAL pages included)."""
    with closing(sqlite3.connect(source)) as read, closing(sqlite3.connect(target)) as written:
        read.backup(written)


def test_a_store_restored_from_a_backup_never_reads_the_snapshots_it_went_past(folder):
    """Restored at version 1 under a serving process that holds its version 3, beside the
    snapshots of its versions 2 and 3, it makes another version 2 and 3: the process answers
    the store's figures, its past states read anew, and so does a new process."""
    engine = _engine(folder)
    sync(engine, _with_deals(_deal("O1", "100")))
    _copied(folder / "kpibot.db", folder / "backup.db")
    serving = FactsCache(engine, "EUR", RATES, 0.5)
    for deals in ([_deal("O1", "100"), _deal("O2", "200")], [_deal("O2", "200")]):
        sync(engine, _with_deals(*deals))
        serving.refresh()
    lost, past = serving.get(), serving.past
    assert (lost.version, _won(lost)) == (3, 20_000)
    _copied(folder / "backup.db", folder / "kpibot.db")  # the engine's connections see it
    for deals in ([_deal("O1", "100"), _deal("O5", "5")], [_deal("O1", "100"), _deal("O6", "6")]):
        sync(engine, _with_deals(*deals))
    expected = load_facts(engine, "EUR", RATES, 0.5)
    assert (expected.version, _won(expected)) == (3, 10_600)
    serving.caught_up()
    assert_same_facts(serving.get(), expected)
    assert serving.past is not past
    assert_same_facts(FactsCache(engine, "EUR", RATES, 0.5).get(), expected)
    engine.dispose()


def test_each_kind_of_change_is_refreshed_on_every_store(store, tmp_path, monkeypatch):
    """SQLite and PostgreSQL: an insert, an update, a deletion, a reopening, a rep moving team
    and a lead deleted outright, each refreshed from the facts of the sync before."""
    company = _with_deals(_deal("O1", "100"), _deal("O2", "200"))
    company["teams"].append(
        {"source": "t", "source_id": "T2", "name": "Nice", "region": "Sud", "manager": None}
    )
    company["leads"] = [
        {"source": "t", "source_id": "L1", "owner": "R1", "created_at": date(2026, 11, 1),
         "converted_at": None}
    ]  # fmt: skip
    writer = FactsCache(store, "EUR", RATES, 0.5, snapshots=Snapshots(tmp_path / "s", "k"))
    steps = [
        lambda c: c["opportunities"].append(_deal("O3", "50")),  # inserted
        lambda c: c["opportunities"][0].update(amount=Decimal("150")),  # updated
        lambda c: c["opportunities"].pop(1),  # deleted (O2)
        lambda c: c["opportunities"].append(_deal("O2", "200")),  # reopened
        lambda c: c["reps"][0].update(team="T2"),  # the rep moves to Nice
        lambda c: c["leads"].clear(),  # deleted outright
    ]
    sync(store, company)
    writer.refresh()
    loaded = facts_loader._loaded

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the refresh read the facts whole")

    for step in steps:
        step(company)
        sync(store, company)
        monkeypatch.setattr(facts_loader, "_loaded", whole)
        refreshed = writer.refresh()
        monkeypatch.setattr(facts_loader, "_loaded", loaded)
        assert_same_facts(records(refreshed), load_facts(store, "EUR", RATES, 0.5))
    facts = writer.get()
    assert _won(facts) == 40_000
    assert set(facts.opportunities["team"].astype(str)) == {"Nice"}
    # The lead deleted outright: its row emptied in place (the deal deleted came back).
    assert facts.leads["created"].isna().tolist() == [True]
    assert records(facts).leads.empty


def _frame(ids: list[int], seed: int) -> pd.DataFrame:
    """Rows with the kinds of columns the fact tables hold, their values drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    count = len(ids)
    accounts = pd.array(rng.integers(0, 3, count), dtype="Int64")
    accounts[rng.random(count) < 0.3] = pd.NA
    return pd.DataFrame(
        {
            "id": np.asarray(ids, dtype="int64"),
            "team": pd.Categorical(rng.choice(["Lyon", "Nice", "Paris"], count)),
            "account": accounts,
            "amount": rng.integers(0, 3, count).astype("int64"),
            "close": pd.to_datetime(rng.integers(0, 3, count), unit="D"),
            "probability": np.where(rng.random(count) < 0.2, np.nan, rng.integers(0, 2, count)),
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    held=st.sets(st.integers(1, 40), max_size=25),
    touched=st.sets(st.integers(1, 60), max_size=12),
    gone=st.sets(st.integers(1, 60), max_size=4),
    emptied=st.sets(st.integers(1, 40), max_size=3),
    fewest=st.integers(0, 6),
    seed=st.integers(0, 2**16),
)
def test_rows_merged_into_facts_are_those_a_straightforward_merge_gives(
    held, touched, gone, emptied, fewest, seed
):
    """``merged`` against the plain reading of a refresh: the old records but the touched ones,
    the changed rows added, ordered by id. When rows are only updated, added after the old
    ones or deleted, every other row stays where it was: a deleted one emptied in place, until
    the emptied rows (``emptied``: those of an earlier refresh) pass the share and the count
    (``fewest``), when all of them are dropped; the columns whose values did not change are the
    old frame's own."""
    old = _frame(sorted(held), seed)
    earlier = old["id"].isin(emptied).to_numpy()
    if earlier.any():
        old = facts_merge.patched(
            old, np.flatnonzero(earlier), facts_merge._emptied(old[earlier]).reset_index(drop=True)
        )
    changed = _frame(sorted(touched - gone), seed + 1).sample(frac=1, random_state=seed)
    if len(changed):  # a new category in a sync
        changed["team"] = changed["team"].cat.add_categories(["Brest"])
        changed.loc[changed.index[0], "team"] = "Brest"
    both = np.asarray(sorted(touched | gone), dtype="int64")
    with mock.patch.object(facts_merge, "_FEWEST_DROPPED", fewest):
        merged, written = facts_merge.merged(old, changed, both, "close")
    live = old["close"].notna().to_numpy()
    expected = pd.concat([old[live & ~old["id"].isin(both)], changed], ignore_index=True)
    expected["team"] = expected["team"].astype("object")
    expected = expected.sort_values("id", kind="stable").reset_index(drop=True)
    records = merged[merged["close"].notna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(records.astype({"team": "object"}), expected)
    assert isinstance(merged["team"].dtype, pd.CategoricalDtype)
    added = touched - gone
    deleted = (held & (touched | gone)) - added
    empty = len(held & emptied) + len(deleted)
    untouched = not added and not held & (touched | gone)  # the old frame as it is
    dropping = not untouched and empty > max(fewest, 0.05 * (len(held) + len(added)))
    in_place = all(i in held or i > max(held, default=0) for i in added) and not dropping
    assert (written is not None) == in_place
    if written is None:
        assert merged["close"].notna().all()  # every emptied row dropped
        return
    # Rows only updated, emptied or new ones after the old: the others stay where they were.
    assert merged["id"].tolist() == [*sorted(held), *sorted(added - held)]
    assert written.tolist() == np.flatnonzero(merged["id"].isin(added | deleted)).tolist()
    gone_rows = merged[merged["id"].isin((held & emptied | deleted) - added).to_numpy()]
    pd.testing.assert_frame_equal(gone_rows, facts_merge._emptied(gone_rows))
    if touched <= held and not held & gone and len(old):
        updated = sorted(touched)
        before = old.set_index("id").loc[updated]
        after = changed.set_index("id").loc[updated]
        for name in ("amount", "close", "probability"):
            same = before[name].equals(after[name])
            shared = np.shares_memory(merged[name].to_numpy(), old[name].to_numpy())
            assert shared == same, name


_pushes = st.lists(
    st.tuples(st.integers(0, 5), st.integers(1, 8), st.integers(1, 99)), max_size=30
)  # (day, deal, days pushed)


def _slips(pushes: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.asarray([deal for _, deal, _ in pushes], dtype="int64"),
            "date": pd.to_datetime([day for day, _, _ in pushes], unit="D", origin="2026-01-01")
            .astype("datetime64[ns]"),
            "days": np.asarray([days for _, _, days in pushes], dtype="int64"),
            "rep": pd.Categorical([f"rep {deal % 3}" for _, deal, _ in pushes]),
        }
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(old=_pushes, changed=_pushes, others=st.sets(st.integers(1, 8), max_size=3))
def test_pushes_replaced_by_a_sync_are_those_sorting_them_all_gives(old, changed, others):
    """A sync's pushes of its deals (``changed``, as read, in any order; ``others``: deals it
    changed that have none now) in place of the old ones of those deals, merged among the
    others by day then deal, each deal's in push order: as a stable sort of the old pushes
    kept and the new ones gives (what the refresh did before it merged them)."""
    before = facts_loader._by_day_and_deal(_slips(old))
    now = _slips(changed)
    deals = np.asarray(sorted({deal for _, deal, _ in changed} | others), dtype="int64")
    every, read = facts_merge.same_categories(before, now)  # a new rep among the reps'
    kept = every[~every["id"].isin(deals).to_numpy()]
    expected = facts_loader._by_day_and_deal(pd.concat([kept, read], ignore_index=True))
    got = facts_loader._replaced_slips(before, now, deals)
    pd.testing.assert_frame_equal(got, expected)


def test_columns_written_over_copies_on_write_equal_those_written_over_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every kind of column a fact table holds, mapped from a snapshot in chunks of a page,
    then rows written at a few places (``facts_merge.patched``): over the copies
    ``Earlier.copy`` maps copy on write (numbers, dates, names' codes) the columns are
    those written over plain copies, missing values and dtypes included, and the mapped
    frame is left as it was."""
    monkeypatch.setattr(array_files, "_CHUNK", mmap.PAGESIZE)
    rows = 9_000  # the names' codes too, a byte each, in more than a page
    numbers = np.arange(rows)
    frame = pd.DataFrame(
        {
            "id": numbers.astype(np.int64),
            "amount": numbers * 100,
            "probability": np.where(numbers % 7 == 0, np.nan, numbers / rows),
            "close": pd.to_datetime(numbers, unit="D", origin="2026-01-01").where(numbers % 5 != 0),
            "rep": pd.Categorical(np.where(numbers % 2 == 0, "ann", "bob")),
            "account": pd.array(np.where(numbers % 3 == 0, None, numbers), dtype="Int64"),
            "name": pd.array([f"deal {n}" for n in numbers], dtype="string[pyarrow]"),
        }
    )
    facts_snapshot._write_table(tmp_path, "t", frame, 1, None)
    mapped, earlier = facts_snapshot._read_table(tmp_path, "t")
    places = np.asarray([3, 700, 8_999])
    changed = pd.DataFrame(
        {
            "id": places.astype(np.int64),
            "amount": [-1, -2, -3],
            "probability": [np.nan, 0.5, 0.25],
            "close": pd.to_datetime(["2027-01-01", None, "2026-06-30"]).astype(
                frame["close"].dtype
            ),
            "rep": pd.Categorical(["ann", "bob", "ann"], categories=frame["rep"].cat.categories),
            "account": pd.array([None, 7, 8], dtype="Int64"),
            "name": pd.array(["a", "b", None], dtype="string[pyarrow]"),
        }
    )
    before = mapped.copy(deep=True)
    over_maps = facts_merge.patched(mapped, places, changed, earlier.copy)
    over_copies = facts_merge.patched(mapped, places, changed)
    pd.testing.assert_frame_equal(over_maps, over_copies)
    pd.testing.assert_frame_equal(mapped, before)
    assert over_maps["amount"].iloc[700] == -2 and pd.isna(over_maps["close"].iloc[700])
    # The numbers, dates and codes are copies on write of the snapshot's maps.
    assert len(earlier._copies) == 4
    # Names of other categories are not written as codes that would mean others.
    other = changed.assign(rep=pd.Categorical(["ann", "cid", "ann"]))
    with pytest.raises(TypeError):
        facts_merge.patched(mapped, places, other, earlier.copy)
