"""Past states are kept as the deals changed since a moment, as they stood then: read from the
history once, brought forward after each sync by reading only what that sync changed, and
equal to a whole read of the history at every step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine

from bot.service import KpiService
from bot.store.facts_loader import (
    PastStates,
    current_owners,
    load_deal_states,
    load_facts,
    usual_moments,
)
from bot.store.history import first_recorded, utc
from tests.bot.test_changes_service import AFTER, BEFORE, _import, _settings, history_service
from tests.bot.test_comparisons_history import _service

BETWEEN = datetime(2026, 11, 10, tzinfo=UTC)  # after the first import, before the second


def _rebuilt(past: PastStates, store: Engine) -> pd.DataFrame:
    """The deals at BETWEEN as the kept difference and the current facts make them."""
    facts = load_facts(store, "EUR", {}, 0.5)
    changed, start = past.changed_since(BETWEEN, facts.version)
    deals = facts.opportunities
    unchanged = deals[~deals["id"].isin(changed)]
    return (
        pd.concat([unchanged[list(start.columns)], start]).sort_values("id").reset_index(drop=True)
    )


def _whole(store: Engine) -> pd.DataFrame:
    frame = load_deal_states(store, BETWEEN, "EUR", {})
    # Deleted before BETWEEN and never back: in neither state, so not in the difference.
    return frame[frame["status"] != "deleted"].sort_values("id").reset_index(drop=True)


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_categorical=False)


def test_a_past_state_is_the_changed_deals_and_survives_a_sync(
    store: Engine, tmp_path: Path
) -> None:
    _service(store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    past = PastStates(store, "EUR", {}, 0.5)
    changed, start = past.changed_since(BETWEEN, 0)
    # Every deal changed on 20 November: d1 won, d2 pushed, d3 deleted, d4 created (not there
    # on the 10th). The first three as the first import left them.
    assert len(changed) == 4
    assert sorted(start["amount"]) == [30_000, 50_000, 100_000]
    assert list(start["status"].astype(str)) == ["open", "open", "open"]
    _same(_rebuilt(past, store), _whole(store))
    kept = past.nbytes
    assert kept > 0

    # A later sync (d4 resized) changes nothing of 10 November: only its changes are read.
    _import(store, tmp_path, dict(AFTER, d4=("Discovery", "999.00", "2026-12-31", "r2")))

    again, start_again = past.changed_since(BETWEEN, 0)
    assert list(again) == list(changed)  # d4 had already changed since the 10th
    _same(start_again, start)
    _same(_rebuilt(past, store), _whole(store))
    assert past.nbytes == kept


def test_the_opportunities_as_they_stood_leave_out_deals_not_there_yet(
    store: Engine, tmp_path: Path
) -> None:
    _service(store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    past = PastStates(store, "EUR", {}, 0.5)
    facts = load_facts(store, "EUR", {}, 0.5)

    stood = past.opportunities(BETWEEN, facts, current_owners(store))

    assert sorted(stood["status"].astype(str)) == ["open", "open", "open"]
    assert stood["amount"].sum() == 180_000
    assert set(stood.columns) == set(facts.opportunities.columns)


def test_kept_states_stay_within_their_byte_budget(store: Engine, tmp_path: Path) -> None:
    _service(store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    one = PastStates(store, "EUR", {}, 0.5)
    one.changed_since(BETWEEN, 0)
    budget = one.nbytes + 1  # room for one moment, not two
    past = PastStates(store, "EUR", {}, 0.5, budget=budget)

    moments = [datetime(2026, 11, day, tzinfo=UTC) for day in (5, 10, 15)]
    past.prepare(moments, 0)

    assert past.nbytes <= budget
    # The newest moment read stays; the others were let go.
    assert past.kept() == [moments[-1]]


def test_usual_moments_are_the_days_a_waterfall_is_asked_from() -> None:
    paris = ZoneInfo("Europe/Paris")
    moments = usual_moments(date(2026, 11, 26), paris)  # a Thursday

    assert [m.date() for m in moments] == [
        date(2026, 11, 25),  # yesterday
        date(2026, 11, 23),  # Monday
        date(2026, 11, 19),  # a week ago
        date(2026, 11, 1),  # the month
        date(2026, 10, 1),  # the quarter
    ]
    assert all(m.tzinfo is paris and m.hour == 0 for m in moments)


def _usual_since_first(service: KpiService, store: Engine) -> list[datetime]:
    """Today's usual moments, those before the history's first moment as that moment."""
    zone = service.settings.organisation.zone
    today = datetime.now(UTC).astimezone(zone).date()
    with store.connect() as connection:
        first = first_recorded(connection)
    assert first is not None
    return sorted({max(utc(m), first) for m in usual_moments(today, zone)})


def test_new_data_in_a_running_service_prepares_the_usual_moments(
    store: Engine, tmp_path: Path
) -> None:
    # The fixture of test_changes_service: a first import ten days ago, a second one now.
    service = history_service(store, tmp_path)
    service.snapshot()
    cache = service._cache
    assert cache.past.kept() == []  # a process's first facts prepare nothing

    _import(store, tmp_path, dict(AFTER, d4=("Discovery", "999.00", "2026-12-31", "r2")))
    service.snapshot()  # the new version: answers go on from the old facts meanwhile
    cache.wait()
    facts = service.snapshot().facts  # swapped in: the moments are prepared in the background
    cache.wait()

    prepared = _usual_since_first(service, store)
    assert sorted(cache.past.kept()) == prepared
    # An answer since one of them reads nothing more, and counts from it as a whole read does.
    query = service.parse("pipeline changes 2026-Q4 since last week", datetime.now(UTC))
    changes = service.changes(query, datetime.now(UTC))
    assert sorted(cache.past.kept()) == prepared
    assert changes.waterfall.end == facts.pipeline(query.scope, query.period)


def test_a_serving_process_reads_the_usual_moments_at_its_start(
    store: Engine, tmp_path: Path
) -> None:
    # What `kpibot serve` does before it listens: its first waterfall then reads no history.
    service = history_service(store, tmp_path)
    cache = service._cache
    cache.refresh()  # the facts in hand, as mapped from a published snapshot
    assert cache.past.kept() == []

    service.warm_facts()
    service.wait_for_facts()

    assert sorted(cache.past.kept()) == _usual_since_first(service, store)


def test_moments_before_the_history_are_prepared_as_its_first_moment(
    store: Engine, tmp_path: Path
) -> None:
    # A first import now: every usual moment is before it, and every deal "changed" since.
    _import(store, tmp_path, BEFORE)
    service = KpiService(_settings(tmp_path), store)
    cache = service._cache
    cache.refresh()
    with store.connect() as connection:
        first = first_recorded(connection)
    assert first is not None

    service.warm_facts()
    service.wait_for_facts()

    assert cache.past.kept() == [first]  # one moment, not five reads of every deal
    version = service.snapshot().facts.version
    changed, start = cache.past.changed_since(first, version)
    assert changed.size == 0 and start.empty
    # Any reader of a moment before the history gets that first moment.
    before, at_first = cache.past.changed_since(first - timedelta(days=30), version)
    assert before.size == 0 and at_first.empty
    assert cache.past.kept() == [first]
    # A waterfall since last week counts from that first moment, and finds it ready.
    query = service.parse("pipeline changes 2026-Q4 since last week", datetime.now(UTC))
    changes = service.changes(query, datetime.now(UTC))
    assert changes.history_from == first.astimezone(service.settings.organisation.zone).date()
    assert cache.past.kept() == [first]
