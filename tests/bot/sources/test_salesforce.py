"""Salesforce through simple-salesforce against a fake org (tests/fakes/salesforce_api.py):
a full sync, an incremental one after changes and deletions costing ⌈k / batch⌉ + a constant
number of API calls, a KPI answer on the synced deals checked against the fake's records, and
the failures a real org produces (503s, the 24-hour limit, an expired session, a timeout)
retried or reported without a traceback, leaving unfinished objects as they were."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from bot.formatting import Formatter
from bot.settings import SalesforceSource
from bot.sources.connector import SourceError
from bot.sources.salesforce import RetryingAdapter, SalesforceConnector
from tests.bot.sources.crm_support import Store, by_name, make_store
from tests.fakes.http_fake import Fault
from tests.fakes.salesforce_api import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
    FakeSalesforce,
    sf_time,
)

ENGLISH = Formatter("en_US", "EUR", UTC)  # the words the assertions read

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
STAGES = [
    # MasterLabel, IsClosed, IsWon, DefaultProbability, ForecastCategoryName
    ("Prospecting", False, False, 10, "Pipeline"),
    ("Negotiation", False, False, 60, "BestCase"),
    ("Closed Won", True, True, 100, "Closed"),
    ("Closed Lost", True, False, 0, "Omitted"),
]
USERS = ["005A", "005B", "005C"]
N_DEALS = 450
BATCH = 200
# Opportunity's description (multi-currency or not), OpportunityStage, User, Account, Lead
# (one page each).
CONSTANT_FULL = 1 + 1 + 1 + 1 + 1
# Incremental: the same, plus one queryAll for deletions per deletable object.
CONSTANT_INCREMENTAL = CONSTANT_FULL + 3
# A first sync also reads OpportunityFieldHistory (one page: this org records no change) to
# backfill the pipeline history (tests/bot/sources/test_salesforce_backfill.py).
BACKFILL = 1


class LocalAdapter(RetryingAdapter):
    """Sends what simple-salesforce addresses to https://<anything>.salesforce.com to the
    fake on 127.0.0.1 (the library always speaks HTTPS)."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        request.url = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def deal(number: int, **changes: Any) -> dict[str, Any]:
    stage = STAGES[number % 4][0]
    record = {
        "Id": f"006{number:05d}",
        "Name": f"Deal {number}",
        "OwnerId": USERS[number % 3],
        "AccountId": f"001{number % 5}",
        "StageName": stage,
        "Amount": 1000 + number * 10,
        "CreatedDate": sf_time(datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=number)),
        "CloseDate": (date(2026, 10, 1) + timedelta(days=number % 60)).isoformat(),
        "Probability": None if number % 7 == 0 else 50,
        "ForecastCategoryName": None,
        "SystemModstamp": sf_time(T0 + timedelta(minutes=number)),
    }
    record.update(changes)
    return record


@pytest.fixture
def org() -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        for label, closed, won, probability, category in STAGES:
            fake.put("OpportunityStage", {
                "Id": f"01J{label}", "MasterLabel": label, "IsClosed": closed, "IsWon": won,
                "DefaultProbability": probability, "ForecastCategoryName": category,
                "SystemModstamp": sf_time(T0),
            })  # fmt: skip
        for i, user in enumerate(USERS):
            fake.put("User", {
                "Id": user, "Name": f"Rep {user}", "Email": f"{user.lower()}@example.test",
                "UserRole": {"attributes": {"type": "UserRole"}, "Name": ["EMEA", "DACH"][i % 2]},
                "CreatedDate": sf_time(datetime(2025, 1, 6, tzinfo=UTC)),
                "UserType": "Standard", "SystemModstamp": sf_time(T0),
            })  # fmt: skip
        fake.put("User", {
            "Id": "005AUTO", "Name": "Automated Process", "Email": None, "UserRole": None,
            "CreatedDate": sf_time(T0), "UserType": "AutomatedProcess",
            "SystemModstamp": sf_time(T0),
        })  # fmt: skip
        for a in range(5):
            fake.put("Account", {
                "Id": f"001{a}", "Name": f"Account {a}", "Type": "Customer",
                "Industry": "Retail", "BillingCountry": "France", "SystemModstamp": sf_time(T0),
            })  # fmt: skip
        for number in range(N_DEALS):
            fake.put("Opportunity", deal(number))
        # Bad records, one reason each.
        fake.put("Opportunity", deal(900, StageName="Sleeping"))
        fake.put("Opportunity", deal(901, OwnerId="005GONE"))
        fake.put("Opportunity", deal(902, StageName="Closed Won", Amount=None))
        fake.put("Opportunity", deal(903, CloseDate="0201-01-01"))
        for lead in range(12):
            fake.put("Lead", {
                "Id": f"00Q{lead:03d}", "CreatedDate": sf_time(T0 - timedelta(days=lead)),
                "OwnerId": "00GQUEUE" if lead % 4 == 0 else USERS[lead % 3],
                "ConvertedDate": "2026-11-10" if lead % 3 == 0 else None,
                "LeadSource": "Web", "ConvertedAccountId": None,
                "SystemModstamp": sf_time(T0),
            })  # fmt: skip
        yield fake


