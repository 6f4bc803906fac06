"""Answers: value, target, status, like-for-like comparisons and the breakdown."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from metrics.answers import answer
from metrics.evaluation import Policy, Status, Why
from metrics.periods import Grain, Period
from metrics.query import Query
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q3, Q4, company

COMPANY = Scope.company()
POLICY = Policy(business_days=False, min_sample=1)
TARGETS = TargetBook(
    [
        Target("revenue", Grain.QUARTER, COMPANY, Decimal(10_000)),
        Target("revenue", Grain.QUARTER, Scope(Level.TEAM, "A"), Decimal(3_000)),
    ]
)


def test_running_quarter_is_compared_like_for_like() -> None:
    got = answer(
        Query("revenue", COMPANY, Q3, Level.TEAM), date(2026, 9, 15), company(), TARGETS, POLICY
    )
    assert got.value.value == Decimal("4000.00")
    assert got.target == Decimal(10_000)
    assert got.attainment == Decimal("0.4")
    assert got.status is Status.AT_RISK
    # Q3 to 15 Sept is its first 77 days; Q2's first 77 days end on 16 June (April has 30): o7
    assert got.previous.period == Period(Grain.QUARTER, date(2026, 4, 1), date(2026, 6, 16))
    assert got.previous.value == Decimal("700.00")
    assert got.previous.delta == Decimal("3300.00")
    assert got.previous.relative == Decimal("3300") / Decimal("700")
    # a year before, the data had not started (first record: o7 created 1 March 2026): the
    # comparison is "no data", not a change from 0
    assert got.last_year is not None
    assert got.last_year.period == Period(Grain.QUARTER, date(2025, 7, 1), date(2025, 9, 15))
    assert got.last_year.value is None
    assert got.last_year.delta is None
    # best first; team A is ahead of its own 3000 target, team B has none
    rows = [(r.scope.name, r.value.value, r.target, r.status) for r in got.breakdown]
    assert rows == [
        ("A", Decimal("4000.00"), Decimal(3000), Status.ACHIEVED),
        ("B", Decimal("0.00"), None, Status.NO_DATA),
    ]


def test_ended_quarter_is_compared_whole() -> None:
    got = answer(
        Query("win_rate", COMPANY, Q3, Level.REP), date(2026, 11, 1), company(), TARGETS, POLICY
    )
    assert got.value.value == Decimal(3) / 4
    assert got.previous.period == Period(Grain.QUARTER, date(2026, 4, 1), date(2026, 6, 30))
    # Q2 had no closed deal but o7 (won): 100 %
    assert got.previous.value == Decimal(1)
    # rate KPIs without a target: no status
    assert got.status is Status.NO_DATA and got.target is None
    # carol 1/1, bob 1/1, alice 1/2 (o1 won, o2 lost) — lower-sample ties by name
    assert [(r.scope.name, r.value.value) for r in got.breakdown] == [
        ("bob", Decimal(1)),
        ("carol", Decimal(1)),
        ("alice", Decimal("0.5")),
    ]


def test_lower_is_better_breakdown_puts_the_lowest_first() -> None:
    got = answer(
        Query("cpa", COMPANY, Q3, Level.TEAM), date(2026, 10, 1), company(), TARGETS, POLICY
    )
    # team A 600; team B has no spend: no data, last
    assert [(r.scope.name, r.value.value) for r in got.breakdown] == [
        ("A", Decimal("600.00")),
        ("B", None),
    ]


def test_a_level_is_compared_as_it_stood_the_same_day_before_the_period() -> None:
    got = answer(
        Query("pipeline", COMPANY, Q4, Level.TEAM), date(2026, 9, 15), company(), TARGETS, POLICY
    )
    # open on 15 Sept and closing in Q4: o6
    assert got.value.value == Decimal("10000.00")
    # 16 days before Q4 starts; so Q3's pipeline as it stood 16 days before Q3, on 15 June:
    # o1 (won 5 July) and o4 (won 30 Sept) were open then; o2 and o5 did not exist yet
    assert got.previous.period == Q3
    assert got.previous.value == Decimal("3000.00")


def test_a_level_in_a_running_period_is_read_on_the_same_day_of_the_previous_one() -> None:
    got = answer(
        Query("pipeline", COMPANY, Q4, Level.TEAM), date(2026, 10, 1), company(), TARGETS, POLICY
    )
    # Q3's pipeline as of 1 July, whole quarter: o1, o2 (lost 20 July), o3 (created that day), o4
    assert got.previous.value == Decimal("6500.00")


CONVERSION = TargetBook([Target("conversion", Grain.QUARTER, COMPANY, Decimal("0.5"))])


def test_conversion_is_compared_at_equal_maturity() -> None:
    # 10 Jan 2027 is 101 days after Q4 starts; Q3 is read 101 days after its start, 10 Oct:
    # its leads to 10 Sept (l1, l2, l3) with conversions to 10 Oct (l1, l3 on 5 Oct) — not
    # whole Q3 read on 30 Sept, which would miss l3's conversion
    got = answer(
        Query("conversion", COMPANY, Q4, None), date(2027, 1, 10), company(), CONVERSION, POLICY
    )
    assert got.previous.value == Decimal(repr(2 / 3))


def test_a_year_is_compared_once() -> None:
    year = Period(Grain.YEAR, date(2026, 1, 1), date(2026, 12, 31))
    got = answer(
        Query("revenue", COMPANY, year, None), date(2027, 1, 5), company(), TARGETS, POLICY
    )
    assert got.previous.period.key == "2025"
    assert got.last_year is None


def test_rates_are_not_compared_on_the_first_days() -> None:
    # 3 Aug is 3 of 31 days of August: within the 10 % pacing grace
    august = Period(Grain.MONTH, date(2026, 8, 1), date(2026, 8, 31))
    got = answer(Query("csat", COMPANY, august, None), date(2026, 8, 3), company(), TARGETS, POLICY)
    assert got.value.value == Decimal(5)
    assert got.previous.too_early and got.previous.value is None and got.previous.delta is None


def test_ratio_status_in_the_grace_is_too_early() -> None:
    targets = TargetBook([Target("csat", Grain.MONTH, COMPANY, Decimal(4))])
    august = Period(Grain.MONTH, date(2026, 8, 1), date(2026, 8, 31))
    got = answer(Query("csat", COMPANY, august, None), date(2026, 8, 3), company(), targets, POLICY)
    assert (got.status, got.why) == (Status.NO_DATA, Why.TOO_EARLY)


def test_the_trend_reads_earlier_periods_like_for_like() -> None:
    # Q3 to 15 Sept against the first 77 days of the five quarters before: Q2 to 16 June has
    # o7 (700); Q1 2026 started before the data (1 March) and earlier ones too: no data
    got = answer(Query("revenue", COMPANY, Q3, None), date(2026, 9, 15), company(), TARGETS, POLICY)
    assert got.trend == (None, None, None, None, Decimal("700.00"), Decimal("4000.00"))


def test_no_trend_for_a_rate_too_early_to_compare() -> None:
    august = Period(Grain.MONTH, date(2026, 8, 1), date(2026, 8, 31))
    got = answer(Query("csat", COMPANY, august, None), date(2026, 8, 3), company(), TARGETS, POLICY)
    assert got.trend == ()
