"""Revenue to date against the target's pace line, day by day: what the digest's chart draws.

Pure: facts, targets and ``as_of`` in; one ``PacePath`` per scope out. The pace line is the
same expected-to-date as the evaluation's (business or calendar days, holidays), so the chart
and the status never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from metrics.evaluation import Policy
from metrics.facts import WON, Facts, day
from metrics.periods import Period
from metrics.scopes import Scope
from metrics.targets import TargetBook


@dataclass(frozen=True)
class PacePath:
    scope: Scope
    period: Period
    days: tuple[date, ...]  # every day of the period, first to last
    booked: tuple[Decimal, ...]  # revenue won to the end of each day, up to as_of only
    expected: tuple[Decimal, ...] | None  # target × elapsed share, every day; None: no target
    target: Decimal | None


def pace_path(
    facts: Facts,
    scope: Scope,
    period: Period,
    as_of: date,
    targets: TargetBook,
    policy: Policy,
) -> PacePath:
    days = tuple(period.start + timedelta(days=n) for n in range(period.days))
    won = facts.ordered("opportunities", scope, "close", only=("status_code", WON))
    deals = won.within(period, ("amount",))
    closes, amounts = deals["close"], deals["amount"]
    booked = []
    for when in days:
        if when > as_of:
            break
        minor = int(amounts[closes <= day(when)].sum())
        booked.append(Decimal(minor).scaleb(-facts.minor_digits))
    target = targets.value_for("revenue", scope, period)
    expected = None
    if target is not None:
        expected = tuple(
            target
            * Decimal(
                repr(
                    period.elapsed_fraction(
                        when, business_days=policy.business_days, holidays=policy.holidays
                    )
                )
            )
            for when in days
        )
    return PacePath(scope, period, days, tuple(booked), expected, target)
