"""The store on SQLite and PostgreSQL: migrations, idempotent upserts, data version, facts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, inspect

from bot.store.database import (
    bump_data_version,
    data_version,
    migrate,
    session_factory,
    transaction,
)
from bot.store.facts_loader import FactsCache, load_facts
from bot.store.models import Opportunity, Rep, Team
from bot.store.upsert import ids_by_source_id, upsert


def seed(engine: Engine, amount: str = "1000.00") -> int:
    with transaction(session_factory(engine)) as session:
        changed = upsert(
            session,
            Team.__table__,
            [{"source": "t", "source_id": "A", "name": "A", "region": "North", "manager": "Ann"}],
        )
        team_ids = ids_by_source_id(session, Team.__table__, "t", ["A"])
        changed += upsert(
            session,
            Rep.__table__,
            [{"source": "t", "source_id": "alice", "name": "alice", "email": None,
              "team_id": team_ids["A"], "slack_user_id": None, "active_from": None,
              "active_to": None}],
        )  # fmt: skip
        rep_ids = ids_by_source_id(session, Rep.__table__, "t", ["alice"])
        rows = [
            {"source": "t", "source_id": "o1", "name": None, "account_id": None,
             "owner_id": rep_ids["alice"], "product": None, "stage": "Won", "is_closed": True,
             "is_won": True, "amount": Decimal(amount), "currency": "EUR",
             "created_at": date(2026, 7, 1), "close_date": date(2026, 7, 20),
             "probability": None, "forecast_category": None, "last_activity_at": None,
             "updated_at": None},
            {"source": "t", "source_id": "o2", "name": None, "account_id": None,
             "owner_id": rep_ids["alice"], "product": None, "stage": "Open", "is_closed": False,
             "is_won": False, "amount": Decimal("500.00"), "currency": "GBP",
             "created_at": date(2026, 7, 2), "close_date": date(2026, 9, 20),
             "probability": 0.4, "forecast_category": None, "last_activity_at": None,
             "updated_at": None},
        ]  # fmt: skip
        changed += upsert(session, Opportunity.__table__, rows)
        if changed:
            bump_data_version(session)
    return changed


def test_migrations_create_the_canonical_model_and_are_idempotent(store: Engine) -> None:
    migrate(store)  # a second time: nothing to do, no error
    tables = set(inspect(store).get_table_names())
    assert {"teams", "reps", "accounts", "leads", "opportunities", "spend", "surveys",
            "fx_rates", "data_version", "alembic_version"} <= tables  # fmt: skip


def test_reimport_changes_nothing_and_keeps_the_data_version(store: Engine) -> None:
    assert seed(store) == 4
    with session_factory(store)() as session:
        assert data_version(session) == 1
    assert seed(store) == 0
    with session_factory(store)() as session:
        assert data_version(session) == 1
    # a changed amount is one changed row and a new data version
    assert seed(store, amount="1200.00") == 1
    with session_factory(store)() as session:
        assert data_version(session) == 2


def test_facts_in_base_currency_minor_units(store: Engine) -> None:
    seed(store)
    facts = load_facts(store, "EUR", {"GBP": Decimal("1.15")}, 0.5)
    opps = facts.opportunities.sort_values("created")
    # o1 in EUR, o2: 500 GBP at 1.15
    assert list(opps["amount"]) == [100_000, 57_500]
    assert list(opps["status"]) == ["won", "open"]
    assert list(opps["probability"]) == [0.5, 0.4]  # o1 has none: the default
    assert (opps["team"].iloc[0], opps["region"].iloc[0], opps["rep"].iloc[0]) == (
        "A",
        "North",
        "alice",
    )


def test_facts_are_reloaded_only_when_the_data_version_changes(store: Engine) -> None:
    seed(store)
    cache = FactsCache(store, "EUR", {"GBP": Decimal("1.15")}, 0.5)
    first = cache.get()
    assert cache.get() is first
    seed(store, amount="2000.00")
    second = cache.get()
    assert second is not first
    assert second.opportunities.sort_values("created")["amount"].iloc[0] == 200_000
