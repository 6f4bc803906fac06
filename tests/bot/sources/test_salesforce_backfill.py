"""The first Salesforce sync backfills the pipeline history from OpportunityFieldHistory: the
states a deal's changes imply (hand-computed below) stand at the moments before kpibot was
installed, the waterfall since then counts the slip, the backfill costs ⌈rows / batch⌉ API
calls, and later syncs do not backfill again."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.store.facts_loader import load_deal_states
from bot.store.history import slips, states_at
from metrics.periods import Grain, period_containing
from metrics.scopes import Scope
from metrics.waterfall import Movement, waterfall
from tests.bot.sources.crm_support import Store, store_on
from tests.bot.sources.test_salesforce import BATCH, ENGLISH, connector
from tests.fakes.salesforce_api import FakeSalesforce, sf_time

STAGES = [
    # MasterLabel, IsClosed, IsWon
    ("Prospecting", False, False),
    ("Qualification", False, False),
    ("Negotiation", False, False),
    ("Closed Won", True, True),
    ("Closed Lost", True, False),
]
USERS = {"005A": "Ann", "005B": "Bob"}
FILLERS = 30  # lost deals with ten amount changes each: the history takes two pages
X, Y, Z, W = "006X", "006Y", "006Z", "006W"


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def opportunity(key: str, created: str, **fields: Any) -> dict[str, Any]:
    return {
        "Id": key, "Name": f"Deal {key}", "OwnerId": "005A", "AccountId": "0011",
        "StageName": "Negotiation", "Amount": 1000, "CreatedDate": sf_time(at(created, 8)),
        "CloseDate": "2026-12-15", "Probability": 60, "ForecastCategoryName": None,
        "SystemModstamp": sf_time(at("2026-11-25")), **fields,
    }  # fmt: skip


@pytest.fixture
def org() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        for label, closed, won in STAGES:
            fake.put("OpportunityStage", {
                "Id": f"01J{label}", "MasterLabel": label, "IsClosed": closed, "IsWon": won,
                "DefaultProbability": 50, "ForecastCategoryName": "Pipeline",
                "SystemModstamp": sf_time(at("2026-01-05")),
            })  # fmt: skip
        for user, name in USERS.items():
            fake.put("User", {
                "Id": user, "Name": name, "Email": f"{name.lower()}@example.test",
                "UserRole": {"attributes": {"type": "UserRole"}, "Name": "EMEA"},
                "CreatedDate": sf_time(at("2025-01-06")), "UserType": "Standard",
                "SystemModstamp": sf_time(at("2026-01-05")),
            })  # fmt: skip
        fake.put("Account", {
            "Id": "0011", "Name": "Acme", "Type": "Customer", "Industry": "Retail",
            "BillingCountry": "France", "SystemModstamp": sf_time(at("2026-01-05")),
        })  # fmt: skip
        fake.put("Lead", {
            "Id": "00Q1", "CreatedDate": sf_time(at("2026-10-01")), "OwnerId": "005A",
            "ConvertedDate": None, "LeadSource": "Web", "ConvertedAccountId": None,
            "SystemModstamp": sf_time(at("2026-10-01")),
        })  # fmt: skip
        # X: stage and close date changed twice, amount once from empty, owner once.
        fake.put("Opportunity", opportunity(
            X, "2026-09-01", OwnerId="005B", StageName="Negotiation", Amount=5000,
            CloseDate="2027-01-15", Probability=60,
        ))  # fmt: skip
        fake.change(X, "StageName", "Prospecting", "Qualification", at("2026-09-10", 10))
        fake.change(X, "Amount", None, 4000, at("2026-09-10", 10))
        fake.change(X, "CloseDate", "2026-10-31", "2026-11-30", at("2026-10-05"))
        fake.change(X, "StageName", "Qualification", "Negotiation", at("2026-10-20", 14))
        # Salesforce's probabilities are 0-100: X stood at 1 %, not 100 %, before 20 October.
        fake.change(X, "Probability", 1, 60, at("2026-10-20", 14))
        fake.change(X, "CloseDate", "2026-11-30", "2027-01-15", at("2026-11-03"))
        fake.change(X, "Amount", 4000, 5000, at("2026-11-03"))
        fake.change(X, "Owner", "005A", "005B", at("2026-11-10", 8), names=("Ann", "Bob"))
        # Y: won on 20 November, for more than it was worth.
        fake.put("Opportunity", opportunity(
            Y, "2026-09-15", StageName="Closed Won", Amount=7000, CloseDate="2026-11-20",
            Probability=100,
        ))  # fmt: skip
        fake.change(Y, "StageName", "Negotiation", "Closed Won", at("2026-11-20"))
        fake.change(Y, "Amount", 6000, 7000, at("2026-11-20"))
        fake.change(Y, "Probability", 60, 100, at("2026-11-20"))
        # Z: no change since it was created.
        fake.put("Opportunity", opportunity(Z, "2026-10-02", Amount=3000))
        # W: a stage the org no longer has before 15 October; lost in September.
        fake.put("Opportunity", opportunity(
            W, "2026-08-01", StageName="Closed Lost", Amount=200, CloseDate="2026-09-30",
        ))  # fmt: skip
        fake.change(W, "StageName", "Sleeping", "Closed Lost", at("2026-10-15"))
        fake.change(W, "Amount", 100, 200, at("2026-11-01"))
        for number in range(FILLERS):
            key = f"006F{number:02d}"
            fake.put("Opportunity", opportunity(
                key, "2026-06-01", StageName="Closed Lost", CloseDate="2026-07-31",
                Amount=1000 + 10,
            ))  # fmt: skip
            for step in range(10):
                fake.change(
                    key, "Amount", 1000 + step, 1000 + step + 1, at(f"2026-07-{step + 2:02d}")
                )
        yield fake


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from store_on(request.param, tmp_path)


def states(store: Store, moment: datetime) -> dict[str, tuple[Any, ...]]:
    """Each deal as it stood at ``moment``: status, stage, amount, close date, probability and
    owner's name."""
    with store.engine.connect() as connection:
        rows = connection.execute(states_at(moment)).mappings().all()
    reps = {rep_id: name for name, rep_id in store.rows("SELECT name, id FROM reps")}
    return {
        row["source_id"]: (
            row["status"],
            row["stage"],
            row["amount"],
            row["close_date"],
            row["probability"],
            reps.get(row["owner_id"]),
        )
        for row in rows
        if not row["source_id"].startswith("006F")
    }


