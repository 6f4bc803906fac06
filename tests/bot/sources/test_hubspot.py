"""HubSpot through hubspot-api-client against a fake account (tests/fakes/hubspot_api.py): a full
sync, an incremental one after changes and archived deals costing ⌈k / page⌉ + a constant number
of calls (also across the search API's result cap; the archived deals read once a day, the
cadence, and at every full sync), a KPI answer on the synced deals checked
against the fake's records, and 429s, 5xx, timeouts and an expired token retried or reported
without a traceback, leaving unfinished objects as they were."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.formatting import Formatter
from bot.settings import HubSpotSource
from bot.sources.connector import SourceError
from bot.sources.hubspot import HISTORY_PAGE, HubSpotConnector
from tests.bot.sources.crm_support import Store, by_name, make_store
from tests.fakes.http_fake import Fault
from tests.fakes.hubspot_api import TOKEN, FakeHubSpot, hs_time

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ENGLISH = Formatter("en_US", "EUR", UTC)  # the words the assertions read
PAGE = 100
CAP = 250  # the fake's search cap, scaled down from HubSpot's 10,000
N_DEALS = 260
OWNERS = ["101", "102", "103"]
STAGES = [  # id, label, isClosed, probability
    ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
    ("contractsent", "Contract Sent", "false", "0.8"),
    ("closedwon", "Closed Won", "true", "1.0"),
    ("closedlost", "Closed Lost", "true", "0.0"),
]
# pipelines, owners (active, then archived), companies and contacts: one call each
CONSTANT = 5
ARCHIVE = 1  # the list of archived deals, read once per deletions_every (one page here)


def deal_properties(number: int, **changes: Any) -> dict[str, Any]:
    props = {
        "dealname": f"Deal {number}",
        "hubspot_owner_id": OWNERS[number % 3],
        "dealstage": STAGES[number % 4][0],
        "amount": f"{1000 + number * 10}.50",
        "deal_currency_code": "EUR",
        "createdate": hs_time(datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=number)),
        "closedate": hs_time(datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=number % 60)),
        "hs_deal_stage_probability": STAGES[number % 4][3],
        "hs_manual_forecast_category": None,
    }
    props.update(changes)
    return props


@pytest.fixture
def hub() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(search_cap=CAP) as fake:
        fake.pipelines = [{
            "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
            "createdAt": hs_time(T0), "updatedAt": hs_time(T0),
            "stages": [
                {"id": sid, "label": label, "displayOrder": i, "archived": False,
                 "metadata": {"isClosed": closed, "probability": probability},
                 "createdAt": hs_time(T0), "updatedAt": hs_time(T0),
                 "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                for i, (sid, label, closed, probability) in enumerate(STAGES)
            ],
        }]  # fmt: skip
        fake.owners = [
            {"id": oid, "email": f"owner{oid}@example.test", "firstName": "Owner",
             "lastName": oid, "type": "PERSON", "archived": False, "userId": int(oid),
             "teams": [{"id": "1", "name": "Lyon", "primary": True}] if oid != "103" else [],
             "createdAt": hs_time(T0), "updatedAt": hs_time(T0)}
            for oid in OWNERS
        ]  # fmt: skip
        for c in range(4):
            fake.put("companies", {"name": f"Company {c}", "industry": "RETAIL",
                                   "country": "France", "type": "CUSTOMER"}, T0)  # fmt: skip
        for number in range(N_DEALS):
            fake.put("deals", deal_properties(number), T0 + timedelta(minutes=number),
                     object_id=str(5000 + number))  # fmt: skip
        fake.put("deals", deal_properties(900, dealstage="qualifiedtobuy"), T0, "5900")
        fake.put("deals", deal_properties(901, hubspot_owner_id="999"), T0, "5901")
        fake.put("deals", deal_properties(902, dealstage="closedwon", amount=None), T0, "5902")
        for n in range(20):
            customer = n % 4 == 0
            fake.put("contacts", {
                "hubspot_owner_id": OWNERS[n % 3], "hs_analytics_source": "ORGANIC_SEARCH",
                "associatedcompanyid": None, "lifecyclestage": "customer" if customer else "lead",
                "hs_lifecyclestage_customer_date": "2026-11-10T09:00:00.000Z" if customer else None,
                "createdate": hs_time(T0 - timedelta(days=n)),
            }, T0)  # fmt: skip
        yield fake


def connector(hub: FakeHubSpot, **settings: Any) -> HubSpotConnector:
    spec = HubSpotSource.model_validate(
        {"kind": "hubspot", "host": hub.url, "page_size": PAGE, "timeout": 2,
         "max_retries": 2, **settings}
    )  # fmt: skip
    return HubSpotConnector("hs", spec, {"token": TOKEN}, backoff=0, search_cap=CAP)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path)


def won_revenue(hub: FakeHubSpot, start: date, end: date) -> Decimal:
    """From the fake's records: won deals with an amount and a known owner, closed in range."""
    total = Decimal(0)
    for deal in hub.objects["deals"].values():
        props = deal["properties"]
        closed = props["closedate"][:10]
        if (
            not deal["archived"] and props["dealstage"] == "closedwon"
            and props["amount"] is not None and props["hubspot_owner_id"] in OWNERS
            and start.isoformat() <= closed <= end.isoformat()
        ):  # fmt: skip
            total += Decimal(props["amount"])
    return total


