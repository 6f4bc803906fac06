"""Answers to a question: the value, its target and status, comparisons with the previous
period and the same period last year (like for like while the period runs), and the breakdown
by the next level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from metrics.evaluation import Evaluation, Policy, Status, attainment, evaluate
from metrics.facts import Facts
from metrics.kpis import KPIS, Better, Context, Judgement, Kpi, KpiValue
from metrics.periods import Period, like_for_like
from metrics.query import Query
from metrics.scopes import Scope
from metrics.targets import TargetBook


@dataclass(frozen=True)
class Comparison:
    period: Period  # the compared period, clipped like for like
    value: Decimal | None
    delta: Decimal | None  # current − compared, in the KPI's unit
    relative: Decimal | None  # delta ÷ |compared|; None when compared is 0 or missing


@dataclass(frozen=True)
class BreakdownRow:
    scope: Scope
    value: KpiValue
    target: Decimal | None
    status: Status


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
    last_year: Comparison
    breakdown: tuple[BreakdownRow, ...]

    @property
    def attainment(self) -> Decimal | None:
        return attainment(self.kpi, self.value.value, self.target)


def _compare(
    kpi: Kpi, facts: Facts, scope: Scope, current: Period, other: Period, as_of: date, ctx: Context,
    value: Decimal | None,
) -> Comparison:  # fmt: skip
    if kpi.judgement is Judgement.LEVEL:
        # A level (pipeline, forecast) is about the whole period, read as it stood the same
        # number of days from the period's start (also before a period starts).
        compared = other
        read_at = min(other.end, other.start + (as_of - current.start))
    else:
        compared = other if as_of < current.start else like_for_like(current, as_of, other)
        read_at = compared.end
    before = kpi.compute(facts, scope, compared, read_at, ctx).value
    if value is None or before is None:
        return Comparison(compared, before, None, None)
    delta = value - before
    relative = None if before == 0 else delta / abs(before)
    return Comparison(compared, before, delta, relative)


def _status(
    kpi_id: str, scope: Scope, period: Period, as_of: date, facts: Facts, targets: TargetBook,
    policy: Policy,
) -> tuple[KpiValue, Decimal | None, Status, Evaluation | None]:  # fmt: skip
    found = evaluate(kpi_id, scope, period, as_of, facts, targets, policy, with_contributors=False)
    if found is not None:
        return found.actual, found.target, found.status, found
    value = KPIS[kpi_id].compute(facts, scope, period, as_of, Context(targets.value_for))
    return value, None, Status.NO_DATA, None


def _best_first(kpi: Kpi, row: BreakdownRow) -> tuple[int, Decimal, str]:
    value = row.value.value
    if value is None:
        return (1, Decimal(0), row.scope.name)
    return (0, -value if kpi.better is Better.HIGHER else value, row.scope.name)


def answer(query: Query, as_of: date, facts: Facts, targets: TargetBook, policy: Policy) -> Answer:
    kpi = KPIS[query.kpi]
    ctx = Context(targets.value_for)
    value, target, status, found = _status(
        query.kpi, query.scope, query.period, as_of, facts, targets, policy
    )
    previous = _compare(
        kpi, facts, query.scope, query.period, query.period.previous(), as_of, ctx, value.value
    )
    last_year = _compare(
        kpi, facts, query.scope, query.period, query.period.same_period_last_year(), as_of, ctx,
        value.value,
    )  # fmt: skip
    rows = []
    if query.breakdown is not None:
        for child in facts.children(query.scope, query.breakdown):
            c_value, c_target, c_status, _ = _status(
                query.kpi, child, query.period, as_of, facts, targets, policy
            )
            rows.append(BreakdownRow(child, c_value, c_target, c_status))
    rows.sort(key=lambda row: _best_first(kpi, row))
    return Answer(
        kpi, query.scope, query.period, as_of, value, target, status, found, previous, last_year,
        tuple(rows),
    )  # fmt: skip
