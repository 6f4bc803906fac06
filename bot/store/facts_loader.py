"""Facts as DataFrames, loaded from the store once per data version and kept in memory, so a
question never reloads whole tables."""

from __future__ import annotations

import threading
from decimal import Decimal

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.store.database import data_version
from bot.store.models import Account, FxRate, Lead, Opportunity, Rep, Spend, Survey, Team
from metrics.facts import Facts

_CATEGORIES = ("rep", "team", "region", "status", "kind", "account")


def _frame(engine: Engine, statement: object) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(statement, connection)  # type: ignore[call-overload,no-any-return]


def _dates(frame: pd.DataFrame, *columns: str) -> None:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")


def _categories(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _CATEGORIES:
        if column in frame:
            frame[column] = frame[column].astype("category")
    return frame


class MissingExchangeRate(LookupError):
    """A fact in a currency the config has no rate for: a configuration problem."""


class FxTable:
    """Rates to the base currency: the store's latest rate per currency, else the config's."""

    def __init__(self, base: str, configured: dict[str, Decimal], stored: dict[str, Decimal]):
        self.base = base
        self.rates = {**configured, **stored, base: Decimal(1)}

    def rate(self, currency: str) -> float:
        if currency not in self.rates:
            raise MissingExchangeRate(
                f"no exchange rate from {currency} to {self.base}: add {currency} under "
                "fx_rates in the config"
            )
        return float(self.rates[currency])


def _stored_rates(engine: Engine) -> dict[str, Decimal]:
    with Session(engine) as session:
        rows = session.execute(select(FxRate).order_by(FxRate.valid_from)).scalars()
        return {row.currency: row.rate for row in rows}


def _to_minor(frame: pd.DataFrame, fx: FxTable, minor_digits: int) -> pd.Series:
    rates = frame["currency"].map(lambda c: fx.rate(str(c))) if len(frame) else 1.0
    scaled = frame["amount"].astype("float64").fillna(0.0) * rates * 10**minor_digits
    minor: pd.Series = scaled.round().astype("int64")
    return minor


def load_facts(
    engine: Engine,
    currency: str,
    configured_rates: dict[str, Decimal],
    default_probability: float,
    minor_digits: int = 2,
) -> Facts:
    """Read every fact table once into the column contract of ``metrics.facts``."""
    version = _version(engine)
    fx = FxTable(currency, configured_rates, _stored_rates(engine))
    teams = _frame(engine, select(Team.id.label("team_id"), Team.name, Team.region, Team.manager))
    reps = _frame(
        engine,
        select(
            Rep.id.label("rep_id"), Rep.name, Rep.email, Rep.team_id, Rep.active_from,
            Rep.active_to,
        ),
    )  # fmt: skip
    reps = reps.merge(
        teams[["team_id", "name", "region"]].rename(columns={"name": "team"}),
        on="team_id",
        how="left",
    )
    _dates(reps, "active_from", "active_to")
    owners = reps[["rep_id", "name", "team", "region"]].rename(columns={"name": "rep"})

    opps = _frame(
        engine,
        select(
            Opportunity.source_id.label("id"), Opportunity.owner_id.label("rep_id"),
            Account.name.label("account"), Opportunity.is_closed, Opportunity.is_won,
            Opportunity.amount, Opportunity.currency, Opportunity.created_at.label("created"),
            Opportunity.close_date.label("close"), Opportunity.probability,
        ).outerjoin(Account, Opportunity.account_id == Account.id),
    )  # fmt: skip
    opps = opps.merge(owners, on="rep_id", how="left")
    opps["status"] = "open"
    opps.loc[opps["is_closed"].astype(bool) & ~opps["is_won"].astype(bool), "status"] = "lost"
    opps.loc[opps["is_closed"].astype(bool) & opps["is_won"].astype(bool), "status"] = "won"
    opps["amount"] = _to_minor(opps, fx, minor_digits)
    opps["probability"] = opps["probability"].astype("float64").fillna(default_probability)
    _dates(opps, "created", "close")
    opps = opps[
        ["id", "rep", "team", "region", "account", "status", "amount", "created", "close",
         "probability"]
    ]  # fmt: skip

    leads = _frame(
        engine,
        select(
            Lead.owner_id.label("rep_id"),
            Lead.created_at.label("created"), Lead.converted_at.label("converted"),
        ),
    )  # fmt: skip
    leads = leads.merge(owners, on="rep_id", how="left")
    _dates(leads, "created", "converted")
    leads = leads[["rep", "team", "region", "created", "converted"]]

    spend = _frame(
        engine,
        select(Spend.date, Spend.amount, Spend.currency, Team.name.label("team"),
               Spend.region.label("spend_region"), Team.region.label("team_region"))
        .outerjoin(Team, Spend.team_id == Team.id),
    )  # fmt: skip
    spend["region"] = spend["team_region"].fillna(spend["spend_region"])
    spend["amount"] = _to_minor(spend, fx, minor_digits)
    _dates(spend, "date")
    spend = spend[["date", "team", "region", "amount"]]

    surveys = _frame(engine, select(Survey.date, Survey.rep_id, Survey.kind, Survey.score))
    surveys = surveys.merge(owners, on="rep_id", how="left")
    _dates(surveys, "date")
    surveys = surveys[["date", "rep", "team", "region", "kind", "score"]]

    return Facts(
        opportunities=_categories(opps),
        leads=_categories(leads),
        spend=_categories(spend),
        surveys=_categories(surveys),
        reps=reps[["name", "email", "team", "region", "active_from", "active_to"]],
        teams=teams[["name", "region", "manager"]],
        currency=currency,
        minor_digits=minor_digits,
        version=version,
    )


def _version(engine: Engine) -> int:
    with Session(engine) as session:
        return data_version(session)


class FactsCache:
    """The current facts, reloaded only when the store's data version changes."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        configured_rates: dict[str, Decimal],
        default_probability: float,
    ) -> None:
        self._engine = engine
        self._args = (currency, configured_rates, default_probability)
        self._facts: Facts | None = None
        self._lock = threading.Lock()

    def get(self) -> Facts:
        current = _version(self._engine)
        with self._lock:
            if self._facts is None or self._facts.version != current:
                self._facts = load_facts(self._engine, *self._args)
            return self._facts