def test_full_then_incremental_sync_with_call_counts_and_a_kpi(hub, store):
    full = store.sync("hs", "hubspot", connector(hub), now=T0 + timedelta(hours=1))
    assert full.error is None, full.error
    objects = by_name(full)
    assert [o.name for o in full.objects] == ["owners", "companies", "deals", "contacts"]
    deals = objects["deals"]
    assert (deals.fetched, deals.inserted) == (N_DEALS + 3, N_DEALS)
    assert {r.record: r.reason for r in deals.rejected} == {
        "5900": "stage: unknown stage 'qualifiedtobuy' (the stages mapping knows Appointment "
        "Scheduled, Contract Sent, Closed Won, Closed Lost)",
        "5901": "unknown owner '999' (no rep with that id or name)",
        "5902": "Closed Won deal without an amount (amount is empty)",
    }
    # Past the cap the search started again after the last id: no call more than the pages;
    # the first sync also reads the deals' property history, 50 deals a page.
    history = math.ceil((N_DEALS + 3) / HISTORY_PAGE)
    assert len(hub.requests) == CONSTANT + math.ceil((N_DEALS + 3) / PAGE) + history
    assert [r.json().get("after") for r in hub.searches if "deals" in r.path] == [None, "100", None]
    assert store.rows("SELECT amount, currency, probability FROM opportunities "
                      "WHERE source_id = '5001'") == [(1010.5, "EUR", 0.8)]  # fmt: skip
    assert store.rows("SELECT r.name, t.name FROM reps r LEFT JOIN teams t ON t.id = r.team_id "
                      "ORDER BY r.name") == [("Owner 101", "Lyon"), ("Owner 102", "Lyon"),
                                             ("Owner 103", None)]  # fmt: skip
    assert store.rows("SELECT count(*) FROM leads WHERE converted_at = '2026-11-10'") == [(5,)]
    assert full.budget is not None and full.budget.limit == 250_000

    # Nothing changed: only the constant (and one page of deals: the last one, at the mark).
    # The full sync checked the deletions; within the day the archive is not read.
    calls = len(hub.requests)
    again = store.sync("hs", "hubspot", connector(hub), now=T0 + timedelta(hours=2))
    assert len(hub.requests) - calls == CONSTANT + 1 and again.changed == 0
    assert archive_reads(hub, calls) == 0

    # 150 deals change, 2 are archived; an incremental sync reads those.
    later = T0 + timedelta(days=2)
    for number in range(0, 150):
        hub.put("deals", deal_properties(number, dealstage="closedwon",
                                         closedate="2026-11-20T00:00:00Z"),
                later + timedelta(seconds=number), object_id=str(5000 + number))  # fmt: skip
    for number in (200, 201):
        hub.archive("deals", str(5000 + number), later)
    calls = len(hub.requests)
    incremental = store.sync("hs", "hubspot", connector(hub), now=later + timedelta(hours=1))
    assert incremental.error is None
    deals = by_name(incremental)["deals"]
    # Unchanged: deals already won with that close date (day 50 of their cycle).
    changed = sum(1 for n in range(150) if not (n % 4 == 2 and n % 60 == 50))
    fetched = 150 + 1  # and the deal at the previous mark, read again
    assert (deals.fetched, deals.updated, deals.deleted) == (fetched, changed, 2)
    assert len(hub.requests) - calls == CONSTANT + ARCHIVE + math.ceil(fetched / PAGE)

    answer = store.service().ask("revenue 2026-11", datetime(2026, 11, 30, 12, tzinfo=UTC))
    expected = won_revenue(hub, date(2026, 11, 1), date(2026, 11, 30))
    assert expected > 0 and answer.value.value == expected


