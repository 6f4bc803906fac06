"""Answers to a question: the value, its target and status, comparisons with the previous
period and the same period last year (like for like while the period runs), and the breakdown
by the next level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from metrics.evaluation import (
    Evaluation,
    Policy,
    Status,
    Why,
    attainment,
    better_than_target,
    evaluate,
)
from metrics.facts import Facts
from metrics.kpis import KPIS, Better, Context, Judgement, Kpi, KpiValue
from metrics.periods import Grain, Period, like_for_like
from metrics.query import Query
from metrics.ramp import RampUp, ramp_up_groups
from metrics.scopes import Scope
from metrics.slipped import SlippedDeal
from metrics.sources import SourceRow, by_channel
from metrics.targets import TargetBook

TREND_PERIODS = 6


@dataclass(frozen=True)
class Comparison:
    period: Period  # the compared period, clipped like for like
    value: Decimal | None
    delta: Decimal | None  # current − compared, in the KPI's unit
    relative: Decimal | None  # delta ÷ |compared|; None when compared is 0 or missing
    # Not compared: a rate on too few days or observations to compare like for like.
    too_early: bool = False
    # A level read before the recorded history starts: rebuilt from today's records, so it
    # already knows what happened to its deals since (won, lost, pushed, resized).
    rebuilt: bool = False


@dataclass(frozen=True)
class BreakdownRow:
    scope: Scope
    value: KpiValue
    target: Decimal | None
    status: Status
    why: Why | None = None


@dataclass(frozen=True)
class Answer:
    kpi: Kpi
    scope: Scope
    period: Period
    as_of: date
    value: KpiValue
    target: Decimal | None
    status: Status
    evaluation: Evaluation | None
    previous: Comparison
    last_year: Comparison | None  # None when it is the previous period (a year's)
    breakdown: tuple[BreakdownRow, ...]
    why: Why | None = None
    # The last TREND_PERIODS values, oldest first, this period's last; each earlier period
    # read like its comparison (like for like while this one runs). None: no data.
    trend: tuple[Decimal | None, ...] = ()
    # Some earlier figure (a comparison or the trend) was rebuilt from today's records, and the
    # first day the history holds (None: nothing recorded yet).
    rebuilt: bool = False
    history_since: date | None = None
    # The deals behind the figure when the KPI lists them (``Kpi.deals``), largest first.
    deals: tuple[SlippedDeal, ...] = ()
    # "… par source": the figure per lead source, in place of the breakdown by scope; () when
    # asked and no lead or spend names a source, None when not asked.
    sources: tuple[SourceRow, ...] | None = None
    # Ramp-up: the new reps against the tenured ones, and each new rep's first win.
    ramp: RampUp | None = None

    @property
    def attainment(self) -> Decimal | None:
        return attainment(self.kpi, self.value.value, self.target, self.status)

    @property
    def better_than_target(self) -> Decimal | None:
        return better_than_target(self.kpi, self.value.value, self.target, self.status)


def _compare(
    kpi: Kpi, facts: Facts, scope: Scope, current: Period, other: Period, as_of: date, ctx: Context,
    value: Decimal | None,
) -> Comparison:  # fmt: skip
    if kpi.judgement is Judgement.LEVEL or kpi.matures:
        # A level (pipeline, forecast) is read as it stood, and a conversion cohort counted,
        # the same number of days from the period's start (also before a period starts): a
        # cohort given the same time to convert.
        compared = other
        read_at = other.start + (as_of - current.start)
        if kpi.judgement is Judgement.LEVEL:
            # As far into the earlier period, or, once the period asked about has ended, as
            # long after its end: an ended quarter's coverage ("period ended") is not set
            # against the last day of the one before, when its deals had not closed (0.0×).
            ended = as_of > current.end
            read_at = other.end + (as_of - current.end) if ended else min(other.end, read_at)
    else:
        compared = other if as_of < current.start else like_for_like(current, as_of, other)
        read_at = compared.end
    if facts.data_start is None or compared.start < facts.data_start:
        # Before the data starts a period is unknown, not zero.
        return Comparison(compared, None, None, None)
    if kpi.recorded and not _recorded_since(facts, compared.start):
        # Nor is one the history began recording after it started: its slips went unseen.
        return Comparison(compared, None, None, None)
    source, rebuilt = _as_it_stood(kpi, facts, read_at, as_of)
    before = kpi.compute(source, scope, compared, read_at, ctx).value
    if value is None or before is None:
        return Comparison(compared, before, None, None, rebuilt=rebuilt)
    delta = value - before
    relative = None if before == 0 else delta / abs(before)
    return Comparison(compared, before, delta, relative, rebuilt=rebuilt)


def _recorded_since(facts: Facts, day: date) -> bool:
    history = facts.history
    return history is not None and history.since is not None and history.since <= day


def _as_it_stood(kpi: Kpi, facts: Facts, read_at: date, as_of: date) -> tuple[Facts, bool]:
    """The facts a KPI read at ``read_at`` should see, and whether they were rebuilt from
    today's records: a level of the deals (pipeline, forecast) needs them as they stood at the
    end of that day, which only the history knows."""
    if not kpi.stood or read_at >= as_of:
        return facts, False
    past = None if facts.history is None else facts.history.at(read_at)
    return (facts, True) if past is None else (past, False)


def _status(
    kpi_id: str, scope: Scope, period: Period, as_of: date, facts: Facts, targets: TargetBook,
    policy: Policy,
) -> tuple[KpiValue, Decimal | None, Status, Evaluation | None]:  # fmt: skip
    found = evaluate(kpi_id, scope, period, as_of, facts, targets, policy, with_contributors=False)
    if found is not None:
        return found.actual, found.target, found.status, found
    value = KPIS[kpi_id].compute(facts, scope, period, as_of, policy.context(targets))
    return value, None, Status.NO_DATA, None


def _too_early_to_compare(
    kpi: Kpi, value: KpiValue, query: Query, as_of: date, targets: TargetBook, policy: Policy
) -> bool:
    """A rate on the first days of a period, or on fewer observations than it needs to be
    judged, moves too much to be compared like for like (one day's CPA against another's)."""
    if kpi.judgement is not Judgement.SAMPLED or not query.period.is_running(as_of):
        return False
    fraction = query.period.elapsed_fraction(
        as_of, business_days=policy.business_days, holidays=policy.holidays
    )
    minimum = targets.min_sample(kpi.id, query.scope, query.period) or policy.min_sample
    return Decimal(repr(fraction)) < policy.pacing_grace or (value.sample or 0) < minimum


def _best_first(kpi: Kpi, row: BreakdownRow) -> tuple[int, Decimal, str]:
    value = row.value.value
    if value is None:
        return (1, Decimal(0), row.scope.name)
    return (0, -value if kpi.better is Better.HIGHER else value, row.scope.name)


def answer(query: Query, as_of: date, facts: Facts, targets: TargetBook, policy: Policy) -> Answer:
    kpi = KPIS[query.kpi]
    ctx = policy.context(targets)
    value, target, status, found = _status(
        query.kpi, query.scope, query.period, as_of, facts, targets, policy
    )
    periods = [query.period.previous()]
    if query.period.grain is not Grain.YEAR:
        periods.append(query.period.same_period_last_year())
    trend: tuple[Decimal | None, ...] = ()
    rebuilt = False
    if _too_early_to_compare(kpi, value, query, as_of, targets, policy):
        compared = [
            Comparison(like_for_like(query.period, as_of, p), None, None, None, too_early=True)
            for p in periods
        ]
    else:
        compared = [
            _compare(kpi, facts, query.scope, query.period, p, as_of, ctx, value.value)
            for p in periods
        ]
        # The comparisons already read two of these periods (a quarter's last year is 4 back).
        known = dict(zip(periods, compared, strict=True))
        earlier = [
            known[p] if p in known else
            _compare(kpi, facts, query.scope, query.period, p, as_of, ctx, None)
            for p in (query.period.shift(-n) for n in range(1, TREND_PERIODS))
        ]  # fmt: skip
        trend = (*(c.value for c in reversed(earlier)), value.value)
        rebuilt = any(c.rebuilt for c in (*compared, *earlier))
    rows = []
    sources = (
        by_channel(kpi, facts, query.scope, query.period, as_of, ctx) if query.by_channel else None
    )
    if query.breakdown is not None and not query.by_channel:
        for child in facts.children(query.scope, query.breakdown):
            c_value, c_target, c_status, c_found = _status(
                query.kpi, child, query.period, as_of, facts, targets, policy
            )
            why = None if c_found is None else c_found.why
            rows.append(BreakdownRow(child, c_value, c_target, c_status, why))
    rows.sort(key=lambda row: _best_first(kpi, row))
    deals = () if kpi.deals is None else kpi.deals(facts, query.scope, query.period, as_of)
    ramp = (
        ramp_up_groups(facts, query.scope, query.period, as_of, ctx)
        if kpi.id == "ramp_up"
        else None
    )
    return Answer(
        kpi, query.scope, query.period, as_of, value, target, status, found, compared[0],
        compared[1] if len(compared) > 1 else None, tuple(rows),
        None if found is None else found.why, trend, rebuilt,
        None if facts.history is None else facts.history.since, deals, sources, ramp,
    )  # fmt: skip
