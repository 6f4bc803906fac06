"""Targets: a KPI, a period grain, a scope and a value, optionally for one named period.

``TargetBook`` answers "what is the target for this KPI, scope and period?" — the value set for
that exact period, else the grain's standing value, else a coarser period's target. A target
applies to its own grain; for additive KPIs (revenue, new pipeline, turnover) a coarser target
gives a period its share by calendar days, and a period whose finer parts all have targets
(four quarters of a year) gets their sum. Rates and means keep the same target at every grain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from metrics.kpis import KPIS
from metrics.periods import Grain, Period, period_containing
from metrics.scopes import Scope

_COARSER: dict[Grain, tuple[Grain, ...]] = {
    Grain.DAY: (Grain.WEEK, Grain.MONTH, Grain.QUARTER, Grain.YEAR),
    Grain.WEEK: (Grain.MONTH, Grain.QUARTER, Grain.YEAR),
    Grain.MONTH: (Grain.QUARTER, Grain.YEAR),
    Grain.QUARTER: (Grain.YEAR,),
    Grain.YEAR: (),
}


@dataclass(frozen=True)
class Target:
    kpi: str
    grain: Grain
    scope: Scope
    value: Decimal
    period_key: str | None = None  # None: every period of the grain
    min_sample: int | None = None  # overrides the policy's minimum for sampled KPIs


# (kpi, scope, grain, period key): a target removed for one named period.
Removal = tuple[str, Scope, Grain, str]

# The finer grain whose periods tile a coarser one exactly (weeks do not tile months).
_PARTS: dict[Grain, Grain] = {Grain.YEAR: Grain.QUARTER, Grain.QUARTER: Grain.MONTH}

# Lookups a book keeps: a few days of answers; past it the book starts afresh.
_FOUND_KEPT = 50_000


@dataclass(frozen=True)
class Found:
    """A target value for one period and the target it came from (whose ``min_sample``
    applies, whatever the grain of the question)."""

    value: Decimal
    source: Target


class TargetBook:
    """``removed`` names periods that have no target on purpose (an admin switched it off from
    chat): neither the grain's standing value nor a coarser target's share applies to them."""

    def __init__(
        self,
        targets: Iterable[Target],
        fiscal_start_month: int = 1,
        removed: Iterable[Removal] = (),
    ) -> None:
        self.fiscal_start_month = fiscal_start_month
        self._targets = list(targets)
        self._index: dict[tuple[str, Scope, Grain, str | None], Target] = {
            (t.kpi, t.scope, t.grain, t.period_key): t for t in self._targets
        }
        self._removed = frozenset(removed)
        # The book never changes (a change from chat builds a new one), so its answers are kept:
        # one answer with a breakdown looks up a target per child and per comparison.
        self._found: dict[tuple[str, Scope, Period], Found | None] = {}

    def __iter__(self) -> Iterator[Target]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def find(self, kpi: str, scope: Scope, period: Period) -> Target | None:
        """The target set for exactly this period's grain (named period first)."""
        if (kpi, scope, period.grain, period.key) in self._removed:
            return None
        return self._index.get((kpi, scope, period.grain, period.key)) or self._index.get(
            (kpi, scope, period.grain, None)
        )

    def value_for(self, kpi: str, scope: Scope, period: Period) -> Decimal | None:
        found = self.lookup(kpi, scope, period)
        return None if found is None else found.value

    def lookup(self, kpi: str, scope: Scope, period: Period) -> Found | None:
        """The target for ``kpi`` over ``period``, borrowing another KPI's (forecast judged
        against the revenue target) when it has none of its own."""
        key = (kpi, scope, period)
        if key not in self._found:
            if len(self._found) >= _FOUND_KEPT:
                self._found.clear()
            self._found[key] = self._borrowing(kpi, scope, period)
        return self._found[key]

    def _borrowing(self, kpi: str, scope: Scope, period: Period) -> Found | None:
        own = self._lookup(kpi, scope, period)
        borrowed = KPIS[kpi].target_of
        if own is None and borrowed is not None:
            return self._lookup(borrowed, scope, period)
        return own

    def _lookup(self, kpi: str, scope: Scope, period: Period) -> Found | None:
        if (kpi, scope, period.grain, period.key) in self._removed:
            return None
        exact = self.find(kpi, scope, period)
        if exact is not None:
            return Found(exact.value, exact)
        additive = KPIS[kpi].additive
        for grain in _COARSER[period.grain]:
            outer = period_containing(grain, period.start, self.fiscal_start_month)
            if not (outer.start <= period.start and period.end <= outer.end):
                continue  # an ISO week can straddle two months: no clean share
            found = self.find(kpi, scope, outer)
            if found is None:
                continue
            if additive:
                return Found(found.value * Decimal(period.days) / Decimal(outer.days), found)
            return Found(found.value, found)
        return self._sum_of_parts(kpi, scope, period) if additive else None

    def _sum_of_parts(self, kpi: str, scope: Scope, period: Period) -> Found | None:
        """The sum of the targets of the periods that tile ``period``, if each has one."""
        grain = _PARTS.get(period.grain)
        if (
            grain is None
            or period.end
            != period_containing(period.grain, period.start, self.fiscal_start_month).end
        ):
            return None
        part = period_containing(grain, period.start, self.fiscal_start_month)
        total, source = Decimal(0), None
        while part.start <= period.end:
            found = self.find(kpi, scope, part)
            if found is None:
                return None
            total += found.value
            source = source or found
            part = part.shift(1)
        return None if source is None else Found(total, source)

    def min_sample(self, kpi: str, scope: Scope, period: Period) -> int | None:
        """The minimum sample of the target that applies (a quarterly target's own minimum
        also judges a month of that quarter)."""
        found = self.lookup(kpi, scope, period)
        return None if found is None else found.source.min_sample

    def active(self, as_of: date, report_ended_for_days: int) -> list[tuple[Target, Period]]:
        """Every target instance to evaluate at ``as_of``: the period of its grain containing
        ``as_of`` and, for ``report_ended_for_days`` after it ended, the previous one (so that a
        missed quarter is reported in the first days of the next)."""
        seen: set[tuple[str, Scope, Period]] = set()
        out: list[tuple[Target, Period]] = []
        for target in self._targets:
            current = period_containing(target.grain, as_of, self.fiscal_start_month)
            candidates = [current]
            if as_of - timedelta(days=report_ended_for_days) < current.start:
                candidates.insert(0, current.previous())
            for period in candidates:
                if target.period_key is not None and target.period_key != period.key:
                    continue
                if self.find(target.kpi, target.scope, period) is not target:
                    continue  # a named-period target overrides the standing one
                key = (target.kpi, target.scope, period)
                if key not in seen:
                    seen.add(key)
                    out.append((target, period))
        return out