def archive_reads(hub: FakeHubSpot, since: int) -> int:
    """Requests for the list of archived deals among the fake's requests from ``since``."""
    return sum(
        1
        for r in hub.requests[since:]
        if r.path == "/crm/v3/objects/deals" and (r.param("archived") or "").lower() == "true"
    )


def deleted_at(store: Store, deal: str) -> list[tuple[Any, ...]]:
    query = "SELECT deleted_at IS NOT NULL FROM opportunities WHERE source_id = :deal"
    return store.rows(query, deal=deal)


def test_archived_deals_are_read_once_per_deletions_every_and_at_every_full_sync(hub, store):
    """A deal archived in HubSpot leaves the figures at the first check after it, at most
    ``deletions_every`` later; in between, an unchanged re-run costs only the constant."""
    sync = functools.partial(store.sync, "hs", "hubspot")
    first = sync(connector(hub, deletions_every="6h"), now=T0 + timedelta(hours=5))
    assert by_name(first)["deals"].inserted == N_DEALS
    hub.archive("deals", "5010", T0 + timedelta(hours=5, minutes=30))

    calls = len(hub.requests)
    within = sync(connector(hub, deletions_every="6h"), now=T0 + timedelta(hours=10, minutes=59))
    # The constant and the page of deals at the mark; no read of the archive.
    assert len(hub.requests) - calls == CONSTANT + 1 and archive_reads(hub, calls) == 0
    assert by_name(within)["deals"].deleted == 0 and deleted_at(store, "5010") == [(False,)]
    assert (
        "deletions not checked (last checked at 2026-11-02 13:00:00Z; "
        "next check after 2026-11-02 19:00:00Z)"
    ) in within.summary(ENGLISH)

    calls = len(hub.requests)
    after = sync(connector(hub, deletions_every="6h"), now=T0 + timedelta(hours=11))
    assert len(hub.requests) - calls == CONSTANT + ARCHIVE + 1 and archive_reads(hub, calls) == 1
    assert by_name(after)["deals"].deleted == 1 and deleted_at(store, "5010") == [(True,)]
    assert "deletions checked at 2026-11-02 19:00:00Z" in after.summary(ENGLISH)

    # --full checks the deletions whatever the cadence (by the deals its read no longer names).
    hub.archive("deals", "5011", T0 + timedelta(hours=11, minutes=30))
    full = sync(connector(hub, deletions_every="6h"), full=True, now=T0 + timedelta(hours=12))
    assert by_name(full)["deals"].deleted == 1 and deleted_at(store, "5011") == [(True,)]
    assert "deletions checked at 2026-11-02 20:00:00Z" in full.summary(ENGLISH)
    # …and it counts as the check: the next incremental sync within 6 hours skips the archive.
    calls = len(hub.requests)
    sync(connector(hub, deletions_every="6h"), now=T0 + timedelta(hours=17, minutes=59))
    assert archive_reads(hub, calls) == 0


def test_429s_and_5xx_are_retried(hub, store):
    limited = Fault(429, {"status": "error", "message": "You have reached your secondly limit.",
                          "errorType": "RATE_LIMIT", "policyName": "SECONDLY"},
                    path="/crm/v3/objects/deals/search")  # fmt: skip
    hub.fail(limited, Fault(502, {"status": "error", "message": "Bad gateway"}))
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is None
    assert by_name(report)["deals"].inserted == N_DEALS


