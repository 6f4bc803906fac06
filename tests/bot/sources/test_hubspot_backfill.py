"""The first HubSpot sync backfills the pipeline history from the deals' property history
(``propertiesWithHistory`` on the deals list): the states a deal's values imply (hand-computed
below) stand at the moments before kpibot was installed, the read costs ⌈deals / 50⌉ calls,
later syncs do not read it again, and a refused read leaves the sync as it is. Deals of an
archived (deactivated) owner are synced for that owner."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.formatting import Formatter
from bot.settings import HubSpotSource
from bot.sources.hubspot import HISTORY_PAGE, HubSpotConnector
from bot.store.history import states_at
from tests.bot.sources.crm_support import Store, by_name, store_on
from tests.fakes.http_fake import Fault
from tests.fakes.hubspot_api import TOKEN, FakeHubSpot, hs_time

ENGLISH = Formatter("en_US", "EUR", UTC)
FRENCH = Formatter("fr_FR", "EUR", UTC)
STAGES = [  # id, label, isClosed, probability
    ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
    ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
    ("contractsent", "Contract Sent", "false", "0.8"),
    ("closedwon", "Closed Won", "true", "1.0"),
    ("closedlost", "Closed Lost", "true", "0.0"),
]
OWNERS = {"101": ("Ann", False), "102": ("Bob", False), "103": ("Carl", True)}  # name, archived
FILLERS = 60  # lost deals with an amount change each: the history takes two pages of 50
X, Y, Z, W, V = "7001", "7002", "7003", "7004", "7005"
DEALS = 5 + FILLERS


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def day(text: str) -> str:
    return f"{text}T00:00:00.000Z"  # how HubSpot writes a date property


@pytest.fixture
def hub() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as fake:
        fake.pipelines = [{
            "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
            "createdAt": hs_time(at("2025-01-06")), "updatedAt": hs_time(at("2025-01-06")),
            "stages": [
                {"id": sid, "label": label, "displayOrder": i, "archived": False,
                 "metadata": {"isClosed": closed, "probability": probability},
                 "createdAt": hs_time(at("2025-01-06")), "updatedAt": hs_time(at("2025-01-06")),
                 "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                for i, (sid, label, closed, probability) in enumerate(STAGES)
            ],
        }]  # fmt: skip
        fake.owners = [
            {"id": oid, "email": f"{name.lower()}@example.test", "firstName": name,
             "lastName": "Example", "type": "PERSON", "archived": archived,
             "userId": int(oid), "teams": [{"id": "1", "name": "Lyon", "primary": True}],
             "createdAt": hs_time(at("2025-01-06")),
             "updatedAt": hs_time(at("2026-10-31") if archived else at("2025-01-06"))}
            for oid, (name, archived) in OWNERS.items()
        ]  # fmt: skip
        fake.put("companies", {"name": "Acme", "country": "France"}, at("2025-01-06"))

        def deal(key: str, created: datetime, **properties: Any) -> None:
            base = {"dealname": f"Deal {key}", "hubspot_owner_id": "101",
                    "deal_currency_code": "EUR"}  # fmt: skip
            fake.put("deals", {**base, **properties}, created, object_id=key)

        # X: stage twice, amount once from empty, close date twice, owner once.
        deal(X, at("2026-09-01"), dealstage="appointmentscheduled", closedate=day("2026-10-31"),
             hs_deal_stage_probability="0.2")  # fmt: skip
        fake.put("deals", {"dealstage": "qualifiedtobuy", "hs_deal_stage_probability": "0.4",
                           "amount": "4000"}, at("2026-09-10", 10), X)  # fmt: skip
        fake.put("deals", {"closedate": day("2026-11-30")}, at("2026-10-05"), X)
        fake.put("deals", {"dealstage": "contractsent", "hs_deal_stage_probability": "0.8"},
                 at("2026-10-20", 14), X)  # fmt: skip
        fake.put("deals", {"closedate": day("2027-01-15"), "amount": "5000"}, at("2026-11-03"), X)
        fake.put("deals", {"hubspot_owner_id": "102"}, at("2026-11-10", 8), X)
        # Y: won on 20 November, for more than it was worth.
        deal(Y, at("2026-09-15"), dealstage="contractsent", amount="6000",
             closedate=day("2026-11-20"), hs_deal_stage_probability="0.8")  # fmt: skip
        fake.put("deals", {"dealstage": "closedwon", "hs_deal_stage_probability": "1.0",
                           "amount": "7000"}, at("2026-11-20"), Y)  # fmt: skip
        # Z: no change since it was created, owned by an owner since deactivated.
        deal(Z, at("2026-10-02"), dealstage="appointmentscheduled", amount="3000",
             closedate=day("2026-12-15"), hs_deal_stage_probability="0.2",
             hubspot_owner_id="103")  # fmt: skip
        # W: a stage no pipeline has any more before 15 October; lost, then its amount raised.
        deal(W, at("2026-08-01"), dealstage="sleeping", amount="100",
             closedate=day("2026-09-30"), hs_deal_stage_probability="0.1")  # fmt: skip
        fake.put("deals", {"dealstage": "closedlost", "hs_deal_stage_probability": "0.0"},
                 at("2026-10-15"), W)  # fmt: skip
        fake.put("deals", {"amount": "200"}, at("2026-11-01"), W)
        # V: no stage probability in its history: each stage's own probability stands for it.
        deal(V, at("2026-09-21"), dealstage="appointmentscheduled", amount="2000",
             closedate=day("2026-12-31"))  # fmt: skip
        fake.put("deals", {"dealstage": "contractsent"}, at("2026-10-20"), V)
        for number in range(FILLERS):
            key = str(8000 + number)
            deal(key, at("2026-06-01"), dealstage="closedlost", amount="1000",
                 closedate=day("2026-07-31"), hs_deal_stage_probability="0.0")  # fmt: skip
            fake.put("deals", {"amount": "1010"}, at("2026-07-02"), key)
        yield fake


def connector(hub: FakeHubSpot) -> HubSpotConnector:
    spec = HubSpotSource.model_validate(
        {"kind": "hubspot", "host": hub.url, "timeout": 2, "max_retries": 2}
    )
    return HubSpotConnector("hs", spec, {"token": TOKEN}, backoff=0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from store_on(request.param, tmp_path)


def history_reads(hub: FakeHubSpot) -> list[str | None]:
    """The ``limit`` of each deals list read that asked for property history."""
    return [r.param("limit") for r in hub.requests if "propertiesWithHistory" in r.query]


def states(store: Store, moment: datetime) -> dict[str, tuple[Any, ...]]:
    """Each deal (but the fillers) as it stood at ``moment``: status, stage, amount, close
    date, probability and owner's name."""
    with store.engine.connect() as connection:
        rows = connection.execute(states_at(moment)).mappings().all()
    reps = {rep_id: name for name, rep_id in store.rows("SELECT name, id FROM reps")}
    return {
        row["source_id"]: (
            row["status"], row["stage"], row["amount"], row["close_date"], row["probability"],
            reps.get(row["owner_id"]).split()[0],
        )
        for row in rows
        if not row["source_id"].startswith("80")
    }  # fmt: skip