def history_queries(org: FakeSalesforce) -> int:
    return sum("OpportunityFieldHistory" in (r.param("q") or "") for r in org.api_calls)


def test_first_sync_rebuilds_the_states_the_field_history_implies(org, store):
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None
    backfill = report.backfill
    assert backfill is not None and backfill.error is None
    rows = len(org.records["OpportunityFieldHistory"])
    assert rows == 8 + 1 + 3 + 2 + FILLERS * 10  # the owner change is two rows
    assert backfill.api_calls == math.ceil(rows / BATCH) == 2
    assert history_queries(org) == 1
    # X: 5 moments of change and its creation; Y: 1 and creation; Z: creation; W: the amount
    # change and the state after the stage it cannot read; fillers: 10 and creation each.
    assert (backfill.deals, backfill.intervals) == (4 + FILLERS, 6 + 2 + 1 + 2 + FILLERS * 11)
    assert [(r.deal, r.at, r.reason) for r in backfill.refused] == [
        (W, at("2026-10-15"), "unknown stage 'Sleeping' (the stages mapping knows Closed Lost, "
         "Closed Won, Negotiation, Prospecting, Qualification)")
    ]  # fmt: skip
    summary = report.summary(ENGLISH)
    assert "history before the first sync backfilled" in summary
    assert (
        f"deal {W} not rebuilt before its 2026-10-15 09:00 UTC change: unknown stage 'Sleeping'"
        in summary
    )

    d = date.fromisoformat
    # Before X was created nothing stood; W's rebuild stops at the stage it cannot read.
    assert states(store, at("2026-08-20")) == {}
    assert states(store, at("2026-09-05"))[X] == (
        "open",
        "Prospecting",
        None,
        d("2026-10-31"),
        0.01,
        "Ann",
    )
    assert states(store, at("2026-09-20")) == {
        X: ("open", "Qualification", Decimal("4000.00"), d("2026-10-31"), 0.01, "Ann"),
        Y: ("open", "Negotiation", Decimal("6000.00"), d("2026-11-20"), 0.6, "Ann"),
    }
    assert states(store, at("2026-10-10"))[X] == (
        "open",
        "Qualification",
        Decimal("4000.00"),
        d("2026-11-30"),
        0.01,
        "Ann",
    )
    assert states(store, at("2026-10-25")) == {
        X: ("open", "Negotiation", Decimal("4000.00"), d("2026-11-30"), 0.6, "Ann"),
        Y: ("open", "Negotiation", Decimal("6000.00"), d("2026-11-20"), 0.6, "Ann"),
        Z: ("open", "Negotiation", Decimal("3000.00"), d("2026-12-15"), 0.6, "Ann"),
        W: ("lost", "Closed Lost", Decimal("100.00"), d("2026-09-30"), 0.6, "Ann"),
    }
    assert states(store, at("2026-11-05"))[X] == (
        "open",
        "Negotiation",
        Decimal("5000.00"),
        d("2027-01-15"),
        0.6,
        "Ann",
    )
    assert states(store, at("2026-11-25")) == {
        X: ("open", "Negotiation", Decimal("5000.00"), d("2027-01-15"), 0.6, "Bob"),
        Y: ("won", "Closed Won", Decimal("7000.00"), d("2026-11-20"), 1.0, "Ann"),
        Z: ("open", "Negotiation", Decimal("3000.00"), d("2026-12-15"), 0.6, "Ann"),
        W: ("lost", "Closed Lost", Decimal("200.00"), d("2026-09-30"), 0.6, "Ann"),
    }
    # The slipped-deals list sees X's two pushes (close dates as day numbers).
    with store.engine.connect() as connection:
        pushes = connection.execute(slips()).mappings().all()
    epoch = date(1970, 1, 1).toordinal()
    on = [date.fromordinal(epoch + p[c]) for p in pushes for c in ("previous_close", "close_date")]
    assert list(zip([p["name"] for p in pushes], on[::2], on[1::2], strict=True)) == [
        ("Deal 006X", d("2026-10-31"), d("2026-11-30")),
        ("Deal 006X", d("2026-11-30"), d("2027-01-15")),
    ]


