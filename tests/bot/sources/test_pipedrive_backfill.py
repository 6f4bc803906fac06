"""The first Pipedrive sync backfills the pipeline history from the deals' changelogs: the
states a deal's changes imply (hand-computed below) stand at the moments before kpibot was
installed; the read costs a call per deal updated since its creation (none for the others),
the most recently updated first, and stops once the day's token budget is down to what it
keeps for the syncs, naming what it left unread; later syncs do not read it again, and a
failed read leaves the sync as it is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.formatting import Formatter
from bot.settings import PipedriveSource
from bot.sources.pipedrive import PipedriveConnector
from bot.store.history import states_at
from tests.bot.sources.crm_support import Store, by_name, store_on
from tests.fakes.http_fake import Fault
from tests.fakes.pipedrive_api import TOKEN, FakePipedrive, pd_time, v1_time

ENGLISH = Formatter("en_US", "EUR", UTC)
FRENCH = Formatter("fr_FR", "EUR", UTC)
FILLERS = 20  # lost deals with an amount change each, updated before the others
X, Y, Z, W = 1, 2, 3, 4
SYNC_CALLS = 5  # stages, users, organizations, deals and leads: a page each


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def deal(key: int, created: datetime, updated: datetime, **fields: Any) -> dict[str, Any]:
    record = {
        "id": key, "title": f"Deal {key}", "owner_id": 11, "org_id": 100, "pipeline_id": 1,
        "stage_id": 1, "status": "open", "value": 1000, "currency": "EUR",
        "add_time": pd_time(created), "update_time": pd_time(updated), "probability": None,
        "is_deleted": False, "won_time": None, "lost_time": None, "close_time": None,
        "expected_close_date": "2026-12-15",
    }  # fmt: skip
    record.update(fields)
    return record


@pytest.fixture
def company() -> Iterator[FakePipedrive]:
    with FakePipedrive() as fake:
        fake.users = [
            {"id": uid, "name": name, "email": f"{name.lower()}@example.test",
             "active_flag": True, "created": "2025-01-06 09:00:00",
             "modified": v1_time(at("2025-01-06"))}
            for uid, name in ((11, "Ann"), (12, "Bob"))
        ]  # fmt: skip
        fake.stages = [
            {"id": sid, "name": name, "pipeline_id": 1, "deal_probability": probability,
             "order_nr": sid, "is_deleted": False, "add_time": pd_time(at("2025-01-06")),
             "update_time": pd_time(at("2025-01-06"))}
            for sid, name, probability in ((1, "Qualified", 20), (2, "Proposal", 60),
                                           (3, "Negotiation", 80))
        ]  # fmt: skip
        fake.organizations = {100: {"id": 100, "name": "Acme", "owner_id": 11,
                                    "add_time": pd_time(at("2025-01-06")),
                                    "update_time": pd_time(at("2025-01-06")),
                                    "is_deleted": False}}  # fmt: skip
        # X: stage twice, value once from empty, expected close date twice, owner once.
        fake.deals[X] = deal(X, at("2026-09-01"), at("2026-11-10", 8), stage_id=3, value=5000,
                             expected_close_date="2027-01-15", owner_id=12)  # fmt: skip
        fake.change(X, "stage_id", 1, 2, at("2026-09-10", 10))
        fake.change(X, "value", None, 4000, at("2026-09-10", 10))
        fake.change(X, "expected_close_date", "2026-10-31", "2026-11-30", at("2026-10-05"))
        fake.change(X, "stage_id", 2, 3, at("2026-10-20", 14))
        fake.change(X, "expected_close_date", "2026-11-30", "2027-01-15", at("2026-11-03"))
        fake.change(X, "value", 4000, 5000, at("2026-11-03"))
        fake.change(X, "user_id", 11, 12, at("2026-11-10", 8))
        # Y: won on 20 November, for more than it was worth.
        fake.deals[Y] = deal(Y, at("2026-09-15"), at("2026-11-20"), stage_id=3, status="won",
                             value=7000, won_time=pd_time(at("2026-11-20")),
                             expected_close_date="2026-11-30")  # fmt: skip
        fake.change(Y, "status", "open", "won", at("2026-11-20"))
        fake.change(Y, "won_time", None, v1_time(at("2026-11-20")), at("2026-11-20"))
        fake.change(Y, "value", 6000, 7000, at("2026-11-20"))
        # Z: never updated since its creation: no changelog to read.
        fake.deals[Z] = deal(Z, at("2026-10-02"), at("2026-10-02"), value=3000)
        # W: in a stage since deleted before it was lost on 15 October; its value raised since.
        fake.deals[W] = deal(W, at("2026-08-01"), at("2026-11-01"), stage_id=2, status="lost",
                             value=200, lost_time=pd_time(at("2026-10-15")))  # fmt: skip
        fake.change(W, "stage_id", 77, 2, at("2026-10-15"))
        fake.change(W, "status", "open", "lost", at("2026-10-15"))
        fake.change(W, "value", 100, 200, at("2026-11-01"))
        for number in range(FILLERS):
            key = 100 + number
            fake.deals[key] = deal(key, at("2026-06-01"), at("2026-07-01", 9 + number // 10),
                                   status="lost", value=1010,
                                   lost_time=pd_time(at("2026-07-31")))  # fmt: skip
            fake.deals[key]["update_time"] = pd_time(
                datetime(2026, 7, 1, 9, number, tzinfo=UTC)  # filler 119 most recently
            )
            fake.change(key, "value", 1000, 1010, at("2026-07-01", 9))
        yield fake


def connector(company: FakePipedrive, **settings: Any) -> PipedriveConnector:
    spec = PipedriveSource.model_validate(
        {"kind": "pipedrive", "base_url": f"{company.url}/api", "timeout": 2,
         "max_retries": 2, **settings}
    )  # fmt: skip
    return PipedriveConnector("pd", spec, {"api_token": TOKEN}, backoff=0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from store_on(request.param, tmp_path)


def read(company: FakePipedrive) -> list[int]:
    """The deals whose changelog was read, in order."""
    return [int(r.path.split("/")[-2]) for r in company.changelog_reads]


def states(store: Store, moment: datetime) -> dict[int, tuple[Any, ...]]:
    """Each deal (but the fillers) as it stood at ``moment``: status, stage, amount, close
    date, probability and owner's name."""
    with store.engine.connect() as connection:
        rows = connection.execute(states_at(moment)).mappings().all()
    reps = {rep_id: name for name, rep_id in store.rows("SELECT name, id FROM reps")}
    return {
        int(row["source_id"]): (
            row["status"], row["stage"], row["amount"], row["close_date"], row["probability"],
            reps.get(row["owner_id"]),
        )
        for row in rows
        if int(row["source_id"]) < 100
    }  # fmt: skip


