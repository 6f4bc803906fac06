"""KPI definitions: one object per KPI (id, names, unit, direction, how it is computed).

Each ``compute`` takes the facts, a scope, a period and ``as_of`` and returns a ``KpiValue``.
Empty denominators give a value of ``None`` with a reason ("no data"), never 0 % or a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

import pandas as pd

from metrics.facts import Facts, in_period, on_or_before, ts
from metrics.periods import Period
from metrics.scopes import Level, Scope


class Unit(StrEnum):
    MONEY = "money"
    PERCENT = "percent"
    MULTIPLE = "multiple"
    DAYS = "days"
    SCORE = "score"


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


class Judgement(StrEnum):
    """How a KPI is judged against its target."""

    # Accumulates through the period (revenue): compared with target × pace, and forecast.
    PACED = "paced"
    # A level read at as_of (pipeline, forecast): compared with the target as it stands.
    LEVEL = "level"
    # A ratio or mean (win rate, CSAT): judged only once its sample is large enough.
    SAMPLED = "sampled"


@dataclass(frozen=True)
class KpiValue:
    value: Decimal | None
    sample: int | None = None
    reason: str | None = None

    @property
    def has_data(self) -> bool:
        return self.value is not None


TargetLookup = Callable[[str, Scope, Period], Decimal | None]


@dataclass(frozen=True)
class Context:
    """What a KPI may need besides the facts: the revenue target, for coverage and attainment."""

    target: TargetLookup


@dataclass(frozen=True)
class Kpi:
    id: str
    label_en: str
    label_fr: str
    aliases: tuple[str, ...]
    unit: Unit
    better: Better
    judgement: Judgement
    compute: Callable[[Facts, Scope, Period, date, Context], KpiValue]
    description: str
    # Judged against another KPI's target when it has none of its own (forecast → revenue).
    target_of: str | None = None

    def label(self, language: str) -> str:
        return self.label_fr if language == "fr" else self.label_en


def _money(facts: Facts, minor: int | float) -> Decimal:
    return Decimal(round(minor)).scaleb(-facts.minor_digits)


def _ratio(numerator: float, denominator: float) -> Decimal:
    return Decimal(repr(numerator / denominator))


def _to_date(period: Period, as_of: date) -> Period | None:
    """The part of ``period`` that has happened by ``as_of`` (None if it has not started)."""
    if as_of < period.start:
        return None
    return period.to_date(as_of)


NOT_STARTED = "the period has not started yet"


def _won(facts: Facts, scope: Scope, period: Period, as_of: date) -> pd.DataFrame | None:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return None
    opps = facts.select("opportunities", scope)
    return opps[(opps["status"] == "won") & in_period(opps["close"], elapsed)]


def revenue(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    return KpiValue(_money(facts, int(won["amount"].sum())), sample=len(won))


def conversion(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    leads = facts.select("leads", scope)
    created = leads[in_period(leads["created"], elapsed)]
    if created.empty:
        return KpiValue(None, sample=0, reason="no leads created in the period")
    converted = int(on_or_before(created["converted"], as_of).sum())
    return KpiValue(_ratio(converted, len(created)), sample=len(created))


def win_rate(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    opps = facts.select("opportunities", scope)
    closed = opps[opps["status"].isin(("won", "lost")) & in_period(opps["close"], elapsed)]
    if closed.empty:
        return KpiValue(None, sample=0, reason="no deal closed in the period")
    won = int((closed["status"] == "won").sum())
    return KpiValue(_ratio(won, len(closed)), sample=len(closed))


def _open_at(facts: Facts, scope: Scope, as_of: date) -> pd.DataFrame:
    """Deals open at the end of ``as_of``: created by then and not closed by then."""
    opps = facts.select("opportunities", scope)
    created = on_or_before(opps["created"], as_of) | opps["created"].isna()
    still_open = (opps["status"] == "open") | (opps["close"] > ts(as_of))
    return opps[created & still_open]


def pipeline(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    open_deals = _open_at(facts, scope, as_of)
    in_p = open_deals[in_period(open_deals["close"], period)]
    return KpiValue(_money(facts, int(in_p["amount"].sum())), sample=len(in_p))


def new_pipeline(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    opps = facts.select("opportunities", scope)
    created = opps[in_period(opps["created"], elapsed)]
    return KpiValue(_money(facts, int(created["amount"].sum())), sample=len(created))


def coverage(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    target = ctx.target("revenue", scope, period)
    if target is None:
        return KpiValue(None, reason="no revenue target for this scope and period")
    booked = revenue(facts, scope, period, as_of, ctx).value or Decimal(0)
    remaining = target - booked
    if remaining <= 0:
        return KpiValue(None, reason="the revenue target is already reached")
    pipe = pipeline(facts, scope, period, as_of, ctx)
    assert pipe.value is not None  # pipeline always has a value (possibly 0)
    return KpiValue(pipe.value / remaining, sample=pipe.sample)


def avg_deal(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    if won.empty:
        return KpiValue(None, sample=0, reason="no deal won in the period")
    total = _money(facts, int(won["amount"].sum()))
    return KpiValue(total / len(won), sample=len(won))


def sales_cycle(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    won = won[won["created"].notna()]
    if won.empty:
        return KpiValue(None, sample=0, reason="no deal won in the period")
    days = (won["close"] - won["created"]).dt.days
    return KpiValue(_ratio(float(days.sum()), len(won)), sample=len(won))


def attainment(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    target = ctx.target("revenue", scope, period)
    if target is None or target <= 0:
        return KpiValue(None, reason="no revenue target for this scope and period")
    booked = revenue(facts, scope, period, as_of, ctx)
    if booked.value is None:
        return booked
    return KpiValue(booked.value / target, sample=booked.sample)


def cpa(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    if scope.level is Level.REP:
        # Marketing spend is booked per team or region, never per rep.
        return KpiValue(None, reason="marketing spend is not attributed to reps")
    spend = facts.select("spend", scope)
    spent = spend[in_period(spend["date"], elapsed)]
    if spent.empty:
        return KpiValue(None, sample=0, reason="no marketing spend recorded for this scope")
    firsts = facts.first_wins
    if scope.column is not None:
        firsts = firsts[firsts[scope.column] == scope.name]
    customers = int(in_period(firsts["close"], elapsed).sum())
    if customers == 0:
        return KpiValue(None, sample=0, reason="no new customer in the period")
    return KpiValue(_money(facts, int(spent["amount"].sum())) / customers, sample=customers)


def _surveys(
    facts: Facts, scope: Scope, period: Period, as_of: date, kind: str
) -> pd.Series | None:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return None
    surveys = facts.select("surveys", scope)
    chosen = surveys[(surveys["kind"] == kind) & in_period(surveys["date"], elapsed)]
    return chosen["score"]


def csat(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    scores = _surveys(facts, scope, period, as_of, "csat")
    if scores is None or scores.empty:
        return KpiValue(None, sample=0, reason="no CSAT survey answered in the period")
    return KpiValue(_ratio(float(scores.sum()), len(scores)), sample=len(scores))


def nps(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    scores = _surveys(facts, scope, period, as_of, "nps")
    if scores is None or scores.empty:
        return KpiValue(None, sample=0, reason="no NPS survey answered in the period")
    promoters = int((scores >= 9).sum())
    detractors = int((scores <= 6).sum())
    return KpiValue(_ratio(100 * (promoters - detractors), len(scores)), sample=len(scores))


def turnover(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    reps = facts.reps
    if scope.level is Level.REP:
        reps = reps[reps["name"] == scope.name]
    elif scope.column is not None:
        reps = reps[reps[scope.column] == scope.name]

    def active_on(day: date) -> int:
        started = reps["active_from"].isna() | (reps["active_from"] <= ts(day))
        staying = reps["active_to"].isna() | (reps["active_to"] >= ts(day))
        return int((started & staying).sum())

    average = (active_on(elapsed.start) + active_on(elapsed.end)) / 2
    if average == 0:
        return KpiValue(None, sample=0, reason="no active rep in the period")
    left = int(in_period(reps["active_to"], elapsed).sum())
    return KpiValue(_ratio(left, average), sample=len(reps))


def forecast(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    booked = revenue(facts, scope, period, as_of, ctx)
    if booked.value is None:
        booked = KpiValue(Decimal(0), sample=0)
    if as_of >= period.end:
        return booked
    open_deals = _open_at(facts, scope, as_of)
    # Deals already dated in the past but still open have slipped: they are not counted.
    after = ts(as_of) if as_of >= period.start else ts(period.start) - pd.Timedelta(days=1)
    rest = open_deals[(open_deals["close"] > after) & (open_deals["close"] <= ts(period.end))]
    weighted = float((rest["amount"] * rest["probability"]).sum())
    assert booked.value is not None
    return KpiValue(booked.value + _money(facts, weighted), sample=len(rest))


def _kpi(
    id: str,
    en: str,
    fr: str,
    aliases: tuple[str, ...],
    unit: Unit,
    better: Better,
    judgement: Judgement,
    compute: Callable[[Facts, Scope, Period, date, Context], KpiValue],
    description: str,
    target_of: str | None = None,
) -> Kpi:
    return Kpi(id, en, fr, aliases, unit, better, judgement, compute, description, target_of)


H, L = Better.HIGHER, Better.LOWER
PACED, LEVEL, SAMPLED = Judgement.PACED, Judgement.LEVEL, Judgement.SAMPLED
KPIS: dict[str, Kpi] = {
    k.id: k
    for k in (
        _kpi("revenue", "Revenue", "Chiffre d'affaires",
             ("ca", "chiffre", "chiffre d'affaires", "sales", "bookings", "ventes"),
             Unit.MONEY, H, PACED, revenue, "won amount, by close date"),
        _kpi("conversion", "Lead conversion", "Taux de conversion",
             ("taux", "conversion-leads", "lead conversion", "taux de conversion", "conv"),
             Unit.PERCENT, H, SAMPLED, conversion, "leads created in the period that converted"),
        _kpi("win_rate", "Win rate", "Taux de gain",
             ("taux-de-gain", "taux de gain", "win rate", "winrate", "close rate"),
             Unit.PERCENT, H, SAMPLED, win_rate, "won ÷ (won + lost), by close date"),
        _kpi("pipeline", "Pipeline", "Pipeline",
             ("pipe", "open pipeline", "pipeline ouvert"),
             Unit.MONEY, H, LEVEL, pipeline, "open amount expected to close in the period"),
        _kpi("new_pipeline", "New pipeline", "Nouveau pipeline",
             ("new pipeline", "nouveau pipeline", "pipeline cree", "created pipeline"),
             Unit.MONEY, H, PACED, new_pipeline, "amount of deals created in the period"),
        _kpi("coverage", "Pipeline coverage", "Couverture du pipeline",
             ("couverture", "pipeline coverage", "couverture du pipeline"),
             Unit.MULTIPLE, H, LEVEL, coverage, "pipeline ÷ revenue still to book"),
        _kpi("avg_deal", "Average deal size", "Panier moyen",
             ("panier", "panier moyen", "deal size", "average deal", "avg deal"),
             Unit.MONEY, H, SAMPLED, avg_deal, "revenue ÷ number of deals won"),
        _kpi("sales_cycle", "Sales cycle", "Cycle de vente",
             ("cycle", "cycle de vente", "sales cycle", "cycle length"),
             Unit.DAYS, L, SAMPLED, sales_cycle, "mean days from creation to win"),
        _kpi("attainment", "Quota attainment", "Atteinte de l'objectif",
             ("atteinte", "quota", "quota attainment", "atteinte objectif"),
             Unit.PERCENT, H, PACED, attainment, "revenue ÷ revenue target"),
        _kpi("cpa", "Cost per acquisition", "Coût d'acquisition",
             ("cac", "cout", "cout d'acquisition", "cost per acquisition", "acquisition cost"),
             Unit.MONEY, L, SAMPLED, cpa, "marketing spend ÷ new customers"),
        _kpi("csat", "Customer satisfaction", "Satisfaction client",
             ("satisfaction", "satisfaction client", "customer satisfaction"),
             Unit.SCORE, H, SAMPLED, csat, "mean CSAT score"),
        _kpi("nps", "Net Promoter Score", "Net Promoter Score",
             ("net promoter score", "recommandation"),
             Unit.SCORE, H, SAMPLED, nps, "% promoters − % detractors"),
        _kpi("turnover", "Rep turnover", "Attrition",
             ("attrition", "rep turnover", "turn over", "departs"),
             Unit.PERCENT, L, SAMPLED, turnover, "reps who left ÷ average headcount"),
        _kpi("forecast", "Forecast", "Prévision",
             ("prevision", "prévision", "prevision de ca", "projection"),
             Unit.MONEY, H, LEVEL, forecast, "revenue to date + weighted open pipeline",
             target_of="revenue"),
    )
}  # fmt: skip