def test_waterfall_since_before_the_first_sync_counts_the_slip(org, store):
    store.sync("sf", "salesforce", connector(org))
    start = load_deal_states(store.engine, at("2026-10-01", 0), "EUR", {})
    end = load_deal_states(store.engine, datetime.now(UTC), "EUR", {})
    q4 = period_containing(Grain.QUARTER, date(2026, 10, 1))
    result = waterfall(start, end, q4, Scope.company())
    assert (result.start, result.end) == (1_000_000, 300_000)  # X + Y; Z (cents)
    amounts = {step.movement: (step.amount, step.count) for step in result.steps if step.count}
    assert amounts == {
        Movement.CREATED: (300_000, 1),  # Z
        Movement.INCREASED: (200_000, 2),  # X and Y by 1,000 each
        Movement.PUSHED: (-500_000, 1),  # X, to January
        Movement.WON: (-700_000, 1),  # Y
    }


def test_a_second_sync_does_not_backfill_again(org, store):
    store.sync("sf", "salesforce", connector(org))
    written = store.rows("SELECT count(*) FROM opportunity_history")
    org.change(Z, "Amount", 3000, 3500, at("2026-11-26"))
    org.put("Opportunity", opportunity(
        Z, "2026-10-02", Amount=3500, SystemModstamp=sf_time(datetime.now(UTC))
    ))  # fmt: skip
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None and report.backfill is None
    assert history_queries(org) == 1
    # Only Z's new state: its current interval closed and one opened.
    assert store.rows("SELECT count(*) FROM opportunity_history") == [(written[0][0] + 1,)]
    full = store.sync("sf", "salesforce", connector(org), full=True)
    assert full.backfill is None and history_queries(org) == 1


def test_an_org_that_tracks_no_field_gets_no_guessed_history(org, store):
    org.records.pop("OpportunityFieldHistory")
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None and report.backfill is not None
    assert (report.backfill.deals, report.backfill.intervals, report.backfill.api_calls) == (
        0, 0, 1,
    )  # fmt: skip
    # No change recorded at all: "unchanged since created" would be a guess, so every deal's
    # history starts at this sync.
    assert store.rows("SELECT count(*), count(DISTINCT valid_from) FROM opportunity_history") == [
        (4 + FILLERS, 1)
    ]


def test_a_field_history_the_user_may_not_read_leaves_the_sync_as_it_is(org, store):
    org.hidden.add("OpportunityFieldHistory")
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None and report.backfill is not None
    assert report.backfill.error == (
        "Salesforce answered 400 INVALID_TYPE: sObject type 'OpportunityFieldHistory' is not "
        "supported. If you are attempting to use a custom object, be sure to append the '__c' "
        "after the entity name. Please reference your WSDL or the describe call for the "
        "appropriate names."
    )
    assert "history before the first sync NOT backfilled (1 API call)" in report.summary(ENGLISH)
    assert store.rows("SELECT count(*) FROM opportunities WHERE source = 'sf'") == [(4 + FILLERS,)]
    assert store.rows("SELECT count(*), count(DISTINCT valid_from) FROM opportunity_history") == [
        (4 + FILLERS, 1)
    ]