PASSWORD_LOGIN = {"username": USERNAME, "password": PASSWORD, "security_token": SECURITY_TOKEN}


def connector(
    org: FakeSalesforce, secrets: dict[str, str] = PASSWORD_LOGIN, **settings: Any
) -> SalesforceConnector:
    spec = SalesforceSource.model_validate(
        {"kind": "salesforce", "page_size": BATCH, "timeout": 2, "max_retries": 2, **settings}
    )
    session = requests.Session()
    adapter = LocalAdapter(org.port, timeout=spec.timeout, retries=spec.max_retries, backoff=0)
    session.mount("https://", adapter)
    return SalesforceConnector("sf", spec, secrets, session=session)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path)


def won_revenue(org: FakeSalesforce, start: date, end: date) -> Decimal:
    """Revenue from the fake's own records: won, with an amount and a known owner."""
    total = Decimal(0)
    for record in org.records["Opportunity"].values():
        closed = record["CloseDate"]
        if (
            not record["IsDeleted"] and record["StageName"] == "Closed Won"
            and record["Amount"] is not None and record["OwnerId"] in USERS
            and start.isoformat() <= closed <= end.isoformat()
        ):  # fmt: skip
            total += Decimal(str(record["Amount"]))
    return total


def test_full_then_incremental_sync_counts_calls_and_answers_from_synced_data(org, store):
    calls = len(org.api_calls)
    full = store.sync("sf", "salesforce", connector(org))
    assert full.error is None
    objects = by_name(full)
    assert [o.name for o in full.objects] == ["User", "Account", "Opportunity", "Lead"]
    assert (objects["User"].fetched, objects["User"].inserted) == (3, 3)
    opportunities = objects["Opportunity"]
    assert (opportunities.fetched, opportunities.inserted) == (N_DEALS + 4, N_DEALS)
    reasons = {r.record: r.reason for r in opportunities.rejected}
    assert reasons == {
        "00600900": "stage: unknown stage 'Sleeping' (the stages mapping knows Closed Lost, "
        "Closed Won, Negotiation, Prospecting)",
        "00600901": "unknown owner '005GONE' (no rep with that id or name)",
        "00600902": "Closed Won deal without an amount (amount is empty)",
        "00600903": "close_date: 0201-01-01 is outside the dates kpibot holds (1900-01-01 to "
        "2199-12-31)",
    }
    pages = math.ceil((N_DEALS + 4) / BATCH)
    assert len(org.api_calls) - calls == CONSTANT_FULL + pages + BACKFILL
    assert opportunities.api_calls == pages
    assert opportunities.high_water_mark == T0 + timedelta(minutes=903)
    # Leads owned by a queue have no owner; the others are the reps'.
    assert store.rows("SELECT count(*) FROM leads WHERE owner_id IS NULL") == [(3,)]
    # Teams from the users' roles, probabilities read as percentages, or the stage's default.
    assert store.rows(
        "SELECT r.name, t.name FROM reps r JOIN teams t ON t.id = r.team_id ORDER BY r.name"
    ) == [("Rep 005A", "EMEA"), ("Rep 005B", "DACH"), ("Rep 005C", "EMEA")]
    assert store.rows(
        "SELECT probability, forecast_category FROM opportunities WHERE source_id IN "
        "('00600001', '00600021') ORDER BY source_id"
    ) == [(0.5, "BestCase"), (0.6, "BestCase")]
    assert full.budget is not None and full.budget.used == org.api_used

    # Nothing changed: the constant, and one page holding the record at the mark, read again.
    calls = len(org.api_calls)
    again = store.sync("sf", "salesforce", connector(org))
    assert len(org.api_calls) - calls == CONSTANT_INCREMENTAL + 1
    assert again.changed == 0 and by_name(again)["Opportunity"].fetched == 1

    # 250 deals change (every second one is won at a new amount), 2 are deleted.
    mark = T0 + timedelta(minutes=903)
    later = [mark + timedelta(minutes=10 + i) for i in range(260)]
    for i, number in enumerate(range(0, 500, 2)):
        if number < N_DEALS:
            org.put("Opportunity", deal(
                number, StageName="Closed Won", Amount=5000 + number,
                CloseDate="2026-11-15", SystemModstamp=sf_time(later[i]),
            ))  # fmt: skip
    changed = len(range(0, N_DEALS, 2))
    for number in (1, 3):
        org.put("Opportunity", deal(number, IsDeleted=True, SystemModstamp=sf_time(later[-1])))
    calls = len(org.api_calls)
    incremental = store.sync("sf", "salesforce", connector(org))
    assert incremental.error is None
    opportunities = by_name(incremental)["Opportunity"]
    fetched = changed + 1  # and the record at the previous mark
    assert opportunities.fetched == fetched
    assert (opportunities.updated, opportunities.deleted) == (changed, 2)
    assert len(org.api_calls) - calls == CONSTANT_INCREMENTAL + math.ceil(fetched / BATCH)
    # Marked deleted, not erased: they leave every figure and their history shows when.
    assert store.rows("SELECT count(*), count(deleted_at) FROM opportunities WHERE source_id IN "
                      "('00600001', '00600003')") == [(2, 2)]  # fmt: skip
    assert store.rows("SELECT count(*) FROM opportunity_history h JOIN opportunities o "
                      "ON o.id = h.opportunity_id WHERE o.source_id = '00600001' "
                      "AND h.status = 'deleted' AND h.valid_to IS NULL") == [(1,)]  # fmt: skip

    answer = store.service().ask("revenue 2026-11", datetime(2026, 11, 30, 12, tzinfo=UTC))
    expected = won_revenue(org, date(2026, 11, 1), date(2026, 11, 30))
    assert expected > 0
    assert answer.value.value == expected


