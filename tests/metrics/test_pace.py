"""The chart's data: revenue to date against the pace line, checked by hand on the factory."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from metrics.evaluation import Policy
from metrics.pace import pace_path
from metrics.periods import Grain
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q3, company

TEAM_A = Scope(Level.TEAM, "A")
TEAM_B = Scope(Level.TEAM, "B")
TARGETS = TargetBook([Target("revenue", Grain.QUARTER, TEAM_A, Decimal(3000))])
CALENDAR = Policy(business_days=False)


def test_booked_steps_up_on_each_won_deal_and_stops_at_as_of() -> None:
    path = pace_path(company(), TEAM_A, Q3, date(2026, 9, 1), TARGETS, CALENDAR)
    assert len(path.days) == 92 and path.days[0] == date(2026, 7, 1)
    # 1 July – 1 Sept: 63 days drawn; o1 (1000) won 5 July, o3 (3000) on 31 August
    assert len(path.booked) == 63
    assert path.booked[3] == Decimal(0)  # 4 July
    assert path.booked[4] == Decimal("1000.00")  # 5 July
    assert path.booked[61] == Decimal("4000.00")  # 31 August
    # the pace line runs the whole quarter: 46 of 92 days by 15 August is half of 3000
    assert path.expected is not None
    assert path.expected[45] == Decimal(3000) * Decimal(repr(46 / 92))
    assert path.expected[-1] == Decimal(3000)


def test_a_scope_without_target_has_no_pace_line() -> None:
    path = pace_path(company(), TEAM_B, Q3, date(2026, 9, 30), TARGETS, CALENDAR)
    assert path.expected is None and path.target is None
    # o4 (2000) won on the last day
    assert path.booked[-1] == Decimal("2000.00") and path.booked[-2] == Decimal(0)