def test_first_sync_rebuilds_the_states_the_property_history_implies(hub, store):
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is None
    assert by_name(report)["deals"].rejected == []
    backfill = report.backfill
    assert backfill is not None and backfill.error is None and backfill.cut is None
    assert backfill.api_calls == math.ceil(DEALS / HISTORY_PAGE) == 2
    assert history_reads(hub) == ["50", "50"]
    # X: 5 moments of change and its creation; Y: 1 and creation; Z: creation; W: the amount
    # change and the state after the stage it cannot read; V and fillers: 1 and creation each.
    assert (backfill.deals, backfill.intervals) == (DEALS, 6 + 2 + 1 + 2 + 2 + FILLERS * 2)
    assert [(r.deal, r.at, r.reason) for r in backfill.refused] == [
        (W, at("2026-10-15"), "unknown stage 'sleeping' (the stages mapping knows Appointment "
         "Scheduled, Qualified To Buy, Contract Sent, Closed Won, Closed Lost)")
    ]  # fmt: skip
    summary = report.summary(ENGLISH)
    assert (
        "history before the first sync backfilled from the CRM's field history: 133 earlier "
        "states of 65 deals; 2 API calls" in summary
    )
    assert (
        f"deal {W} not rebuilt before its 2026-10-15 09:00 UTC change: unknown stage "
        "'sleeping'" in summary
    )
    assert (
        "historique d'avant la première synchro reconstitué depuis l'historique des champs "
        "du CRM\u00a0: 133 états antérieurs de 65 affaires\u00a0; 2 appels API"
        in report.summary(FRENCH)
    )

    d = date.fromisoformat
    assert states(store, at("2026-08-20")) == {}  # W's rebuild stops at the stage it lacks
    assert states(store, at("2026-09-05")) == {
        X: ("open", "Appointment Scheduled", None, d("2026-10-31"), 0.2, "Ann"),
    }
    assert states(store, at("2026-09-20")) == {
        X: ("open", "Qualified To Buy", Decimal("4000.00"), d("2026-10-31"), 0.4, "Ann"),
        Y: ("open", "Contract Sent", Decimal("6000.00"), d("2026-11-20"), 0.8, "Ann"),
    }
    assert states(store, at("2026-10-10"))[X] == (
        "open", "Qualified To Buy", Decimal("4000.00"), d("2026-11-30"), 0.4, "Ann",
    )  # fmt: skip
    assert states(store, at("2026-10-10"))[V] == (
        "open", "Appointment Scheduled", Decimal("2000.00"), d("2026-12-31"), 0.2, "Ann",
    )  # fmt: skip
    assert states(store, at("2026-10-25")) == {
        X: ("open", "Contract Sent", Decimal("4000.00"), d("2026-11-30"), 0.8, "Ann"),
        Y: ("open", "Contract Sent", Decimal("6000.00"), d("2026-11-20"), 0.8, "Ann"),
        Z: ("open", "Appointment Scheduled", Decimal("3000.00"), d("2026-12-15"), 0.2, "Carl"),
        W: ("lost", "Closed Lost", Decimal("100.00"), d("2026-09-30"), 0.0, "Ann"),
        V: ("open", "Contract Sent", Decimal("2000.00"), d("2026-12-31"), 0.8, "Ann"),
    }
    assert states(store, at("2026-11-05"))[X] == (
        "open", "Contract Sent", Decimal("5000.00"), d("2027-01-15"), 0.8, "Ann",
    )  # fmt: skip
    assert states(store, at("2026-11-25")) == {
        X: ("open", "Contract Sent", Decimal("5000.00"), d("2027-01-15"), 0.8, "Bob"),
        Y: ("won", "Closed Won", Decimal("7000.00"), d("2026-11-20"), 1.0, "Ann"),
        Z: ("open", "Appointment Scheduled", Decimal("3000.00"), d("2026-12-15"), 0.2, "Carl"),
        W: ("lost", "Closed Lost", Decimal("200.00"), d("2026-09-30"), 0.0, "Ann"),
        V: ("open", "Contract Sent", Decimal("2000.00"), d("2026-12-31"), 0.8, "Ann"),
    }


