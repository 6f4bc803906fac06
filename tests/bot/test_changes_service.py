"""``pipeline changes since …`` end to end: CSV imports record the history, the service rebuilds
the two states from it and computes the waterfall; the answer says when the history starts
after the day asked for."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from bot.importers.csv_import import import_csv
from bot.service import KpiService
from bot.settings import Settings, load_settings
from bot.store.database import session_factory, transaction
from bot.store.facts_loader import snapshot_folder
from bot.store.models import OpportunityHistory
from metrics.waterfall import Movement
from tests.bot.test_history import SOURCE

# id → (stage, amount, close date, owner)
BEFORE = {
    "d1": ("Proposal", "1000.00", "2026-12-15", "r1"),
    "d2": ("Proposal", "500.00", "2026-12-20", "r1"),
    "d3": ("Discovery", "300.00", "2026-12-10", "r2"),
}
AFTER = {
    "d1": ("Won", "1200.00", "2026-11-30", "r1"),  # +200, then won
    "d2": ("Proposal", "500.00", "2027-01-20", "r1"),  # pushed into next quarter
    "d4": ("Discovery", "250.00", "2026-12-31", "r2"),  # created; d3 deleted
}


def _write(directory: Path, deals: dict[str, tuple[str, str, str, str]]) -> None:
    with (directory / "reps.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["rep_id", "rep"], ["r1", "Rep r1"], ["r2", "Rep r2"]])
    with (directory / "deals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["deal", "rep", "stage", "amount", "close", "proba"])
        writer.writerows([key, owner, stage, amount, close, ""]
                         for key, (stage, amount, close, owner) in deals.items())  # fmt: skip


def _settings(tmp_path: Path) -> Settings:
    config = tmp_path / "kpibot.yaml"
    config.write_text("organisation:\n  name: Test\n  currency: EUR\n  timezone: Europe/Paris\n")
    # The store is handed to the service: the URL is never opened.
    return load_settings(config, {"DATABASE_URL": "sqlite://"})


def _import(engine: Engine, directory: Path, deals: dict[str, tuple[str, str, str, str]]) -> None:
    _write(directory, deals)
    with transaction(session_factory(engine)) as session:
        import_csv(session, "crm", SOURCE, directory, "EUR")


@pytest.fixture
def service(store: Engine, tmp_path: Path) -> KpiService:
    return history_service(store, tmp_path)


def history_service(store: Engine, tmp_path: Path) -> KpiService:
    """BEFORE imported ten days ago, AFTER now."""
    _import(store, tmp_path, BEFORE)
    # The first import happened ten days ago: its intervals start then.
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    with store.begin() as connection:
        connection.execute(update(OpportunityHistory).values(valid_from=ten_days_ago))
    _import(store, tmp_path, AFTER)
    return KpiService(_settings(tmp_path), store)


def test_movements_since_last_week(service: KpiService) -> None:
    now = datetime.now(UTC)
    query = service.parse("pipeline changes 2026-Q4 since last week", now)

    changes = service.changes(query, now)

    whole = changes.waterfall
    assert (whole.start, whole.end) == (180_000, 25_000)
    moved = {s.movement: (s.amount, s.count) for s in whole.steps if s.count}
    assert moved == {
        Movement.CREATED: (25_000, 1),
        Movement.INCREASED: (20_000, 1),
        Movement.PUSHED: (-50_000, 1),
        Movement.WON: (-120_000, 1),
        Movement.REMOVED: (-30_000, 1),
    }
    assert changes.history_from is None
    assert [w.scope for w in changes.breakdown] == []  # the CSV has no teams


def test_the_start_is_the_first_recorded_state_when_history_is_younger(
    service: KpiService,
) -> None:
    now = datetime.now(UTC)
    query = service.parse("pipeline changes 2026-Q4 since 2026-01-05", now)

    changes = service.changes(query, now)

    assert changes.since == date(2026, 1, 5)
    assert (
        changes.history_from
        == (now - timedelta(days=10)).astimezone(service.settings.organisation.zone).date()
    )
    assert changes.waterfall.start == 180_000


def test_largest_deals_are_named_only_for_visible_reps(service: KpiService) -> None:
    now = datetime.now(UTC)
    query = service.parse("pipeline changes 2026-Q4 since last week", now)

    changes = service.changes(query, now, named=lambda rep: rep == "Rep r2")

    won = changes.waterfall.step(Movement.WON)
    created = changes.waterfall.step(Movement.CREATED)
    assert (won.amount, won.largest) == (-120_000, ())
    assert [(d.name, d.rep) for d in created.largest] == [("d4", "Rep r2")]  # no name: its id


def test_a_pushed_close_date_is_a_slip_in_the_facts_and_the_kpi(service: KpiService) -> None:
    now = datetime.now(UTC)
    slips = service.snapshot().facts.slips

    # d2 went from 20 Dec to 20 Jan while open; d1's close date moved earlier as it was won.
    assert slips[["days", "amount", "rep"]].to_dict("records") == [
        {"days": 31, "amount": 50_000, "rep": "Rep r1"}
    ]
    answer = service.ask(f"glissements {now.date().isoformat()[:7]}", now)
    assert (answer.value.value, answer.value.sample) == (500, 1)


def test_a_deal_deleted_while_the_facts_were_held_moves_as_from_facts_loaded_whole(
    store: Engine, tmp_path: Path
) -> None:
    _import(store, tmp_path, BEFORE)
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    with store.begin() as connection:
        connection.execute(update(OpportunityHistory).values(valid_from=ten_days_ago))
    held = KpiService(_settings(tmp_path), store)
    assert len(held.snapshot().facts.opportunities) == 3
    _import(store, tmp_path, AFTER)  # d3 deleted: its row emptied in the facts refreshed

    held.snapshot()  # sees the change: the facts are refreshed in the background
    held.wait_for_facts()
    refreshed = held.snapshot().facts
    assert refreshed.version == 2 and refreshed.opportunities["status"].isna().sum() == 1
    folder = snapshot_folder(store)
    if folder is not None:  # what was published from the facts refreshed: loaded whole instead
        shutil.rmtree(folder)
    whole = KpiService(_settings(tmp_path), store)
    assert whole.snapshot().facts.opportunities["status"].notna().all()
    now = datetime.now(UTC)
    for question in ("pipeline changes 2026-Q4 since last week", "pipeline 2026-Q4", "forecast"):
        query = held.parse(question, now)
        if query.since is not None:
            assert held.changes(query, now) == whole.changes(query, now)
        else:
            assert held.answer(query, now) == whole.answer(query, now)
    removed = held.changes(held.parse("pipeline changes 2026-Q4 since last week", now), now)
    assert removed.waterfall.step(Movement.REMOVED).amount == -30_000
