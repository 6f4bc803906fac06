"""Pipedrive over httpx against a fake company (tests/fakes/pipedrive_api.py): a full sync, an
incremental one after changes and deletions costing ⌈k / page⌉ + a constant number of calls, a
KPI answer on the synced deals checked against the fake's records, and 429s, 5xx, timeouts and
a refused token retried or reported without a traceback, leaving unfinished objects as they
were."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.formatting import Formatter
from bot.settings import PipedriveSource
from bot.sources.connector import SourceError
from bot.sources.pipedrive import PipedriveConnector
from tests.bot.sources.crm_support import Store, by_name, make_store
from tests.fakes.http_fake import Fault
from tests.fakes.pipedrive_api import TOKEN, FakePipedrive, pd_time, v1_time

ENGLISH = Formatter("en_US", "EUR", UTC)  # the words the assertions read

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
PAGE = 500
N_DEALS = 1100
USERS = [11, 12, 13]
CONSTANT = 4  # stages, users, organizations, leads (a page each); deletions cost nothing


def deal(number: int, **changes: Any) -> dict[str, Any]:
    status = ("open", "won", "lost")[number % 3]
    record = {
        "id": number, "title": f"Deal {number}", "owner_id": USERS[number % 3],
        "org_id": 100 + number % 3, "stage_id": 1 + number % 3, "pipeline_id": 1,
        "value": 1000 + number * 5 if number % 7 else None, "currency": "EUR",
        "add_time": pd_time(datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=number)),
        "update_time": pd_time(T0 + timedelta(seconds=number)), "status": status,
        "probability": None, "is_deleted": False,
        "won_time": pd_time(datetime(2026, 11, 1 + number % 28, 10, tzinfo=UTC))
        if status == "won" else None,
        "lost_time": pd_time(datetime(2026, 10, 15, 10, tzinfo=UTC)) if status == "lost" else None,
        "close_time": None,
        "expected_close_date": "2026-12-15" if status == "open" else None,
    }  # fmt: skip
    record.update(changes)
    if record["status"] == "won" and record["value"] is None and "value" not in changes:
        record["value"] = 500  # won deals carry a value, except the one made bad on purpose
    return record


@pytest.fixture
def company() -> Iterator[FakePipedrive]:
    with FakePipedrive() as fake:
        fake.users = [
            {"id": uid, "name": f"User {uid}", "email": f"u{uid}@example.test",
             "active_flag": True, "created": "2025-01-06 09:00:00", "modified": v1_time(T0)}
            for uid in USERS
        ]  # fmt: skip
        fake.stages = [
            {"id": sid, "name": name, "pipeline_id": 1, "deal_probability": probability,
             "order_nr": sid, "is_deleted": False, "add_time": pd_time(T0),
             "update_time": pd_time(T0)}
            for sid, name, probability in ((1, "Qualified", 20), (2, "Proposal", 60),
                                           (3, "Negotiation", 80))
        ]  # fmt: skip
        fake.organizations = {
            oid: {"id": oid, "name": f"Org {oid}", "owner_id": 11, "add_time": pd_time(T0),
                  "update_time": pd_time(T0), "is_deleted": False}
            for oid in (100, 101, 102)
        }  # fmt: skip
        fake.deals = {n: deal(n) for n in range(N_DEALS)}
        fake.deals[5000] = deal(5000, status="won", value=None, won_time=pd_time(T0))
        fake.deals[5001] = deal(5001, owner_id=999)
        fake.deals[5002] = deal(5002, status="open", stage_id=99)
        fake.leads = {
            f"lead-{n:03d}": {"id": f"lead-{n:03d}", "title": f"Lead {n}", "owner_id": USERS[n % 3],
                              "organization_id": None, "source_name": "Web forms",
                              "add_time": pd_time(T0 - timedelta(days=n)),
                              "update_time": pd_time(T0 + timedelta(seconds=n)),
                              "is_archived": False}
            for n in range(30)
        }  # fmt: skip
        yield fake


def connector(company: FakePipedrive, token: str = TOKEN, **settings: Any) -> PipedriveConnector:
    spec = PipedriveSource.model_validate(
        {"kind": "pipedrive", "base_url": f"{company.url}/api", "page_size": PAGE,
         "timeout": 2, "max_retries": 2, **settings}
    )  # fmt: skip
    return PipedriveConnector("pd", spec, {"api_token": token}, backoff=0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path)


def won_revenue(company: FakePipedrive, start: date, end: date) -> Decimal:
    total = Decimal(0)
    for record in company.deals.values():
        if (
            record["status"] == "won" and record["value"] is not None
            and record["owner_id"] in USERS
            and start.isoformat() <= record["won_time"][:10] <= end.isoformat()
        ):  # fmt: skip
            total += Decimal(str(record["value"]))
    return total


def test_full_then_incremental_sync_with_call_counts_and_a_kpi(company, store):
    full = store.sync("pd", "pipedrive", connector(company))
    assert full.error is None, full.error
    deals = by_name(full)["deals"]
    assert (deals.fetched, deals.inserted) == (N_DEALS + 3, N_DEALS)
    assert {r.record: r.reason for r in deals.rejected} == {
        "5000": "won deal without an amount (amount is empty)",
        "5001": "unknown owner '999' (no rep with that id or name)",
        "5002": "stage: unknown stage '99' (the stages mapping knows Qualified, Proposal, "
        "Negotiation, won, lost)",
    }
    # The first sync also reads the changelog of each deal updated since its creation.
    updated = [key for key, d in company.deals.items() if d["update_time"] > d["add_time"]]
    assert len(updated) == N_DEALS and len(company.changelog_reads) == len(updated)
    assert len(company.requests) == CONSTANT + math.ceil((N_DEALS + 3) / PAGE) + N_DEALS
    assert store.rows(
        "SELECT stage, is_won, is_closed, close_date, probability, amount FROM opportunities "
        "WHERE source_id IN ('1', '3', '7') ORDER BY source_id"
    ) == [
        ("won", 1, 1, "2026-11-02", 0.6, 1005),
        ("Qualified", 0, 0, "2026-12-15", 0.2, 1015),
        ("won", 1, 1, "2026-11-08", 0.6, 500),
    ]
    assert by_name(full)["leads"].inserted == 30

    calls = len(company.requests)
    again = store.sync("pd", "pipedrive", connector(company))
    assert len(company.requests) - calls == CONSTANT + 1 and again.changed == 0

    # 520 deals change, 3 are deleted; the incremental sync reads those pages only.
    later = T0 + timedelta(days=2)
    for n in range(520):
        company.deals[n] = deal(n, status="won", value=2000, won_time=pd_time(later),
                                update_time=pd_time(later + timedelta(seconds=n)))  # fmt: skip
    for n in (600, 601, 602):
        company.deals[n] = deal(n, status="deleted", is_deleted=True,
                                update_time=pd_time(later))  # fmt: skip
    calls = len(company.requests)
    incremental = store.sync("pd", "pipedrive", connector(company))
    assert incremental.error is None
    deals = by_name(incremental)["deals"]
    fetched = 520 + 1  # and the deal at the previous mark
    assert (deals.fetched, deals.updated, deals.deleted) == (fetched, 520, 3)
    assert len(company.requests) - calls == CONSTANT + math.ceil((fetched + 3) / PAGE)

    answer = store.service().ask("revenue 2026-11", datetime(2026, 11, 30, 12, tzinfo=UTC))
    expected = won_revenue(company, date(2026, 11, 1), date(2026, 11, 30))
    assert expected > 0 and answer.value.value == expected


def test_429_and_5xx_are_retried(company, store):
    company.fail(
        Fault(429, {"success": False, "error": "Too many requests"}, {"Retry-After": "0"},
              path="/api/v2/deals"),
        Fault(502, {"success": False, "error": "Bad gateway"}, path="/api/v2/deals"),
    )  # fmt: skip
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is None
    assert by_name(report)["deals"].inserted == N_DEALS


def test_a_failure_in_deals_keeps_them_and_their_mark(company, store):
    assert store.sync("pd", "pipedrive", connector(company)).error is None
    marks = store.marks("pd")
    company.organizations[100] = {**company.organizations[100], "name": "Renamed",
                                  "update_time": pd_time(T0 + timedelta(days=3))}  # fmt: skip
    company.deals[4] = deal(4, value=1, update_time=pd_time(T0 + timedelta(days=3)))
    down = Fault(503, {"success": False, "error": "Service unavailable"}, path="/api/v2/deals")
    company.fail(down, down, down)
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is not None and "Pipedrive answered 503" in str(report.error)
    assert {o.name: o.finished for o in report.objects} == {
        "users": True,
        "organizations": True,
        "deals": False,
    }
    assert store.rows("SELECT name FROM accounts WHERE source_id = '100'") == [("Renamed",)]
    assert store.rows("SELECT amount FROM opportunities WHERE source_id = '4'") == [(1020,)]
    after = store.marks("pd")
    assert after["deals"] == marks["deals"] and after["organizations"] != marks["organizations"]


def test_a_refused_token_a_missing_one_and_a_timeout_are_reported(company, store):
    with pytest.raises(SourceError) as missing:
        PipedriveConnector("pd", PipedriveSource(kind="pipedrive"), {})
    assert "PIPEDRIVE_API_TOKEN" in str(missing.value)
    report = store.sync("pd", "pipedrive", connector(company, token="revoked"))
    assert report.error is not None
    assert "unauthorized access" in str(report.error) and "renew PIPEDRIVE_API_TOKEN" in str(
        report.error
    )
    company.fail(*[Fault(200, {}, delay=1.0)] * 2)
    report = store.sync("pd", "pipedrive", connector(company, timeout=0.3, max_retries=1))
    assert report.error is not None and "did not answer" in str(report.error)
    assert store.rows("SELECT count(*) FROM opportunities") == [(0,)]


def test_the_daily_token_budget_is_reported_and_a_spent_one_stops_without_retries(company, store):
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.budget is not None
    assert (report.budget.used, report.budget.limit) == (company.tokens_used, 90_000)
    assert f"API budget: {company.tokens_used} of 90000 API tokens today used" in report.summary(
        ENGLISH
    )
    assert store.rows(
        "SELECT DISTINCT api_used, api_limit FROM sync_state WHERE source = 'pd'"
    ) == [(company.tokens_used, 90_000)]

    # Enough tokens left for the stages, users and organizations: the deals hit the wall.
    company.token_limit = company.tokens_used + 3 * company.token_cost
    calls = len(company.requests)
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is not None
    assert str(report.error).startswith("Pipedrive's daily API token budget is spent")
    assert "renews at midnight" in str(report.error)
    # One refused request, not retried: waiting for the burst window would not help.
    assert len(company.requests) - calls == 4
    assert {o.name: o.finished for o in report.objects} == {
        "users": True, "organizations": True, "deals": False,
    }  # fmt: skip


def test_users_are_matched_to_reps_of_other_sources_by_email_then_by_name(company, store, tmp_path):
    company.users[1] = {**company.users[1], "name": "Zoë Faure"}
    store.hr_reps(tmp_path, [
        ("Hugo Blanc", "U11@EXAMPLE.TEST", "Paris"),
        ("ZOE FAURE", "zoe@corp.test", "Lyon"),  # user 12, by name
    ])  # fmt: skip
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is None
    users = by_name(report)["users"]
    assert (users.fetched, users.matched, users.inserted) == (3, 2, 1)
    assert store.rows("SELECT source_id FROM reps WHERE source = 'pd'") == [("13",)]
    deals = store.owners("pd")
    assert (deals["0"], deals["1"], deals["2"]) == (
        "Hugo Blanc (hr)", "ZOE FAURE (hr)", "User 13 (pd)",
    )  # fmt: skip
    rejected = {r.record: r.reason for r in by_name(report)["deals"].rejected}
    assert rejected["5001"] == "unknown owner '999' (no rep with that id or name)"
    # A lead of user 11 counts for Hugo too.
    assert store.rows(
        "SELECT r.name FROM leads l JOIN reps r ON r.id = l.owner_id WHERE l.source_id = 'lead-000'"
    ) == [("Hugo Blanc",)]