def test_a_second_sync_does_not_read_the_history_again(hub, store):
    store.sync("hs", "hubspot", connector(hub))
    written = store.rows("SELECT count(*) FROM opportunity_history")[0][0]
    hub.put("deals", {"amount": "3500"}, datetime.now(UTC), Z)
    again = store.sync("hs", "hubspot", connector(hub))
    assert again.error is None and again.backfill is None
    assert history_reads(hub) == ["50", "50"]
    # Only Z's new state: its current interval closed and one opened.
    assert store.rows("SELECT count(*) FROM opportunity_history") == [(written + 1,)]
    full = store.sync("hs", "hubspot", connector(hub), full=True)
    assert full.backfill is None and history_reads(hub) == ["50", "50"]


def test_a_refused_history_read_leaves_the_sync_as_it_is(hub, store):
    refused = {
        "status": "error",
        "category": "MISSING_SCOPES",
        "message": "This app hasn't been granted all required scopes to make this call.",
    }
    hub.fail(Fault(403, refused, path="/crm/v3/objects/deals"))  # fmt: skip
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is None and report.backfill is not None
    assert report.backfill.error is not None
    assert report.backfill.error.startswith(
        "HubSpot refused access (MISSING_SCOPES: This app hasn't been granted all required "
        "scopes to make this call.)"
    )
    assert report.backfill.api_calls == 1 and report.backfill.intervals == 0
    assert "history before the first sync NOT backfilled (1 API call): HubSpot refused" in (
        report.summary(ENGLISH)
    )
    assert store.rows("SELECT count(*) FROM opportunities WHERE source = 'hs'") == [(DEALS,)]
    assert store.rows("SELECT count(*), count(DISTINCT valid_from) FROM opportunity_history") == [
        (DEALS, 1)
    ]


def test_deals_of_an_archived_owner_are_synced_for_that_owner(hub, store):
    report = store.sync("hs", "hubspot", connector(hub))
    owners = by_name(report)["owners"]
    assert (owners.fetched, owners.inserted, owners.api_calls) == (3, 3, 2)
    owner_reads = [r for r in hub.requests if r.path.startswith("/crm/v3/owners")]
    assert [str(r.param("archived")).lower() for r in owner_reads] == [
        "false", "true",
    ]  # fmt: skip
    reps = store.rows("SELECT name, active_to FROM reps WHERE source = 'hs' ORDER BY name")
    assert [(name, None if left is None else str(left)) for name, left in reps] == [
        ("Ann Example", None), ("Bob Example", None), ("Carl Example", "2026-10-31"),
    ]  # fmt: skip
    assert store.owners("hs")[Z] == "Carl Example (hs)"
