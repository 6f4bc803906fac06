"""Evaluation of a KPI against its target at ``as_of``: actual, expected to date (pacing),
forecast at period end, gap, status and why, and the child scopes that explain the gap.

Paced KPIs with a forecast are judged on the forecast: it knows the pipeline, where the pace
only knows the calendar. Behind pace with a forecast that covers the target is on track (and
says so); ahead of pace with a forecast short of it is at risk. Expected to date and the
run-rate forecast read the same calendar (``Policy.business_days``), so for KPIs forecast by
run rate the two signals always agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from metrics.facts import Facts
from metrics.key_accounts import KeyAccounts
from metrics.kpis import KPIS, Better, Context, Judgement, Kpi, KpiValue, Reason
from metrics.periods import Period
from metrics.scopes import DEFAULT_BREAKDOWN, Level, Scope
from metrics.targets import TargetBook


class Status(StrEnum):
    ACHIEVED = "achieved"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    MISSED = "missed"
    NO_DATA = "no_data"

    @property
    def is_alert(self) -> bool:
        return self in (Status.AT_RISK, Status.MISSED)


class Why(StrEnum):
    """What a status rests on; every alert carries one, and every message shows it."""

    BEHIND_PACE = "behind_pace"  # at risk: actual below expected to date, beyond tolerance
    FORECAST_SHORT = "forecast_short"  # at risk: forecast below target, beyond tolerance
    FORECAST_COVERS = "forecast_covers"  # on track although behind pace: the forecast covers it
    OFF_TARGET = "off_target"  # at risk: a rate or level worse than target, beyond tolerance
    ENDED_SHORT = "ended_short"  # missed: the period ended short of target
    TOO_EARLY = "too_early"  # not judged: within the pacing grace, or an immature cohort
    SMALL_SAMPLE = "small_sample"  # not judged: fewer observations than the minimum
    NO_VALUE = "no_value"  # not judged: nothing to measure


@dataclass(frozen=True)
class Verdict:
    status: Status
    why: Why | None = None


@dataclass(frozen=True)
class Policy:
    """How strictly targets are judged (from the config's ``evaluation`` section)."""

    tolerance: Decimal = Decimal("0.05")
    business_days: bool = True
    holidays: frozenset[date] = frozenset()
    min_sample: int = 20
    report_ended_for_days: int = 7
    contributors: int = 3
    # Share of a period during which paced KPIs are not called at risk: on its first days a
    # period has too little behind it to judge the pace or the forecast.
    pacing_grace: Decimal = Decimal("0.1")
    # Days a lead is given to convert: younger leads are left out of a conversion rate.
    conversion_window: int = 30
    # Which accounts are key accounts (None: not configured), and a new rep's months.
    key_accounts: KeyAccounts | None = None
    new_rep_months: int = 6

    def context(self, targets: TargetBook) -> Context:
        return Context(
            targets.value_for, self.conversion_window, self.key_accounts, self.new_rep_months
        )


@dataclass(frozen=True)
class Evaluation:
    kpi: str
    scope: Scope
    period: Period
    as_of: date
    actual: KpiValue
    target: Decimal
    expected: Decimal | None  # target × pace for paced KPIs, while the period runs
    forecast: Decimal | None  # projected value at period end, for paced KPIs
    status: Status
    contributors: tuple[Evaluation, ...] = ()
    # How many child scopes are behind their own targets, in all (``contributors`` names the
    # furthest few of them).
    behind: int = 0
    # Of those behind, how many an audience is not told the names of (rep figures in a channel,
    # another team's reps), so that a message can say how many reps are behind. The metrics
    # core always leaves it at 0; ``conversation.authorization`` sets it.
    withheld: int = 0
    why: Why | None = None  # what the status rests on: always set for at risk and missed

    @property
    def reference(self) -> Decimal:
        return self.target if self.expected is None else self.expected

    @property
    def gap(self) -> Decimal | None:
        """Distance to the reference in the KPI's unit; negative means behind, for every KPI
        (lower-is-better ones included)."""
        if self.actual.value is None:
            return None
        diff = self.actual.value - self.reference
        return -diff if KPIS[self.kpi].better is Better.LOWER else diff

    @property
    def attainment(self) -> Decimal | None:
        return attainment(KPIS[self.kpi], self.actual.value, self.target, self.status)

    @property
    def better_than_target(self) -> Decimal | None:
        return better_than_target(KPIS[self.kpi], self.actual.value, self.target, self.status)


def _set_against_target(kpi: Kpi, actual: Decimal | None, target: Decimal | None,
                        status: Status) -> bool:  # fmt: skip
    """A rate or mean too young or on too few observations to be judged ("too early to judge")
    is not read against its target either: "79 % better than target" would be a judgement."""
    unjudged = kpi.judgement is Judgement.SAMPLED and status is Status.NO_DATA
    return actual is not None and bool(target) and not unjudged


def attainment(
    kpi: Kpi, actual: Decimal | None, target: Decimal | None, status: Status
) -> Decimal | None:
    """Share of the target reached (actual ÷ target), for higher-is-better KPIs only: a CPA of
    375 € against 1 800 € is not "480 % attained" but 79 % better than target."""
    if not _set_against_target(kpi, actual, target, status) or kpi.better is Better.LOWER:
        return None
    assert actual is not None and target
    return actual / target


def better_than_target(
    kpi: Kpi, actual: Decimal | None, target: Decimal | None, status: Status
) -> Decimal | None:
    """For lower-is-better KPIs, how far under the target the value is, as a share of the
    target: 375 against 1 800 is 0.79 (79 % better); 2 000 against 1 800 is -0.11 (worse)."""
    if not _set_against_target(kpi, actual, target, status) or kpi.better is Better.HIGHER:
        return None
    assert actual is not None and target
    return (target - actual) / target


def headroom(evaluation: Evaluation, tolerance: Decimal) -> Decimal | None:
    """How far the figure that decides the status (the forecast for paced KPIs that have one,
    else the value) stands beyond its at-risk threshold, as a share of what it is compared
    with: positive on the safe side, negative when alerting. An alert may resolve at once
    when it is clearly back, not on a hair's breadth over the line."""
    kpi = KPIS[evaluation.kpi]
    figure: Decimal | None = evaluation.actual.value
    reference = evaluation.reference
    if evaluation.forecast is not None and kpi.judgement is Judgement.PACED:
        figure, reference = evaluation.forecast, evaluation.target
    if figure is None or not reference:
        return None
    threshold = _slack(kpi.better, reference, tolerance)
    beyond = figure - threshold if kpi.better is Better.HIGHER else threshold - figure
    return beyond / abs(reference)


def _meets(better: Better, value: Decimal, threshold: Decimal) -> bool:
    return value >= threshold if better is Better.HIGHER else value <= threshold


def _slack(better: Better, threshold: Decimal, tolerance: Decimal) -> Decimal:
    """``threshold`` loosened by ``tolerance`` in the direction that forgives."""
    factor = 1 - tolerance if better is Better.HIGHER else 1 + tolerance
    return threshold * factor


def decide_status(
    kpi: Kpi,
    actual: KpiValue,
    target: Decimal,
    *,
    expected: Decimal | None,
    forecast: Decimal | None,
    ended: bool,
    min_sample: int,
    tolerance: Decimal,
    early: bool = False,
) -> Verdict:
    """The status of one evaluation and why. Paced KPIs that reach the target are achieved for
    good (booked revenue does not go away); levels and ratios can still move, so they are only
    on track until the period ends. ``early`` (within the pacing grace) judges nothing but a
    paced KPI already at target."""
    value = actual.value
    if value is None:
        too_early = actual.reason is Reason.TOO_EARLY or (early and not ended)
        return Verdict(Status.NO_DATA, Why.TOO_EARLY if too_early else Why.NO_VALUE)
    better = kpi.better
    sampled = kpi.judgement is Judgement.SAMPLED
    if sampled and early and not ended:
        return Verdict(Status.NO_DATA, Why.TOO_EARLY)
    if sampled and (actual.sample or 0) < min_sample:
        # A conversion rate cut to its mature leads fills up as the leads age.
        immature = actual.cohort is not None and not ended
        return Verdict(Status.NO_DATA, Why.TOO_EARLY if immature else Why.SMALL_SAMPLE)
    if _meets(better, value, target):
        if ended or kpi.judgement is Judgement.PACED:
            return Verdict(Status.ACHIEVED)
        return Verdict(Status.ON_TRACK)
    if ended:
        return Verdict(Status.MISSED, Why.ENDED_SHORT)
    if kpi.judgement is Judgement.PACED:
        if early:
            return Verdict(Status.NO_DATA, Why.TOO_EARLY)
        reference = target if expected is None else expected
        behind = not _meets(better, value, _slack(better, reference, tolerance))
        if forecast is None:
            return Verdict(Status.AT_RISK, Why.BEHIND_PACE) if behind else Verdict(Status.ON_TRACK)
        if not _meets(better, forecast, _slack(better, target, tolerance)):
            return Verdict(Status.AT_RISK, Why.FORECAST_SHORT)
        return Verdict(Status.ON_TRACK, Why.FORECAST_COVERS if behind else None)
    if _meets(better, value, _slack(better, target, tolerance)):
        return Verdict(Status.ON_TRACK)
    return Verdict(Status.AT_RISK, Why.OFF_TARGET)


def evaluate(
    kpi_id: str,
    scope: Scope,
    period: Period,
    as_of: date,
    facts: Facts,
    targets: TargetBook,
    policy: Policy,
    *,
    with_contributors: bool = True,
) -> Evaluation | None:
    """Evaluate ``kpi_id`` for ``scope`` over ``period`` at ``as_of``; None without a target."""
    found = targets.lookup(kpi_id, scope, period)
    if found is None:
        return None
    target = found.value
    kpi = KPIS[kpi_id]
    ctx = policy.context(targets)
    actual = kpi.compute(facts, scope, period, as_of, ctx)
    ended = period.has_ended(as_of)
    expected = forecast = None
    fraction = Decimal(
        repr(
            period.elapsed_fraction(
                as_of, business_days=policy.business_days, holidays=policy.holidays
            )
        )
    )
    early = not ended and fraction < policy.pacing_grace
    if kpi.judgement is Judgement.PACED and not ended:
        expected = target * fraction
        forecast = _forecast(kpi, facts, scope, period, as_of, ctx, actual, fraction)
    verdict = decide_status(
        kpi,
        actual,
        target,
        expected=expected,
        forecast=forecast,
        ended=ended,
        min_sample=found.source.min_sample or policy.min_sample,
        tolerance=policy.tolerance,
        early=early,
    )
    status = verdict.status
    behind: tuple[Evaluation, ...] = ()
    child_level = DEFAULT_BREAKDOWN[scope.level]
    if with_contributors and status.is_alert and child_level is not None:
        behind = explain(kpi_id, scope, child_level, period, as_of, facts, targets, policy)
    return Evaluation(
        kpi_id,
        scope,
        period,
        as_of,
        actual,
        target,
        expected,
        forecast,
        status,
        behind[: policy.contributors],
        behind=len(behind),
        why=verdict.why,
    )


def _forecast(
    kpi: Kpi,
    facts: Facts,
    scope: Scope,
    period: Period,
    as_of: date,
    ctx: Context,
    actual: KpiValue,
    fraction: Decimal,
) -> Decimal | None:
    """Projected value at period end: revenue uses the weighted pipeline (the forecast KPI);
    other paced KPIs extrapolate the run rate over the elapsed share of the period, on the
    same calendar as expected to date."""
    if kpi.id in ("revenue", "attainment"):
        projected = KPIS["forecast"].compute(facts, scope, period, as_of, ctx).value
        if kpi.id == "revenue" or projected is None:
            return projected
        target = ctx.target("revenue", scope, period)
        return None if not target else projected / target
    if actual.value is None or not fraction:
        return None
    return actual.value / fraction


def explain(
    kpi_id: str,
    scope: Scope,
    level: Level,
    period: Period,
    as_of: date,
    facts: Facts,
    targets: TargetBook,
    policy: Policy,
) -> tuple[Evaluation, ...]:
    """The child scopes behind their own targets, furthest behind first: the first few explain
    the gap."""
    behind = []
    for child in facts.children(scope, level):
        found = evaluate(
            kpi_id, child, period, as_of, facts, targets, policy, with_contributors=False
        )
        if found is not None and found.gap is not None and found.gap < 0:
            behind.append(found)
    behind.sort(key=lambda e: (e.gap, e.scope))
    return tuple(behind)


def evaluate_all(
    as_of: date, facts: Facts, targets: TargetBook, policy: Policy
) -> list[Evaluation]:
    """Every active target instance at ``as_of``, in the order of the config."""
    out = []
    for target, period in targets.active(as_of, policy.report_ended_for_days):
        found = evaluate(target.kpi, target.scope, period, as_of, facts, targets, policy)
        if found is not None:
            out.append(found)
    return out
