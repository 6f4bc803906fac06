"""``TargetBook`` with periods switched off (``removed``): a removed period has no target, not
its grain's standing value nor a coarser target's share; other periods keep theirs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from metrics.periods import Grain, parse_period
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook

LYON = Scope(Level.TEAM, "Lyon")
TODAY = date(2026, 11, 26)

BOOK = TargetBook(
    [
        Target("revenue", Grain.QUARTER, LYON, Decimal(360_000)),  # every quarter
        Target("revenue", Grain.YEAR, LYON, Decimal(1_460_000)),  # 2026: 365 days, 4 000 a day
        Target("revenue", Grain.QUARTER, LYON, Decimal(500_000), "2026-Q3"),
    ],
    removed=[
        ("revenue", LYON, Grain.QUARTER, "2026-Q4"),
        ("revenue", LYON, Grain.QUARTER, "2026-Q3"),
        ("revenue", LYON, Grain.YEAR, "2027"),
    ],
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("2026-Q2", Decimal(360_000)),  # untouched: the standing quarterly value
        ("2026-Q4", None),  # switched off: the standing value does not apply
        ("2026-Q3", None),  # switched off wins over a value named for that period
        ("2026-11", Decimal(120_000)),  # a month of Q4: Q4 has no target, the year's share
        ("2027", None),  # the year switched off
        ("2027-Q1", Decimal(360_000)),  # its quarters keep the standing quarterly value
    ],
)
def test_removed_periods_have_no_target(key, expected):
    period = parse_period(key, TODAY)
    value = BOOK.value_for("revenue", LYON, period)
    assert value == expected if expected is None else value.quantize(Decimal(1)) == expected


def test_removed_periods_are_not_evaluated():
    active = {(t.kpi, p.key) for t, p in BOOK.active(TODAY, report_ended_for_days=7)}
    assert active == {("revenue", "2026")}


QUARTERS = TargetBook(
    [
        Target("revenue", Grain.QUARTER, LYON, Decimal(100_000)),
        Target("revenue", Grain.QUARTER, LYON, Decimal(150_000), "2026-Q4"),
        Target("turnover", Grain.YEAR, LYON, Decimal("0.146")),
        Target("win_rate", Grain.QUARTER, LYON, Decimal("0.3"), min_sample=10),
        Target("win_rate", Grain.YEAR, LYON, Decimal("0.3")),
        Target("attainment", Grain.YEAR, LYON, Decimal(1)),
    ]
)


@pytest.mark.parametrize(
    ("kpi", "key", "expected"),
    [
        # four quarterly targets make the year's: 100 000 × 3 + 150 000
        ("revenue", "2026", Decimal(450_000)),
        # a month of Q4 gets its share by days: 150 000 × 30 / 92
        ("revenue", "2026-11", Decimal(150_000) * 30 / 92),
        # turnover accumulates over the year: a quarter's share by days, 14.6 % × 92 / 365
        ("turnover", "2026-Q4", Decimal("0.146") * 92 / 365),
        # a rate keeps its target at every grain
        ("win_rate", "2026-10", Decimal("0.3")),
        # an attainment target is a share, not an amount: not prorated
        ("attainment", "2026-Q4", Decimal(1)),
    ],
)
def test_target_grain_rules(kpi: str, key: str, expected: Decimal) -> None:
    assert QUARTERS.value_for(kpi, LYON, parse_period(key, TODAY)) == expected


def test_a_month_judged_on_a_quarterly_target_uses_that_targets_minimum_sample() -> None:
    # October has no win-rate target of its own: Q4's applies, with its minimum of 10
    assert QUARTERS.min_sample("win_rate", LYON, parse_period("2026-10", TODAY)) == 10
    assert QUARTERS.min_sample("win_rate", LYON, parse_period("2026-Q4", TODAY)) == 10