def earlier_states(store: Store) -> dict[int, int]:
    """Per deal, how many states the history holds from before the sync's first state."""
    rows = store.rows(
        "SELECT o.source_id, count(*) - 1 FROM opportunity_history h JOIN opportunities o "
        "ON o.id = h.opportunity_id GROUP BY o.source_id"
    )
    return {int(key): int(count) for key, count in rows}


def test_first_sync_rebuilds_the_states_the_changelogs_imply(company, store):
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is None
    assert by_name(report)["deals"].rejected == []
    backfill = report.backfill
    assert backfill is not None and backfill.error is None and backfill.cut is None
    # A call per deal updated since its creation, the most recently updated first; not Z.
    fillers = [100 + n for n in reversed(range(FILLERS))]
    assert read(company) == [Y, X, W, *fillers]
    assert backfill.api_calls == 3 + FILLERS
    # X: 5 moments and its creation; Y: 1 and creation; Z: creation; W: the value change and
    # the state after the stage it cannot read; fillers: 1 and creation each.
    assert (backfill.deals, backfill.intervals) == (4 + FILLERS, 6 + 2 + 1 + 2 + FILLERS * 2)
    assert [(r.deal, r.at, r.reason) for r in backfill.refused] == [
        (str(W), at("2026-10-15"), "unknown stage '77' (the stages mapping knows Qualified, "
         "Proposal, Negotiation, won, lost)")
    ]  # fmt: skip
    assert (
        "history before the first sync backfilled from the CRM's field history: 51 earlier "
        "states of 24 deals; 23 API calls" in report.summary(ENGLISH)
    )

    d = date.fromisoformat
    assert states(store, at("2026-08-20")) == {}
    assert states(store, at("2026-09-05")) == {
        X: ("open", "Qualified", None, d("2026-10-31"), 0.2, "Ann"),
    }
    assert states(store, at("2026-09-20")) == {
        X: ("open", "Proposal", Decimal("4000.00"), d("2026-10-31"), 0.6, "Ann"),
        Y: ("open", "Negotiation", Decimal("6000.00"), d("2026-11-30"), 0.8, "Ann"),
    }
    assert states(store, at("2026-10-10"))[X] == (
        "open", "Proposal", Decimal("4000.00"), d("2026-11-30"), 0.6, "Ann",
    )  # fmt: skip
    assert states(store, at("2026-10-25")) == {
        X: ("open", "Negotiation", Decimal("4000.00"), d("2026-11-30"), 0.8, "Ann"),
        Y: ("open", "Negotiation", Decimal("6000.00"), d("2026-11-30"), 0.8, "Ann"),
        Z: ("open", "Qualified", Decimal("3000.00"), d("2026-12-15"), 0.2, "Ann"),
        W: ("lost", "lost", Decimal("100.00"), d("2026-10-15"), 0.6, "Ann"),
    }
    assert states(store, at("2026-11-25")) == {
        X: ("open", "Negotiation", Decimal("5000.00"), d("2027-01-15"), 0.8, "Bob"),
        Y: ("won", "won", Decimal("7000.00"), d("2026-11-20"), 0.8, "Ann"),
        Z: ("open", "Qualified", Decimal("3000.00"), d("2026-12-15"), 0.2, "Ann"),
        W: ("lost", "lost", Decimal("200.00"), d("2026-10-15"), 0.6, "Ann"),
    }


