"""Evaluation of a KPI against its target at ``as_of``: actual, expected to date (pacing),
forecast at period end, gap, status, and the child scopes that explain the gap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from metrics.facts import Facts
from metrics.kpis import KPIS, Better, Context, Judgement, Kpi, KpiValue
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
    # Contributors left out for an audience that may not see them (rep figures in a channel,
    # another team's reps): counted, so that a message can say how many reps are behind.
    # The metrics core always leaves it at 0; ``conversation.authorization`` sets it.
    withheld: int = 0

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
        return attainment(KPIS[self.kpi], self.actual.value, self.target)


def attainment(kpi: Kpi, actual: Decimal | None, target: Decimal | None) -> Decimal | None:
    """Share of the target reached; for lower-is-better KPIs, target ÷ actual."""
    if actual is None or target is None:
        return None
    if kpi.better is Better.LOWER:
        return None if actual == 0 else target / actual
    return None if target == 0 else actual / target


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
) -> Status:
    """The status of one evaluation. Paced KPIs that reach the target are achieved for good
    (booked revenue does not go away); levels and ratios can still move, so they are only on
    track until the period ends."""
    value = actual.value
    if value is None:
        return Status.NO_DATA
    better = kpi.better
    if kpi.judgement is Judgement.SAMPLED and (actual.sample or 0) < min_sample:
        return Status.NO_DATA
    if _meets(better, value, target):
        if ended or kpi.judgement is Judgement.PACED:
            return Status.ACHIEVED
        return Status.ON_TRACK
    if ended:
        return Status.MISSED
    if kpi.judgement is Judgement.PACED:
        if early:
            return Status.ON_TRACK
        reference = target if expected is None else expected
        behind = not _meets(better, value, _slack(better, reference, tolerance))
        short = forecast is not None and not _meets(
            better, forecast, _slack(better, target, tolerance)
        )
        return Status.AT_RISK if behind or short else Status.ON_TRACK
    if _meets(better, value, _slack(better, target, tolerance)):
        return Status.ON_TRACK
    return Status.AT_RISK


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
    target = targets.value_for(kpi_id, scope, period)
    if target is None:
        return None
    kpi = KPIS[kpi_id]
    ctx = Context(target=targets.value_for)
    actual = kpi.compute(facts, scope, period, as_of, ctx)
    ended = period.has_ended(as_of)
    expected = forecast = None
    early = False
    if kpi.judgement is Judgement.PACED and not ended:
        fraction = period.elapsed_fraction(
            as_of, business_days=policy.business_days, holidays=policy.holidays
        )
        early = Decimal(repr(fraction)) < policy.pacing_grace
        expected = target * Decimal(repr(fraction))
        forecast = _forecast(kpi, facts, scope, period, as_of, ctx, actual)
    min_sample = targets.min_sample(kpi_id, scope, period) or policy.min_sample
    status = decide_status(
        kpi,
        actual,
        target,
        expected=expected,
        forecast=forecast,
        ended=ended,
        min_sample=min_sample,
        tolerance=policy.tolerance,
        early=early,
    )
    contributors: tuple[Evaluation, ...] = ()
    child_level = DEFAULT_BREAKDOWN[scope.level]
    if with_contributors and status.is_alert and child_level is not None:
        contributors = explain(kpi_id, scope, child_level, period, as_of, facts, targets, policy)
    return Evaluation(
        kpi_id, scope, period, as_of, actual, target, expected, forecast, status, contributors
    )


def _forecast(
    kpi: Kpi,
    facts: Facts,
    scope: Scope,
    period: Period,
    as_of: date,
    ctx: Context,
    actual: KpiValue,
) -> Decimal | None:
    """Projected value at period end: revenue uses the weighted pipeline (the forecast KPI);
    other paced KPIs extrapolate the run rate of the elapsed calendar days."""
    if kpi.id in ("revenue", "attainment"):
        projected = KPIS["forecast"].compute(facts, scope, period, as_of, ctx).value
        if kpi.id == "revenue" or projected is None:
            return projected
        target = ctx.target("revenue", scope, period)
        return None if not target else projected / target
    if actual.value is None or as_of < period.start:
        return None
    elapsed = (as_of - period.start).days + 1
    return actual.value * Decimal(period.days) / Decimal(elapsed)


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
    """The child scopes furthest behind their own targets: the ones that explain the gap."""
    behind = []
    for child in facts.children(scope, level):
        found = evaluate(
            kpi_id, child, period, as_of, facts, targets, policy, with_contributors=False
        )
        if found is not None and found.gap is not None and found.gap < 0:
            behind.append(found)
    behind.sort(key=lambda e: (e.gap, e.scope))
    return tuple(behind[: policy.contributors])


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