def test_a_failure_in_deals_keeps_them_and_their_mark(hub, store):
    assert store.sync("hs", "hubspot", connector(hub)).error is None
    marks = store.marks("hs")
    hub.put("companies", {"name": "Renamed"}, T0 + timedelta(days=3), object_id="1001")
    hub.put("deals", deal_properties(5, amount="1"), T0 + timedelta(days=3), object_id="5005")
    down = Fault(503, {"status": "error", "message": "Service unavailable"},
                 path="/crm/v3/objects/deals/search")  # fmt: skip
    hub.fail(down, down, down)
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is not None and "HubSpot answered 503" in str(report.error)
    assert {o.name: o.finished for o in report.objects} == {
        "owners": True,
        "companies": True,
        "deals": False,
    }
    assert store.rows("SELECT name FROM accounts WHERE source_id = '1001'") == [("Renamed",)]
    assert store.rows("SELECT amount FROM opportunities WHERE source_id = '5005'") == [(1050.5,)]
    after = store.marks("hs")
    assert after["deals"] == marks["deals"] and after["companies"] != marks["companies"]


def test_an_expired_token_a_missing_one_and_a_timeout_are_reported(hub, store):
    with pytest.raises(SourceError) as missing:
        HubSpotConnector("hs", HubSpotSource(kind="hubspot"), {})
    assert "HUBSPOT_TOKEN" in str(missing.value)
    hub.expired = True
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is not None
    assert "EXPIRED_AUTHENTICATION" in str(report.error) and "renew HUBSPOT_TOKEN" in str(
        report.error
    )
    hub.expired = False
    hub.fail(*[Fault(200, {}, delay=1.0)] * 2)
    report = store.sync("hs", "hubspot", connector(hub, timeout=0.3, max_retries=1))
    assert report.error is not None and "did not answer" in str(report.error)
    assert store.rows("SELECT count(*) FROM opportunities") == [(0,)]


def test_kpibot_sync_and_status_from_the_config(hub, tmp_path):
    """The command line builds the connector from the config and the environment."""
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {currency: EUR, timezone: Europe/Paris}\n"
        'database: {url: "sqlite:///kpibot.db"}\n'
        f"sources: {{hs: {{kind: hubspot, host: '{hub.url}', page_size: {PAGE}}}}}\n"
        "scheduling: {sync_source: hs}\n",
        encoding="utf-8",
    )
    env = {"HUBSPOT_TOKEN": TOKEN}
    result = CliRunner().invoke(main, ["--config", str(config), "sync"], env=env)
    assert result.exit_code == 0, result.output
    assert "hs (hubspot, full sync):" in result.stdout
    assert f"deals → opportunities: fetched {N_DEALS + 3}, inserted {N_DEALS}" in result.stdout
    assert "rejected deals 5901: unknown owner '999'" in result.stdout
    status = CliRunner().invoke(main, ["--config", str(config), "status"], env=env).stdout
    assert "Source hs:" in status and "API budget: " in status and "of 250000 used" in status
    # When the deals' deletions were last checked (this sync, the first), not an object.
    assert re.search(
        r"^  deals {14}deletions last checked \d{4}-\d\d-\d\d \d\d:\d\d ", status, re.M
    )
    assert "deals:deleted" not in status

    refused = CliRunner().invoke(
        main, ["--config", str(config), "sync", "hs"], env={"HUBSPOT_TOKEN": "pat-wrong"}
    )
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "INVALID_AUTHENTICATION" in refused.stdout
    status = CliRunner().invoke(main, ["--config", str(config), "status"], env=env).stdout
    assert "last error ((source)" in status and "renew HUBSPOT_TOKEN" in status


def test_a_french_organisation_reads_why_its_sync_stopped_in_french(hub, tmp_path):
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {locale: fr_FR, currency: EUR, timezone: Europe/Paris}\n"
        'database: {url: "sqlite:///kpibot.db"}\n'
        f"sources: {{hs: {{kind: hubspot, host: '{hub.url}', page_size: {PAGE}}}}}\n",
        encoding="utf-8",
    )
    missing = CliRunner().invoke(main, ["--config", str(config), "sync", "hs"], env={})
    refused = CliRunner().invoke(
        main, ["--config", str(config), "sync", "hs"], env={"HUBSPOT_TOKEN": "pat-wrong"}
    )

    assert (missing.exit_code, missing.stdout.splitlines()[-1]) == (
        1,
        "  ÉCHEC\u00a0: source hs\u00a0: mettez dans HUBSPOT_TOKEN le jeton d'accès d'une "
        "application privée\u00a0; 0 ligne modifiée par les objets terminés",
    )
    # The CRM's own words stay as it said them.
    assert (refused.exit_code, refused.stdout.splitlines()[-1]) == (
        1,
        "  ÉCHEC\u00a0: HubSpot a refusé le jeton (INVALID_AUTHENTICATION\u00a0: Authentication "
        "credentials not found.)\u00a0; renouvelez HUBSPOT_TOKEN (le jeton d'accès d'une "
        "application privée avec les portées crm.objects.*.read et crm.objects.owners.read)"
        "\u00a0; 0 ligne modifiée\u00a0; 1 appel API en tout par les objets terminés",
    )
    # kpibot status keeps the reason in the same words.
    status = CliRunner().invoke(main, ["--config", str(config), "status"]).stdout
    assert re.search(
        r"^  dernière erreur \(\(source\), [^)]*\)\u00a0: HubSpot a refusé le jeton \(",
        status,
        re.M,
    )


