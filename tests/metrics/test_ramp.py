"""New against tenured reps, from ``factories.company()``: alice (no start date: tenured), bob
(left 15 Aug), carol (started 15 July, first win o4 on 30 Sept, 77 days later)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from metrics.kpis import Context
from metrics.periods import Period
from metrics.ramp import NewRep, months_before, ramp_up_groups
from metrics.scopes import Level, Scope
from tests.metrics.factories import Q3, company

COMPANY = Scope.company()
END_Q3 = date(2026, 9, 30)
MID_SEPT = date(2026, 9, 15)
REP_TARGETS = {"alice": Decimal(2000), "carol": Decimal(8000)}


def rep_targets(kpi: str, scope: Scope, period: Period) -> Decimal | None:
    if kpi == "revenue" and scope.level is Level.REP and period == Q3:
        return REP_TARGETS.get(scope.name)
    return None


CTX = Context(target=rep_targets)


# as_of, new reps' attainment, tenured reps', carol's days to a first win
CASES = [
    # carol 2000 (o4) of 8000; alice 1000 (o1) of 2000; bob left before the quarter's end
    (END_Q3, Decimal("0.25"), Decimal("0.5"), 77),
    # 15 Sept: carol has won nothing yet
    (MID_SEPT, Decimal(0), Decimal("0.5"), None),
]


@pytest.mark.parametrize(("as_of", "new", "tenured", "days"), CASES)
def test_new_against_tenured(as_of: date, new: Decimal, tenured: Decimal, days: int | None) -> None:
    ramp = ramp_up_groups(company(), COMPANY, Q3, as_of, CTX)
    assert ramp.new is not None and ramp.tenured is not None
    assert (ramp.new.reps, ramp.tenured.reps) == (("carol",), ("alice",))
    assert (ramp.new.attainment, ramp.tenured.attainment) == (new, tenured)
    first = None if days is None else date(2026, 9, 30)
    assert ramp.new_reps == (NewRep("carol", date(2026, 7, 15), first, days),)


def test_a_rep_is_new_for_the_configured_months() -> None:
    # three months (since 30 June): carol (15 July) is still new on 30 Sept; two (since 30 July):
    # tenured
    three = ramp_up_groups(company(), COMPANY, Q3, END_Q3, Context(rep_targets, new_rep_months=3))
    one = ramp_up_groups(company(), COMPANY, Q3, END_Q3, Context(rep_targets, new_rep_months=2))
    assert three.new is not None and three.new.reps == ("carol",)
    assert one.new is not None and one.tenured is not None
    assert (one.new.reps, one.tenured.reps) == ((), ("alice", "carol"))
    # both now tenured: (1000 + 2000) ÷ (2000 + 8000)
    assert one.tenured.attainment == Decimal("0.3")


def test_a_group_without_targets_has_no_attainment() -> None:
    ramp = ramp_up_groups(company(), COMPANY, Q3, END_Q3, Context(lambda *_: None))
    assert ramp.new is not None and ramp.new.attainment is None and ramp.new.targeted == 0


def test_a_team_has_only_its_reps() -> None:
    ramp = ramp_up_groups(company(), Scope(Level.TEAM, "A"), Q3, END_Q3, CTX)
    assert ramp.new is not None and ramp.tenured is not None
    assert (ramp.new.reps, ramp.tenured.reps, ramp.new_reps) == ((), ("alice",), ())


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 9, 30), 6, date(2026, 3, 30)),
        (date(2026, 8, 31), 6, date(2026, 2, 28)),  # February is shorter
        (date(2026, 1, 15), 1, date(2025, 12, 15)),
    ],
)
def test_months_before(day: date, months: int, expected: date) -> None:
    assert months_before(day, months) == expected