def test_the_backfill_stops_at_the_budget_kept_for_the_syncs(company, store):
    # 1,000 tokens a day at 20 a call: the sync spends 100, the backfill may spend down to
    # the half it keeps, 20 calls, and leaves the 3 least recently updated deals unread.
    company.token_limit = 1000
    report = store.sync("pd", "pipedrive", connector(company, backfill_reserve=0.5))
    assert report.error is None and report.backfill is not None
    backfill = report.backfill
    assert backfill.api_calls == (1000 - SYNC_CALLS * 20 - 500) // 20 == 20
    unread = {100, 101, 102}  # the fillers updated first
    assert set(read(company)) == {X, Y, W, *range(100, 120)} - unread
    assert backfill.cut is not None
    assert (set(backfill.cut.records), backfill.cut.kept, backfill.cut.left) == (
        {str(key) for key in unread}, 500, 500,
    )  # fmt: skip
    assert (
        "3 deals not backfilled: the backfill stops once the day's API budget is down to 500 "
        "of 1,000 tokens, kept for the syncs (500 left); their history starts at this sync"
        in report.summary(ENGLISH)
    )
    assert (
        "3 affaires non reconstituées\u00a0: la reconstitution s'arrête quand le budget API "
        "du jour tombe à 500 jetons sur 1\u202f000" in report.summary(FRENCH)
    )
    earlier = earlier_states(store)
    assert {key: earlier[key] for key in unread} == {100: 0, 101: 0, 102: 0}
    assert {key: earlier[key] for key in (X, Y, Z, W, 103, 119)} == {
        X: 6, Y: 2, Z: 1, W: 2, 103: 2, 119: 2,
    }  # fmt: skip


def test_a_second_sync_does_not_read_the_changelogs_again(company, store):
    store.sync("pd", "pipedrive", connector(company))
    calls = len(company.changelog_reads)
    company.deals[Z].update(value=3500, update_time=pd_time(datetime.now(UTC)))
    company.change(Z, "value", 3000, 3500, datetime.now(UTC))
    again = store.sync("pd", "pipedrive", connector(company))
    assert again.error is None and again.backfill is None
    assert len(company.changelog_reads) == calls
    full = store.sync("pd", "pipedrive", connector(company), full=True)
    assert full.backfill is None and len(company.changelog_reads) == calls


def test_a_failed_changelog_read_leaves_the_sync_as_it_is(company, store):
    path = f"/api/v1/deals/{X}/changelog"
    company.fail(*(Fault(503, {"success": False, "error": "unavailable"}, path=path),) * 3)
    report = store.sync("pd", "pipedrive", connector(company))
    assert report.error is None and report.backfill is not None
    assert report.backfill.error == (f"Pipedrive answered 503 /v1/deals/{X}/changelog: unavailable")
    assert report.backfill.intervals == 0
    assert (
        "history before the first sync NOT backfilled (2 API calls): Pipedrive answered 503"
        in report.summary(ENGLISH)
    )
    deals = 4 + FILLERS
    assert store.rows("SELECT count(*) FROM opportunities WHERE source = 'pd'") == [(deals,)]
    assert store.rows("SELECT count(*), count(DISTINCT valid_from) FROM opportunity_history") == [
        (deals, 1)
    ]
