"""Slipped and overdue pipeline as KPIs: hand-computed from a few pushes of close dates."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from metrics.evaluation import Policy, Status, evaluate
from metrics.facts import Facts
from metrics.kpis import KPIS, Context
from metrics.periods import Grain, Period
from metrics.scopes import Level, Scope
from metrics.slipped import SlippedDeal, slipped_deals
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q3, Q4, company, frame

NO_TARGET = Context(target=lambda kpi, scope, period: None)
OWNERS = {"alice": ("A", "North"), "bob": ("A", "North"), "carol": ("B", "South")}
# deal, day pushed, days pushed, amount then (cents), owner then
PUSHES = [
    ("o5", "2026-09-10", 20, 400_000, "carol"),
    ("o6", "2026-09-20", 30, 1_000_000, "bob"),
    ("o6", "2026-10-02", 14, 900_000, "bob"),  # pushed again, at a lower amount
    ("o5", "2026-10-05", 10, 380_000, "carol"),
    ("o9", "2026-10-20", 7, 50_000, "alice"),
    ("o6", "2026-11-02", 21, 900_000, "bob"),  # a third push, the second this quarter
]


def facts() -> Facts:
    slips = frame(
        ["id", "name", "date", "days", "amount", "rep", "team", "region"],
        [(i, f"Deal {i}", when, days, amount, rep, *OWNERS[rep])
         for i, when, days, amount, rep in PUSHES],
        "date",
    )  # fmt: skip
    return dataclasses.replace(company(), slips=slips)


# scope, period, as of, slipped amount in cents, deals
SLIPPED = [
    # Q3: o5 and o6 pushed once each.
    (Scope.company(), Q3, date(2026, 9, 30), 1_400_000, 2),
    # Q4 to 26 Nov: o6 and o5 again (each once, at its amount when last pushed), and o9.
    (Scope.company(), Q4, date(2026, 11, 26), 900_000 + 380_000 + 50_000, 3),
    (Scope(Level.TEAM, "A"), Q4, date(2026, 11, 26), 950_000, 2),
    (Scope(Level.TEAM, "B"), Q4, date(2026, 11, 26), 380_000, 1),
    # Only the pushes that happened by as of: on 3 October, o6 alone.
    (Scope.company(), Q4, date(2026, 10, 3), 900_000, 1),
]


@pytest.mark.parametrize(("scope", "period", "as_of", "cents", "deals"), SLIPPED)
def test_slipped_amount(scope: Scope, period: Period, as_of: date, cents: int, deals: int) -> None:
    value = KPIS["slipped"].compute(facts(), scope, period, as_of, NO_TARGET)

    assert value.value == cents / 100
    assert value.sample == deals


A, B = "A", "B"
# scope, period, as of, deals: (name, rep, team, amount, pushes, days), largest first
SLIPPED_DEALS = [
    # Q3: o6 and o5 pushed once each.
    (
        Scope.company(),
        Q3,
        date(2026, 9, 30),
        [("Deal o6", "bob", A, "10000", 1, 30), ("Deal o5", "carol", B, "4000", 1, 20)],
    ),
    # Q4: o6 twice (14 + 21 days, at 9 000 when last pushed), o5 and o9 once; the pushes of
    # Q3 are not counted.
    (
        Scope.company(),
        Q4,
        date(2026, 11, 26),
        [
            ("Deal o6", "bob", A, "9000", 2, 35),
            ("Deal o5", "carol", B, "3800", 1, 10),
            ("Deal o9", "alice", A, "500", 1, 7),
        ],
    ),
    (Scope(Level.TEAM, B), Q4, date(2026, 11, 26), [("Deal o5", "carol", B, "3800", 1, 10)]),
    (Scope(Level.REP, "alice"), Q4, date(2026, 11, 26), [("Deal o9", "alice", A, "500", 1, 7)]),
    # By 1 November o6 had been pushed once this quarter.
    (Scope(Level.REP, "bob"), Q4, date(2026, 11, 1), [("Deal o6", "bob", A, "9000", 1, 14)]),
    (Scope.company(), Q4, date(2026, 9, 1), []),  # the quarter has not started
]


@pytest.mark.parametrize(("scope", "period", "as_of", "expected"), SLIPPED_DEALS)
def test_slipped_deals_say_how_often_and_how_far(
    scope: Scope, period: Period, as_of: date, expected: list[tuple[object, ...]]
) -> None:
    got = slipped_deals(facts(), scope, period, as_of)

    assert got == tuple(
        SlippedDeal(name, rep, team, Decimal(amount), pushes, days)
        for name, rep, team, amount, pushes, days in expected
    )


def test_slipped_before_the_period_starts_has_no_value() -> None:
    value = KPIS["slipped"].compute(facts(), Scope.company(), Q4, date(2026, 9, 1), NO_TARGET)

    assert value.value is None


def test_nothing_slipped_without_history() -> None:
    value = KPIS["slipped"].compute(company(), Scope.company(), Q4, date(2026, 11, 26), NO_TARGET)

    assert (value.value, value.sample) == (0, 0)


def test_overdue_is_open_amount_past_its_close_date() -> None:
    # o5 (open, closing 30 Sep) is overdue on 1 Oct; o6 (open, closing 15 Oct) is not yet.
    on_oct_1 = KPIS["overdue"].compute(company(), Scope.company(), Q4, date(2026, 10, 1), NO_TARGET)
    on_oct_20 = KPIS["overdue"].compute(
        company(), Scope.company(), Q4, date(2026, 10, 20), NO_TARGET
    )
    team_b = KPIS["overdue"].compute(
        company(), Scope(Level.TEAM, "B"), Q4, date(2026, 10, 20), NO_TARGET
    )

    assert (on_oct_1.value, on_oct_1.sample) == (4_000, 1)
    assert (on_oct_20.value, on_oct_20.sample) == (14_000, 2)
    assert (team_b.value, team_b.sample) == (4_000, 1)


@pytest.mark.parametrize(
    ("cap", "status"),
    [
        (Decimal(20_000), Status.ON_TRACK),  # 13 300 € slipped, below the cap
        (Decimal(10_000), Status.AT_RISK),  # above it, while the quarter runs
    ],
)
def test_a_target_on_slipped_amount_is_judged_lower_is_better(cap: Decimal, status: Status) -> None:
    book = TargetBook([Target("slipped", Grain.QUARTER, Scope.company(), cap)])

    found = evaluate(
        "slipped", Scope.company(), Q4, date(2026, 11, 26), facts(), book, Policy(min_sample=1)
    )

    assert found is not None
    assert found.actual.value == Decimal("13300")
    assert found.status is status
