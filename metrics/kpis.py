"""KPI definitions: one object per KPI (id, names, unit, direction, how it is computed).

Each ``compute`` takes the facts, a scope, a period and ``as_of`` and returns a ``KpiValue``.
Empty denominators give a value of ``None`` with a reason ("no data"), never 0 % or a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

import numpy as np
import pandas as pd

from metrics.facts import LOST, OPEN, WON, Columns, Facts, day, within
from metrics.index import TableIndexes
from metrics.key_accounts import KeyAccounts
from metrics.periods import Period
from metrics.scopes import Level, Scope
from metrics.slipped import SlippedDeal, slipped_deals


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


class Reason(StrEnum):
    """Why a KPI has no value, as a code: the shell words it from its catalogs
    (``reason.<code>``) and ``--json`` carries the code."""

    NOT_STARTED = "not_started"
    TOO_EARLY = "too_early"  # no lead older than the conversion window yet
    ENDED = "ended"  # coverage: the period is over, nothing is left to cover
    TARGET_REACHED = "target_reached"  # coverage: nothing left to book
    NOT_PER_REP = "not_per_rep"  # CPA, turnover: a team's figure, not a person's
    NO_LEADS = "no_leads"
    NO_DEAL_CLOSED = "no_deal_closed"
    NO_DEAL_WON = "no_deal_won"
    NO_REVENUE_TARGET = "no_revenue_target"  # coverage, attainment
    NO_SPEND = "no_spend"
    NO_NEW_CUSTOMER = "no_new_customer"
    NO_SURVEY = "no_survey"
    NO_ACTIVE_REP = "no_active_rep"
    NO_FIRST_WIN = "no_first_win"  # ramp-up: no new rep won a first deal in the period
    NO_KEY_ACCOUNTS = "no_key_accounts"  # key-account KPIs without ``key_accounts`` configured


@dataclass(frozen=True)
class KpiValue:
    value: Decimal | None
    sample: int | None = None
    reason: Reason | None = None
    # The leads a conversion rate was measured on, when fewer than the period's (the rest are
    # younger than the conversion window): "leads created 1–27 October".
    cohort: Period | None = None
    # CPA: the value split by where its spend was booked (team, region, nobody = company), each
    # part per new customer, so the parts add up to the value. A team carries only its own
    # spend: this is what makes the company's CPA higher than every team's.
    spend_split: tuple[tuple[Level, Decimal], ...] = ()
    # Pipeline, coverage, forecast: open deals of the period whose close date has passed (in
    # pipeline and coverage, left out of the forecast), and how many there are.
    overdue: Decimal | None = None
    overdue_deals: int = 0

    @property
    def has_data(self) -> bool:
        return self.value is not None


TargetLookup = Callable[[str, Scope, Period], Decimal | None]
DealLister = Callable[[Facts, Scope, Period, date], tuple[SlippedDeal, ...]]


@dataclass(frozen=True)
class Context:
    """What a KPI may need besides the facts: the revenue target (coverage, attainment), the
    days a lead is given to convert before its cohort is judged, which accounts are key
    accounts (None: not configured) and for how many months a rep counts as new."""

    target: TargetLookup
    conversion_window: int = 30
    key_accounts: KeyAccounts | None = None
    new_rep_months: int = 6


@dataclass(frozen=True)
class Kpi:
    id: str
    # The words a question may name it by, in English and French (its displayed name comes
    # from the shell's catalogs: ``kpi.<id>``).
    aliases: tuple[str, ...]
    unit: Unit
    better: Better
    judgement: Judgement
    compute: Callable[[Facts, Scope, Period, date, Context], KpiValue]
    description: str
    # Judged against another KPI's target when it has none of its own (forecast → revenue).
    target_of: str | None = None
    # Counts outcomes that come after the period's events (a lead converts weeks after it was
    # created): compared with other periods at equal maturity, the same days after their start.
    matures: bool = False
    # Accumulates over time, so its target for a period is the sum of its parts' targets: a
    # yearly target gives a quarter its share by days, four quarterly targets make the year's.
    # Other KPIs (rates, means, levels) keep the same target at every grain.
    additive: bool = False
    # Reads the deals as they stand at ``as_of`` (pipeline, coverage, forecast, overdue): read
    # in the past, it needs the deals as they stood then, which only the history knows.
    stood: bool = False
    # Counts what the history recorded (slips): before the history starts, a period is
    # unknown, not zero.
    recorded: bool = False
    # The deals behind the figure, when an answer lists them (slipped: how often and how far
    # each was pushed), largest first.
    deals: DealLister | None = None
    # May be broken down by lead source ("conversion par source"): computed on the facts
    # restricted to each channel (``metrics.sources``).
    by_channel: bool = False


def _money(facts: Facts, minor: int | float) -> Decimal:
    return Decimal(round(minor)).scaleb(-facts.minor_digits)


def _ratio(numerator: float, denominator: float) -> Decimal:
    return Decimal(repr(numerator / denominator))


def _to_date(period: Period, as_of: date) -> Period | None:
    """The part of ``period`` that has happened by ``as_of`` (None if it has not started)."""
    if as_of < period.start:
        return None
    return period.to_date(as_of)


NOT_STARTED = Reason.NOT_STARTED
_DEALS = ("status_code", "amount", "created", "close", "probability")


# The date-ordered indexes the usual KPIs read (revenue, average deal and sales cycle; win
# rate, pipeline, overdue and forecast; new pipeline; conversion), and the columns they read
# in each date order.
_USUAL_INDEXES = (
    ("opportunities", "close", ("status_code", WON)),
    ("opportunities", "close", None),
    ("opportunities", "created", None),
    ("leads", "created", None),
)
# What each team's index keeps gathered: the deals by close date, which an answer reads for
# every team of its breakdown (its status weighs revenue and forecast). A region's index keeps
# nothing: ten regions' reads are gathered at the answer in a few milliseconds, where keeping
# them cost every snapshot a quarter of its index files (72 of 343 MB at 1M deals and 2M
# leads), written at every publish and mapped by every serving process.
_KEPT = {
    ("opportunities", "close", ("status_code", WON)): ("amount", "created"),
    ("opportunities", "close", None): _DEALS,
}
_GATHERED = (
    ("opportunities", "close", _DEALS),
    ("opportunities", "created", ("amount",)),
    ("leads", "created", ("converted",)),
)
INDEXED_TABLES = ("opportunities", "leads")


def usual_scopes(facts: Facts) -> list[Scope]:
    """The scopes the usual questions read: the company, each team, each region."""
    company = Scope.company()
    return [company, *facts.children(company, Level.TEAM), *facts.children(company, Level.REGION)]


def prepare_indexes(
    facts: Facts, scopes: Iterable[Scope], tables: Iterable[str] = INDEXED_TABLES
) -> None:
    """Build, for each of ``scopes``, the indexes the usual KPIs read of ``tables``, with the
    columns they read gathered in date order, so that an answer finds them ready: the same
    ``Facts.ordered`` calls as those KPIs."""
    chosen = set(tables)
    for table, by, names in _GATHERED:
        if table in chosen:
            facts.ordered(table, Scope.company(), by).gather(names)
    for scope in scopes:
        for table, by, only in _USUAL_INDEXES:
            if table in chosen:
                index = facts.ordered(table, scope, by, only=only)
                if scope.level is Level.TEAM:
                    index.keep(_KEPT.get((table, by, only), ()))


def prepared_indexes(facts: Facts, table: str) -> TableIndexes:
    """``table``'s usual indexes for the usual scopes, built on a copy of ``facts`` without
    caches (so that a writer holds one table's at a time): what a snapshot publishes."""
    scratch = facts.uncached()
    prepare_indexes(scratch, usual_scopes(scratch), (table,))
    return scratch.indexes(table)


def _won(facts: Facts, scope: Scope, period: Period, as_of: date) -> Columns | None:
    """Deals won in the elapsed part of ``period``: their amounts and dates."""
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return None
    won = facts.ordered("opportunities", scope, "close", only=("status_code", WON))
    return won.within(elapsed, ("amount", "created"))


def revenue(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    return KpiValue(_money(facts, int(won["amount"].sum())), sample=len(won["amount"]))


def conversion(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Only leads older than the conversion window count: a lead created this morning has not
    had time to convert, and counting it would drag a running month towards 0 %."""
    if as_of < period.start:
        return KpiValue(None, reason=NOT_STARTED)
    mature_by = as_of - timedelta(days=ctx.conversion_window)
    if mature_by < period.start:
        return KpiValue(None, sample=0, reason=Reason.TOO_EARLY)
    cohort = period.to_date(mature_by)
    leads = facts.ordered("leads", scope, "created").within(cohort, ("converted",))
    count = len(leads["created"])
    shown = cohort if cohort.end < period.end else None
    if count == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_LEADS, cohort=shown)
    converted = int((leads["converted"] <= day(as_of)).sum())
    return KpiValue(_ratio(converted, count), sample=count, cohort=shown)


def win_rate(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    deals = facts.ordered("opportunities", scope, "close").within(elapsed, ("status_code",))
    status = deals["status_code"]
    won = int((status == WON).sum())
    closed = won + int((status == LOST).sum())
    if closed == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_DEAL_CLOSED)
    return KpiValue(_ratio(won, closed), sample=closed)


def _open_at(
    facts: Facts, scope: Scope, as_of: date, first: date | None, last: date | None
) -> tuple[Columns, np.ndarray]:
    """Deals open at the end of ``as_of``: created by then (or undated) and not closed by
    then. Returns the columns of the scope's deals due to close from ``first`` to ``last``
    (None: unbounded) and the mask of those open."""
    deals = facts.ordered("opportunities", scope, "close").between(first, last, _DEALS)
    created = deals["created"]
    started = (created <= day(as_of)) | np.isnat(created)
    still_open = (deals["status_code"] == OPEN) | (deals["close"] > day(as_of))
    return deals, started & still_open


def _overdue(
    facts: Facts, deals: Columns, open_now: np.ndarray, as_of: date
) -> tuple[Decimal | None, int]:
    """Open deals among ``deals`` (a period's) whose close date is before ``as_of``: their
    amount (None when there are none) and count."""
    late = open_now & (deals["close"] < day(as_of))
    count = int(late.sum())
    return (_money(facts, int(deals["amount"][late].sum())) if count else None), count


def pipeline(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    deals, open_now = _open_at(facts, scope, as_of, period.start, period.end)
    overdue, late = _overdue(facts, deals, open_now, as_of)
    return KpiValue(
        _money(facts, int(deals["amount"][open_now].sum())),
        sample=int(open_now.sum()),
        overdue=overdue,
        overdue_deals=late,
    )


def new_pipeline(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    created = facts.ordered("opportunities", scope, "created").within(elapsed, ("amount",))
    return KpiValue(_money(facts, int(created["amount"].sum())), sample=len(created["amount"]))


def slipped(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Open deals whose close date was pushed later in the elapsed part of ``period``, each
    once, at its amount when last pushed (the facts' ``slips``, from the history)."""
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    slips = facts.columns("slips", scope, ("date", "id", "amount"))
    chosen = within(slips["date"], elapsed)
    # Rows are in push order: the last push of each deal is the first of the reversed rows.
    ids, amounts = slips["id"][chosen][::-1], slips["amount"][chosen][::-1]
    _, last = np.unique(ids, return_index=True)
    return KpiValue(_money(facts, int(amounts[last].sum())), sample=len(last))


def overdue(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Open amount at ``as_of`` whose close date has passed (whatever the period)."""
    deals, open_now = _open_at(facts, scope, as_of, None, as_of - timedelta(days=1))
    return KpiValue(_money(facts, int(deals["amount"][open_now].sum())), sample=int(open_now.sum()))


def coverage(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    if period.has_ended(as_of):
        return KpiValue(None, reason=Reason.ENDED)
    target = ctx.target("revenue", scope, period)
    if target is None:
        return KpiValue(None, reason=Reason.NO_REVENUE_TARGET)
    booked = revenue(facts, scope, period, as_of, ctx).value or Decimal(0)
    remaining = target - booked
    if remaining <= 0:
        return KpiValue(None, reason=Reason.TARGET_REACHED)
    pipe = pipeline(facts, scope, period, as_of, ctx)
    assert pipe.value is not None  # pipeline always has a value (possibly 0)
    return replace(pipe, value=pipe.value / remaining)


def avg_deal(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    count = len(won["amount"])
    if count == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_DEAL_WON)
    return KpiValue(_money(facts, int(won["amount"].sum())) / count, sample=count)


def sales_cycle(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    won = _won(facts, scope, period, as_of)
    if won is None:
        return KpiValue(None, reason=NOT_STARTED)
    dated = ~np.isnat(won["created"])
    count = int(dated.sum())
    if count == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_DEAL_WON)
    days = (won["close"][dated] - won["created"][dated]).astype("int64")
    return KpiValue(_ratio(float(days.sum()), count), sample=count)


def attainment(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    target = ctx.target("revenue", scope, period)
    if target is None or target <= 0:
        return KpiValue(None, reason=Reason.NO_REVENUE_TARGET)
    booked = revenue(facts, scope, period, as_of, ctx)
    if booked.value is None:
        return booked
    return KpiValue(booked.value / target, sample=booked.sample)


def cpa(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Spend attributed to the scope ÷ its new customers. Spend is booked to a team, a region
    (counted at region level, not shared among its teams) or nobody (company level only); the
    value comes split by those levels so an answer can say why teams look cheaper."""
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    if scope.level is Level.REP:
        # Marketing spend is booked per team or region, never per rep.
        return KpiValue(None, reason=Reason.NOT_PER_REP)
    spend = facts.columns("spend", scope, ("date", "amount", "team", "region"))
    spent = within(spend["date"], elapsed)
    firsts = facts.columns("first_wins", scope, ("close",))
    customers = int(within(firsts["close"], elapsed).sum())
    if not spent.any():
        # The new customers that cost nothing are still counted (a lead source without spend).
        return KpiValue(None, sample=customers, reason=Reason.NO_SPEND)
    if customers == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_NEW_CUSTOMER)
    no_team = pd.isna(spend["team"])
    booked_at = (
        (Level.TEAM, ~no_team),
        (Level.REGION, no_team & ~pd.isna(spend["region"])),
        (Level.COMPANY, no_team & pd.isna(spend["region"])),
    )
    split = tuple(
        (level, _money(facts, int(spend["amount"][spent & rows].sum())) / customers)
        for level, rows in booked_at
        if (spent & rows).any()
    )
    total = _money(facts, int(spend["amount"][spent].sum()))
    return KpiValue(total / customers, sample=customers, spend_split=split)


def _scores(
    facts: Facts, scope: Scope, period: Period, as_of: date, kind: str
) -> np.ndarray | None:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return None
    surveys = facts.columns("surveys", scope, ("date", "kind", "score"))
    chosen = (surveys["kind"] == kind) & within(surveys["date"], elapsed)
    scores: np.ndarray = surveys["score"][chosen]
    return scores


def csat(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    scores = _scores(facts, scope, period, as_of, "csat")
    if scores is None or len(scores) == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_SURVEY)
    return KpiValue(_ratio(float(scores.sum()), len(scores)), sample=len(scores))


def nps(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    scores = _scores(facts, scope, period, as_of, "nps")
    if scores is None or len(scores) == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_SURVEY)
    promoters = int((scores >= 9).sum())
    detractors = int((scores <= 6).sum())
    return KpiValue(_ratio(100 * (promoters - detractors), len(scores)), sample=len(scores))


def turnover(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    if scope.level is Level.REP:
        # One departure out of one rep is 100 %: a rate of a team, not of a person.
        return KpiValue(None, reason=Reason.NOT_PER_REP)
    reps = facts.columns("reps", scope, ("active_from", "active_to"))
    joined, left_on = reps["active_from"], reps["active_to"]

    def active_on(when: date) -> int:
        started = np.isnat(joined) | (joined <= day(when))
        staying = np.isnat(left_on) | (left_on >= day(when))
        return int((started & staying).sum())

    average = (active_on(elapsed.start) + active_on(elapsed.end)) / 2
    if average == 0:
        return KpiValue(None, sample=0, reason=Reason.NO_ACTIVE_REP)
    left = int(within(left_on, elapsed).sum())
    return KpiValue(_ratio(left, average), sample=len(joined))


def ramp_up(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Mean days from a rep's start to their first won deal, over the reps whose first win
    closed in the elapsed part of ``period``. Only reps who started once the data had begun
    count: for an earlier hire, the first win on record need not be their first."""
    elapsed = _to_date(period, as_of)
    if elapsed is None:
        return KpiValue(None, reason=NOT_STARTED)
    reps = facts.columns("reps", scope, ("name", "active_from"))
    start = facts.data_start
    new = ~np.isnat(reps["active_from"])
    if start is not None:
        new &= reps["active_from"] >= day(start)
    if not new.any():
        return KpiValue(None, sample=0, reason=Reason.NO_FIRST_WIN)
    joined = pd.Series(reps["active_from"][new], index=reps["name"][new])
    deals = facts.columns("opportunities", scope, ("rep", "status_code", "close"))
    won = deals["status_code"] == WON
    owner, close = deals["rep"][won], deals["close"][won]
    started = pd.Series(owner).map(joined).to_numpy(dtype="datetime64[D]")
    after = close >= started  # NaT (not a new rep) compares false
    first = pd.Series(close[after]).groupby(owner[after]).min()
    first = first[within(first.to_numpy(dtype="datetime64[D]"), elapsed)]
    days = (first - joined[first.index]).dt.days.tolist()
    if not days:
        return KpiValue(None, sample=0, reason=Reason.NO_FIRST_WIN)
    return KpiValue(_ratio(float(sum(days)), len(days)), sample=len(days))


Compute = Callable[[Facts, Scope, Period, date, Context], KpiValue]


def _on_key_accounts(compute: Compute) -> Compute:
    """``compute`` on the key accounts' deals only."""

    def on_key_accounts(
        facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context
    ) -> KpiValue:
        if ctx.key_accounts is None:
            return KpiValue(None, reason=Reason.NO_KEY_ACCOUNTS)
        return compute(ctx.key_accounts.of(facts), scope, period, as_of, ctx)

    return on_key_accounts


def key_share(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    """Key accounts' revenue ÷ all revenue, over the deals won in the elapsed period."""
    if ctx.key_accounts is None:
        return KpiValue(None, reason=Reason.NO_KEY_ACCOUNTS)
    total = revenue(facts, scope, period, as_of, ctx)
    if total.value is None:
        return total
    if not total.sample:
        return KpiValue(None, sample=0, reason=Reason.NO_DEAL_WON)
    key = revenue(ctx.key_accounts.of(facts), scope, period, as_of, ctx)
    assert key.value is not None  # started, since the whole revenue is
    return KpiValue(key.value / total.value, sample=total.sample)


def forecast(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> KpiValue:
    booked = revenue(facts, scope, period, as_of, ctx)
    if booked.value is None:
        booked = KpiValue(Decimal(0), sample=0)
    if as_of >= period.end:
        return booked
    deals, open_now = _open_at(facts, scope, as_of, period.start, period.end)
    # Deals already dated in the past but still open have slipped: they are not counted, and
    # the answer says how much was left out.
    after = day(as_of) if as_of >= period.start else day(period.start) - np.timedelta64(1, "D")
    rest = open_now & (deals["close"] > after)
    weighted = float((deals["amount"][rest] * deals["probability"][rest]).sum())
    overdue, late = _overdue(facts, deals, open_now, as_of)
    assert booked.value is not None
    return KpiValue(
        booked.value + _money(facts, weighted),
        sample=int(rest.sum()),
        overdue=overdue,
        overdue_deals=late,
    )


def _kpi(
    id: str,
    aliases: tuple[str, ...],
    unit: Unit,
    better: Better,
    judgement: Judgement,
    compute: Compute,
    description: str,
    target_of: str | None = None,
    matures: bool = False,
    additive: bool = False,
    stood: bool = False,
    recorded: bool = False,
    deals: DealLister | None = None,
    by_channel: bool = False,
) -> Kpi:
    return Kpi(
        id,
        aliases,
        unit,
        better,
        judgement,
        compute,
        description,
        target_of,
        matures,
        additive,
        stood,
        recorded,
        deals,
        by_channel,
    )


H, L = Better.HIGHER, Better.LOWER
PACED, LEVEL, SAMPLED = Judgement.PACED, Judgement.LEVEL, Judgement.SAMPLED
KPIS: dict[str, Kpi] = {
    k.id: k
    for k in (
        _kpi("revenue",
             ("revenue", "chiffre d'affaires", "ca", "chiffre", "sales", "bookings", "ventes"),
             Unit.MONEY, H, PACED, revenue, "won amount, by close date", additive=True),
        _kpi("conversion",
             ("lead conversion", "taux de conversion", "taux", "conversion-leads", "conv"),
             Unit.PERCENT, H, SAMPLED, conversion,
             "leads created in the period, older than the conversion window, that converted",
             matures=True, by_channel=True),
        _kpi("win_rate",
             ("win rate", "taux de gain", "taux-de-gain", "winrate", "close rate"),
             Unit.PERCENT, H, SAMPLED, win_rate, "won ÷ (won + lost), by close date"),
        _kpi("pipeline",
             ("pipeline", "pipe", "open pipeline", "pipeline ouvert"),
             Unit.MONEY, H, LEVEL, pipeline, "open amount expected to close in the period",
             stood=True),
        _kpi("new_pipeline",
             ("new pipeline", "nouveau pipeline", "pipeline cree", "created pipeline"),
             Unit.MONEY, H, PACED, new_pipeline, "amount of deals created in the period",
             additive=True, by_channel=True),
        _kpi("slipped",
             ("slipped pipeline", "pipeline glissé", "slipped", "slips", "slipped deals",
              "glissements", "glissement", "affaires glissees", "pipeline glisse"),
             Unit.MONEY, L, LEVEL, slipped,
             "open deals whose close date was pushed later in the period (from the history)",
             recorded=True, deals=slipped_deals),
        _kpi("overdue",
             ("overdue pipeline", "pipeline en retard", "overdue", "overdue deals", "past due",
              "en retard", "affaires en retard"),
             Unit.MONEY, L, LEVEL, overdue, "open amount whose close date has passed",
             stood=True),
        _kpi("coverage",
             ("pipeline coverage", "couverture du pipeline", "couverture"),
             Unit.MULTIPLE, H, LEVEL, coverage, "pipeline ÷ revenue still to book",
             stood=True),
        _kpi("avg_deal",
             ("average deal size", "panier moyen", "panier", "deal size", "average deal",
              "avg deal"),
             Unit.MONEY, H, SAMPLED, avg_deal, "revenue ÷ number of deals won"),
        _kpi("sales_cycle",
             ("sales cycle", "cycle de vente", "cycle", "cycle length"),
             Unit.DAYS, L, SAMPLED, sales_cycle, "mean days from creation to win"),
        _kpi("attainment",
             ("quota attainment", "atteinte de l'objectif", "atteinte", "quota",
              "atteinte objectif"),
             Unit.PERCENT, H, PACED, attainment, "revenue ÷ revenue target"),
        _kpi("cpa",
             ("cost per acquisition", "coût d'acquisition", "cac", "cout", "cout d'acquisition",
              "acquisition cost"),
             Unit.MONEY, L, SAMPLED, cpa, "marketing spend ÷ new customers", by_channel=True),
        _kpi("csat",
             ("customer satisfaction", "satisfaction client", "satisfaction"),
             Unit.SCORE, H, SAMPLED, csat, "mean CSAT score"),
        _kpi("nps",
             ("net promoter score", "recommandation"),
             Unit.SCORE, H, SAMPLED, nps, "% promoters − % detractors"),
        _kpi("turnover",
             ("rep turnover", "attrition", "turn over", "departs"),
             Unit.PERCENT, L, SAMPLED, turnover, "reps who left ÷ average headcount",
             additive=True),
        _kpi("ramp_up",
             ("ramp-up", "ramp up", "montée en puissance", "montee en puissance", "rampe",
              "time to first deal", "premiere affaire", "première affaire"),
             Unit.DAYS, L, SAMPLED, ramp_up,
             "mean days from a new rep's start to their first won deal"),
        _kpi("key_revenue",
             ("ca grands comptes", "chiffre d'affaires grands comptes", "chiffre grands comptes",
              "grands comptes", "key account revenue", "revenue key accounts",
              "key accounts revenue", "key accounts"),
             Unit.MONEY, H, PACED, _on_key_accounts(revenue),
             "won amount of the key accounts, by close date", additive=True),
        _kpi("key_pipeline",
             ("pipeline grands comptes", "pipe grands comptes", "key account pipeline",
              "pipeline key accounts", "key accounts pipeline"),
             Unit.MONEY, H, LEVEL, _on_key_accounts(pipeline),
             "open amount of the key accounts expected to close in the period", stood=True),
        _kpi("key_win_rate",
             ("taux de gain grands comptes", "win rate grands comptes", "key account win rate",
              "win rate key accounts", "key accounts win rate"),
             Unit.PERCENT, H, SAMPLED, _on_key_accounts(win_rate),
             "won ÷ (won + lost) of the key accounts, by close date"),
        _kpi("key_share",
             ("part des grands comptes", "part grands comptes", "key account share",
              "share of key accounts", "key accounts share"),
             Unit.PERCENT, H, SAMPLED, key_share, "key accounts' revenue ÷ all revenue"),
        _kpi("forecast",
             ("forecast", "prévision", "prevision", "prevision de ca", "projection"),
             Unit.MONEY, H, LEVEL, forecast, "revenue to date + weighted open pipeline",
             target_of="revenue", stood=True),
    )
}  # fmt: skip
