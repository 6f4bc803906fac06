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