def test_503s_are_retried_and_an_expired_session_logs_in_again(org, store):
    assert store.sync("sf", "salesforce", connector(org)).error is None
    unavailable = Fault(503, [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    sf = connector(org)  # logs in
    org.fail(unavailable, unavailable)
    org.expire_session()
    logins = org.logins
    report = store.sync("sf", "salesforce", sf)
    assert report.error is None
    assert org.logins == logins + 1


def test_the_24_hour_limit_stops_the_sync_and_keeps_unfinished_objects(org, store):
    assert store.sync("sf", "salesforce", connector(org)).error is None
    before = store.rows("SELECT source_id, amount, stage FROM opportunities ORDER BY source_id")
    marks = store.marks("sf")
    for number in range(0, 300):
        org.put(
            "Opportunity", deal(number, Amount=1, SystemModstamp=sf_time(T0 + timedelta(days=3)))
        )
    org.put("Account", {**org.records["Account"]["0010"], "Name": "Renamed",
                        "SystemModstamp": sf_time(T0 + timedelta(days=3))})  # fmt: skip
    # Enough for the description, stages, users, accounts (and their deletions) and one page
    # of deals.
    org.api_limit = org.api_used + 7
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is not None
    assert "24-hour API request limit is spent" in str(report.error)
    assert "TotalRequests Limit exceeded." in str(report.error)
    assert re.search(r"run kpibot sync after \d\d:\d\d UTC\)", str(report.error))
    finished = {o.name: o.finished for o in report.objects}
    assert finished == {"User": True, "Account": True, "Opportunity": False}
    assert store.rows("SELECT name FROM accounts WHERE source_id = '0010'") == [("Renamed",)]
    assert (
        store.rows("SELECT source_id, amount, stage FROM opportunities ORDER BY source_id")
        == before
    )
    after = store.marks("sf")
    assert after["Opportunity"] == marks["Opportunity"] and after["Lead"] == marks["Lead"]
    assert after["Account"] != marks["Account"]
    assert "request limit" in (store.rows(
        "SELECT last_error FROM sync_state WHERE object = 'Opportunity'")[0][0] or "")  # fmt: skip


def test_an_expired_access_token_and_a_timeout_are_reported(org, store):
    org.logins = 0
    with pytest.raises(SourceError) as refused:
        spec = SalesforceSource.model_validate({"kind": "salesforce"})
        SalesforceConnector("sf", spec, {}, session=requests.Session())
    assert "SALESFORCE_USERNAME" in str(refused.value)

    token = connector(org, instance_url="https://fake.my.salesforce.com")
    token_only = SalesforceConnector(
        "sf", token.spec, {"access_token": "00DFAKE!stale"}, session=token._session
    )
    report = store.sync("sf", "salesforce", token_only)
    assert report.error is not None and "SALESFORCE_ACCESS_TOKEN" in str(report.error)
    assert report.objects == []  # the stage list failed first: nothing was touched

    slow = connector(org, timeout=0.3, max_retries=1)
    org.fail(Fault(200, {}, delay=1.0), Fault(200, {}, delay=1.0))
    report = store.sync("sf", "salesforce", slow)
    assert report.error is not None and "did not answer" in str(report.error)
    assert store.rows("SELECT count(*) FROM opportunities") == [(0,)]


def test_oauth_client_credentials_on_a_my_domain(org, store):
    app = {"consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET}
    report = store.sync("sf", "salesforce", connector(org, app, domain="acme.my"))
    assert report.error is None and org.logins == 1
    assert by_name(report)["Opportunity"].inserted == N_DEALS
    with pytest.raises(SourceError) as refused:
        connector(org, {**app, "consumer_secret": "wrong"}, domain="acme.my")
    assert "Salesforce refused the login at acme.my (Authentication failed" in str(refused.value)
    assert "invalid client credentials" in str(refused.value)


def test_users_are_matched_to_reps_of_other_sources_by_email_then_by_name(org, store, tmp_path):
    # 005A's email in other case; 005B renamed in the CRM and known to HR by another email.
    org.put("User", {**org.records["User"]["005B"], "Name": "Béatrice Lefèvre"})
    hr = store.hr_reps(tmp_path, [
        ("Anne Martin", "005A@Example.TEST", "Paris"),
        ("beatrice LEFEVRE", "b.lefevre@corp.test", "Lyon"),
        ("Rep 005A", "someone.else@corp.test", "Nantes"),  # a name, but the email came first
    ])  # fmt: skip
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None
    users = by_name(report)["User"]
    assert (users.fetched, users.matched, users.inserted) == (3, 2, 1)
    assert "2 matched to reps of other sources by email or name" in report.summary(ENGLISH)
    # Only the user HR does not know became a rep of Salesforce's own.
    assert store.rows("SELECT source_id, name FROM reps WHERE source = 'sf'") == [
        ("005C", "Rep 005C")
    ]
    owners = store.owners("sf")
    assert owners["00600000"] == "Anne Martin (hr)"  # OwnerId 005A
    assert owners["00600001"] == "beatrice LEFEVRE (hr)"  # 005B
    assert owners["00600002"] == "Rep 005C (sf)"
    assert "00600901" not in owners  # owned by a user Salesforce does not list
    rejected = {r.record: r.reason for r in by_name(report)["Opportunity"].rejected}
    assert rejected["00600901"] == "unknown owner '005GONE' (no rep with that id or name)"

    # An incremental sync finds them again: a changed deal of 005A stays Anne's.
    org.put("Opportunity", deal(3, OwnerId="005A", SystemModstamp=sf_time(T0 + timedelta(days=1))))
    again = store.sync("sf", "salesforce", connector(org))
    assert again.error is None and by_name(again)["User"].matched == 2
    assert store.owners("sf")["00600003"] == "Anne Martin (hr)"
    assert store.rows("SELECT count(*) FROM reps WHERE source = 'sf'") == [(1,)]
    # Revenue of HR's Paris team is that of the deals 005A owns, counted from the fake.
    answer = store.service().ask("revenue team Paris 2026-10", datetime(2026, 11, 30, tzinfo=UTC))
    expected = sum(
        (Decimal(str(r["Amount"])) for r in org.records["Opportunity"].values()
         if r["OwnerId"] == "005A" and r["StageName"] == "Closed Won" and r["Amount"] is not None
         and r["CloseDate"].startswith("2026-10")),
        Decimal(0),
    )  # fmt: skip
    assert hr["Anne Martin"] and expected > 0
    assert answer.value.value == expected


def test_429_and_503_are_retried_by_sending_the_same_query_again(org, store):
    busy = Fault(429, [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT"}],
                 {"Retry-After": "0"})  # fmt: skip
    down = Fault(503, [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    sf = connector(org)  # logs in
    org.fail(busy, down)
    calls = len(org.api_calls)
    report = store.sync("sf", "salesforce", sf)
    assert report.error is None
    sent = [(r.path, r.query) for r in org.api_calls[calls:]]
    # The first request was answered 429, its second try 503, its third served.
    assert sent[0] == sent[1] == sent[2] and sent[3] != sent[2]
    assert len(sent) == CONSTANT_FULL + math.ceil((N_DEALS + 4) / BATCH) + BACKFILL + 2
    assert by_name(report)["Opportunity"].inserted == N_DEALS


def test_multi_currency_is_read_from_the_description_of_opportunity(org, store):
    plain = {o.name: o.fields for o in connector(org).objects()}
    assert "currency" not in plain["Opportunity"]
    for number in range(N_DEALS):
        org.put("Opportunity", deal(number, CurrencyIsoCode="USD" if number % 2 else "EUR"))
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None
    assert store.rows(
        "SELECT source_id, currency FROM opportunities WHERE source_id IN ('00600000', "
        "'00600001') ORDER BY source_id"
    ) == [("00600000", "EUR"), ("00600001", "USD")]


def test_a_full_sync_deletes_the_deals_it_no_longer_reads(org, store):
    assert store.sync("sf", "salesforce", connector(org)).error is None
    # Erased from the recycle bin, or hidden from kpibot's user: queryAll no longer has them.
    for number in (4, 5):
        del org.records["Opportunity"][f"006{number:05d}"]
    report = store.sync("sf", "salesforce", connector(org), full=True)
    assert report.error is None and by_name(report)["Opportunity"].deleted == 2
    assert store.rows(
        "SELECT source_id FROM opportunities WHERE deleted_at IS NOT NULL ORDER BY source_id"
    ) == [("00600004",), ("00600005",)]
    # Read again in full, nothing more goes.
    again = store.sync("sf", "salesforce", connector(org), full=True)
    assert again.error is None and by_name(again)["Opportunity"].deleted == 0


def test_a_user_synced_as_a_rep_becomes_the_rep_another_source_brings_later(org, store, tmp_path):
    assert store.sync("sf", "salesforce", connector(org)).error is None
    assert store.owners("sf")["00600000"] == "Rep 005A (sf)"
    won = store.rows(
        "SELECT count(*) FROM opportunities o JOIN reps r ON r.id = o.owner_id "
        "WHERE r.source_id = '005A' AND o.is_won"
    )
    # HR's export arrives; nothing changed in Salesforce, yet every deal of 005A moves over.
    store.hr_reps(tmp_path, [("Anne Martin", "005a@example.test", "Paris")])
    report = store.sync("sf", "salesforce", connector(org))
    assert report.error is None
    users = by_name(report)["User"]
    assert (users.matched, users.inserted, users.updated, users.deleted) == (1, 0, 0, 1)
    assert store.rows("SELECT source_id FROM reps WHERE source = 'sf' ORDER BY source_id") == [
        ("005B",), ("005C",),
    ]  # fmt: skip
    owners = store.owners("sf")
    assert owners["00600000"] == owners["00600003"] == "Anne Martin (hr)"
    assert (
        store.rows(
            "SELECT count(*) FROM opportunities o JOIN reps r ON r.id = o.owner_id "
            "WHERE r.name = 'Anne Martin' AND o.is_won"
        )
        == won
    )
    # The history names Anne too, from the first interval on.
    assert store.rows(
        "SELECT DISTINCT r.name FROM opportunity_history h JOIN opportunities o "
        "ON o.id = h.opportunity_id JOIN reps r ON r.id = h.owner_id WHERE o.source_id = '00600000'"
    ) == [("Anne Martin",)]


def test_progress_hears_the_query_total_size(org, store):
    heard: list[tuple[str, int, int | None, bool]] = []
    report = store.sync(
        "sf", "salesforce", connector(org), progress=lambda *update: heard.append(update)
    )
    assert report.error is None
    assert ("Opportunity", N_DEALS + 4, N_DEALS + 4, True) in heard
    assert ("User", 3, 3, True) in heard