def test_the_scheduled_sync_job_pulls_the_configured_source(hub, tmp_path):
    """``scheduling.sync_source`` names a CRM: the scheduler's sync job (the one /kpi sync runs)
    pulls it, records the run, and a second run only reads what changed."""
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {currency: EUR, timezone: Europe/Paris}\n"
        'database: {url: "sqlite:///kpibot.db"}\n'
        f"sources: {{hs: {{kind: hubspot, host: '{hub.url}', page_size: {PAGE}}}}}\n"
        "scheduling: {sync_source: hs, sync_cron: '0 * * * *', evaluation_cron: '0 0 1 1 *'}\n",
        encoding="utf-8",
    )
    env = {"HUBSPOT_TOKEN": TOKEN}
    first = CliRunner().invoke(
        main, ["--config", str(config), "run-due", "--at", "2026-12-01T10:00:00+01:00"], env=env
    )
    assert first.exit_code == 0, first.output
    assert f"sync hs: {3 + 4 + N_DEALS + 20} rows changed" in first.stdout
    second = CliRunner().invoke(
        main, ["--config", str(config), "run-due", "--at", "2026-12-01T11:00:00+01:00"], env=env
    )
    assert "sync hs: 0 rows changed" in second.stdout
    status = CliRunner().invoke(main, ["--config", str(config), "status"], env=env).stdout
    assert "Last sync:" in status and "hs: succeeded, 0 rows changed" in status


def test_owners_are_matched_to_reps_of_other_sources_by_email_then_by_name(hub, store, tmp_path):
    store.hr_reps(tmp_path, [
        ("Claire Petit", "OWNER101@Example.test", "Paris"),
        ("owner 102", "o.102@corp.test", "Lyon"),  # HubSpot's "Owner 102", by name
    ])  # fmt: skip
    report = store.sync("hs", "hubspot", connector(hub))
    assert report.error is None
    owners = by_name(report)["owners"]
    assert (owners.fetched, owners.matched, owners.inserted) == (3, 2, 1)
    assert store.rows("SELECT source_id FROM reps WHERE source = 'hs'") == [("103",)]
    deals = store.owners("hs")
    assert (deals["5000"], deals["5001"], deals["5002"]) == (
        "Claire Petit (hr)", "owner 102 (hr)", "Owner 103 (hs)",
    )  # fmt: skip
    rejected = {r.record: r.reason for r in by_name(report)["deals"].rejected}
    assert rejected["5901"] == "unknown owner '999' (no rep with that id or name)"
    # Next time the owners are read again and matched again: a changed deal stays Claire's.
    hub.put("deals", deal_properties(3, hubspot_owner_id="101"), T0 + timedelta(days=1), "5003")
    again = store.sync("hs", "hubspot", connector(hub))
    assert again.error is None and by_name(again)["owners"].matched == 2
    assert store.owners("hs")["5003"] == "Claire Petit (hr)"


def test_progress_hears_the_search_total(hub, store):
    heard: list[tuple[str, int, int | None, bool]] = []
    report = store.sync(
        "hs", "hubspot", connector(hub), progress=lambda *update: heard.append(update)
    )
    assert report.error is None
    # Over the search cap the read takes two queries; the total is the first one's: every deal.
    assert ("deals", N_DEALS + 3, N_DEALS + 3, True) in heard
    assert ("owners", 3, None, True) in heard  # a plain list: no total
