"""Answers: value, target, status, like-for-like comparisons and the breakdown."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from metrics.answers import answer
from metrics.evaluation import Policy, Status, Why
from metrics.facts import DealHistory, Facts
from metrics.kpis import Reason
from metrics.periods import Grain, Period
from metrics.query import Query
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q3, Q4, company, frame
from tests.metrics.test_slipped import facts as slipped_facts

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


def test_a_level_of_an_ended_period_is_compared_as_long_after_the_earlier_ones_end() -> None:
    got = answer(
        Query("coverage", COMPANY, Q3, None), date(2026, 11, 1), company(), TARGETS, POLICY
    )
    # Q3 ended 32 days before: its coverage is "ended", and so is Q2's read 32 days after its
    # end (2 August). Read on Q2's last day it was 0.0×: pipeline closing in Q2 still open on
    # 30 June, none, over 10 000 - 700 (o7) still to book.
    assert (got.value.value, got.value.reason) == (None, Reason.ENDED)
    assert got.previous is not None and got.previous.period.key == "2026-Q2"
    assert (got.previous.value, got.previous.delta) == (None, None)
    # A pipeline read the same way: Q3's deals still open on 1 November (o5, overdue) against
    # Q2's still open on 2 August (none).
    pipe = answer(
        Query("pipeline", COMPANY, Q3, None), date(2026, 11, 1), company(), TARGETS, POLICY
    )
    assert (pipe.value.value, pipe.previous.value) == (Decimal("4000.00"), Decimal("0.00"))


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


def _stood_on_15_july(asked: list[date]) -> DealHistory:
    """The history of the test company as the CRM held it at the end of 15 July: o1 already
    won; o2, o3 and o4 still open at their probabilities then (o3 at 3200, cut to 3000 when
    won); o5, o6 not created yet; o7 won in April."""
    current = company()
    # id, rep, team, region, account, status, amount (cents), created, close, probability
    rows = [
        ("o1", "alice", "A", "North", "Acme", "won", 100_000, "2026-06-10", "2026-07-05", 1.0),
        ("o2", "alice", "A", "North", "Acme", "open", 50_000, "2026-06-20", "2026-07-25", 0.2),
        ("o3", "bob", "A", "North", "Beta", "open", 320_000, "2026-07-01", "2026-08-31", 0.5),
        ("o4", "carol", "B", "South", "X", "open", 200_000, "2026-05-01", "2026-09-15", 0.3),
        ("o7", "alice", "A", "North", "Acme", "won", 70_000, "2026-03-01", "2026-04-10", 1.0),
    ]
    then = frame(list(current.opportunities.columns), rows, "created", "close")

    def stood(day: date) -> Facts:
        asked.append(day)
        return current.as_stood(then)

    return DealHistory(date(2026, 6, 1), stood)


# Forecast of Q4 asked on 15 Oct (its 15th day) against Q3 as it stood on 15 July.
# Rebuilt from today's records, Q3 then "knew" its outcome: o1 won (1000) + o3, o4 open on
# 15 July but won since, at probability 1 (3000 + 2000) + o2, lost since, at 0 = 6000, exactly
# Q3's final revenue (o1 + o3 + o4). As it stood: o1 won (1000) + o2 500 × 0.2 + o3 3200 × 0.5
# + o4 2000 × 0.3 = 1000 + 100 + 1600 + 600 = 3300.
@pytest.mark.parametrize(
    ("since", "expected", "rebuilt"),
    [
        (date(2026, 6, 1), Decimal("3300.00"), False),  # history covers 15 July
        (date(2026, 7, 15), Decimal("3300.00"), False),  # first recorded that very day
        (date(2026, 7, 16), Decimal("6000.00"), True),  # history starts a day too late
        (None, Decimal("6000.00"), True),  # nothing recorded
    ],
)
def test_a_forecast_is_compared_as_the_history_says_it_stood(
    since: date | None, expected: Decimal, rebuilt: bool
) -> None:
    asked: list[date] = []
    facts = company()
    facts.history = replace(_stood_on_15_july(asked), since=since)
    got = answer(Query("forecast", COMPANY, Q4, None), date(2026, 10, 15), facts, TARGETS, POLICY)
    assert got.previous.period == Q3
    assert got.previous.value == expected
    assert got.previous.rebuilt is rebuilt
    assert got.rebuilt and got.history_since == since
    # Only 15 July is read as it stood; earlier quarters precede the history or the data.
    assert asked == ([] if rebuilt else [date(2026, 7, 15)])


def test_pipeline_and_coverage_read_the_history_too() -> None:
    asked: list[date] = []
    facts = company()
    facts.history = _stood_on_15_july(asked)
    today = date(2026, 10, 15)
    pipe = answer(Query("pipeline", COMPANY, Q4, None), today, facts, TARGETS, POLICY)
    # Q3's pipeline as it stood on 15 July: o2 500 + o3 3200 + o4 2000 (rebuilt: o2, o3, o4
    # were "open" as not yet closed, at today's amounts: 500 + 3000 + 2000)
    assert (pipe.previous.value, pipe.previous.rebuilt) == (Decimal("5700.00"), False)
    cover = answer(Query("coverage", COMPANY, Q4, None), today, facts, TARGETS, POLICY)
    # ÷ (10 000 target − 1000 booked by 15 July) = 5700 / 9000
    assert cover.previous.value == Decimal("5700.00") / Decimal("9000.00")
    assert cover.previous.rebuilt is False
    assert asked == [date(2026, 7, 15)] * 2


def test_a_flow_never_reads_the_history() -> None:
    asked: list[date] = []
    facts = company()
    facts.history = _stood_on_15_july(asked)
    got = answer(Query("revenue", COMPANY, Q4, None), date(2026, 10, 15), facts, TARGETS, POLICY)
    # Q3's first 15 days from today's records: o1 won 5 July
    assert (got.previous.value, got.previous.rebuilt, got.rebuilt) == (
        Decimal("1000.00"),
        False,
        False,
    )
    assert asked == []


@pytest.mark.parametrize(
    ("since", "previous"),
    [
        # Recorded from before Q3, read as it stood on 26 August (day 57): nothing had slipped
        # yet (o5, o6 were pushed in September): a known zero.
        (date(2026, 6, 1), Decimal("0.00")),
        (date(2026, 7, 2), None),  # recording began a day into Q3: its slips are unknown
        (None, None),  # nothing recorded
    ],
)
def test_slips_of_a_period_before_the_history_are_unknown_not_zero(
    since: date | None, previous: Decimal | None
) -> None:
    facts = replace(slipped_facts(), history=DealHistory(since, lambda day: company()))
    got = answer(Query("slipped", COMPANY, Q4, None), date(2026, 11, 26), facts, TARGETS, POLICY)
    assert got.previous.period.start == date(2026, 7, 1)
    assert got.previous.value == previous
