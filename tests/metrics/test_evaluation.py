"""Statuses around their boundaries, pacing, forecast, contributors and target lookup."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from metrics.evaluation import (
    Policy,
    Status,
    Verdict,
    Why,
    attainment,
    better_than_target,
    decide_status,
    evaluate,
    evaluate_all,
)
from metrics.kpis import KPIS, KpiValue
from metrics.periods import Grain, Period
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q3, Q4, company

D = Decimal
TOL = D("0.05")

# kpi, actual, sample, target, expected, forecast, ended, min_sample, early, status, why —
# one row per edge
STATUS_CASES = [
    # paced: reaching the target is final, even mid-period
    ("revenue", D(100), 5, D(100), D(60), None, False, 0, False, Status.ACHIEVED, None),
    ("revenue", D("99.99"), 5, D(100), None, None, True, 0, False, Status.MISSED,
     Why.ENDED_SHORT),
    # without a forecast, the pace decides: exactly at the tolerance below pace is on track
    ("revenue", D(95), 5, D(200), D(100), None, False, 0, False, Status.ON_TRACK, None),
    ("revenue", D("94.99"), 5, D(200), D(100), None, False, 0, False, Status.AT_RISK,
     Why.BEHIND_PACE),
    # with a forecast, the forecast decides: on pace but short of target − tolerance...
    ("revenue", D(100), 5, D(200), D(100), D("189.99"), False, 0, False, Status.AT_RISK,
     Why.FORECAST_SHORT),
    ("revenue", D(100), 5, D(200), D(100), D(190), False, 0, False, Status.ON_TRACK, None),
    # ...and behind pace with a forecast that covers the target is on track, saying why
    ("revenue", D(50), 5, D(200), D(100), D(210), False, 0, False, Status.ON_TRACK,
     Why.FORECAST_COVERS),
    # within the pacing grace nothing paced is judged, unless already at target
    ("revenue", D(0), 0, D(200), D(5), D(0), False, 0, True, Status.NO_DATA, Why.TOO_EARLY),
    ("revenue", D(200), 3, D(200), D(5), D(200), False, 0, True, Status.ACHIEVED, None),
    # sampled ratio: judged only with enough sample
    ("win_rate", D("0.30"), 20, D("0.30"), None, None, False, 20, False, Status.ON_TRACK, None),
    ("win_rate", D("0.30"), 20, D("0.30"), None, None, True, 20, False, Status.ACHIEVED, None),
    ("win_rate", D("0.10"), 19, D("0.30"), None, None, False, 20, False, Status.NO_DATA,
     Why.SMALL_SAMPLE),
    ("win_rate", D("0.285"), 20, D("0.30"), None, None, False, 20, False, Status.ON_TRACK, None),
    ("win_rate", D("0.2849"), 20, D("0.30"), None, None, False, 20, False, Status.AT_RISK,
     Why.OFF_TARGET),
    ("win_rate", D("0.299"), 20, D("0.30"), None, None, True, 20, False, Status.MISSED,
     Why.ENDED_SHORT),
    # ...and not within the pacing grace, however large the sample (CPA on day 1)
    ("win_rate", D("0.10"), 50, D("0.30"), None, None, False, 20, True, Status.NO_DATA,
     Why.TOO_EARLY),
    ("cpa", D(375), 30, D(1800), None, None, False, 3, True, Status.NO_DATA, Why.TOO_EARLY),
    # lower is better: CPA at or under target is good, tolerance is upwards
    ("cpa", D(500), 30, D(500), None, None, True, 20, False, Status.ACHIEVED, None),
    ("cpa", D(400), 30, D(500), None, None, False, 20, False, Status.ON_TRACK, None),
    ("cpa", D(525), 30, D(500), None, None, False, 20, False, Status.ON_TRACK, None),
    ("cpa", D("525.01"), 30, D(500), None, None, False, 20, False, Status.AT_RISK,
     Why.OFF_TARGET),
    ("cpa", D("500.01"), 30, D(500), None, None, True, 20, False, Status.MISSED,
     Why.ENDED_SHORT),
    ("sales_cycle", D(45), 30, D(40), None, None, False, 20, False, Status.AT_RISK,
     Why.OFF_TARGET),
    # a level (pipeline) can still move: on track, not achieved, until the period ends
    ("pipeline", D(1000), 3, D(900), None, None, False, 20, False, Status.ON_TRACK, None),
    # no value at all
    ("revenue", None, None, D(100), D(50), None, False, 0, False, Status.NO_DATA, Why.NO_VALUE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kpi", "actual", "sample", "target", "expected", "forecast", "ended", "minimum", "early",
     "status", "why"),
    STATUS_CASES,
)  # fmt: skip
def test_status_boundaries(
    kpi: str, actual: Decimal | None, sample: int | None, target: Decimal,
    expected: Decimal | None, forecast: Decimal | None, ended: bool, minimum: int, early: bool,
    status: Status, why: Why | None,
) -> None:  # fmt: skip
    got = decide_status(
        KPIS[kpi],
        KpiValue(actual, sample),
        target,
        expected=expected,
        forecast=forecast,
        ended=ended,
        min_sample=minimum,
        tolerance=TOL,
        early=early,
    )
    assert got == Verdict(status, why)


def test_an_immature_conversion_cohort_is_too_early_not_small() -> None:
    cohort = Period(Grain.MONTH, date(2026, 12, 1), date(2026, 12, 2))
    got = decide_status(
        KPIS["conversion"],
        KpiValue(D(0), 3, cohort=cohort),
        D("0.25"),
        expected=None,
        forecast=None,
        ended=False,
        min_sample=20,
        tolerance=TOL,
    )
    assert got == Verdict(Status.NO_DATA, Why.TOO_EARLY)


COMPANY = Scope.company()
TEAM_A = Scope(Level.TEAM, "A")
TEAM_B = Scope(Level.TEAM, "B")
CALENDAR = Policy(business_days=False, min_sample=1)


def book(*targets: Target) -> TargetBook:
    return TargetBook(targets)


def test_pacing_forecast_and_contributors_mid_quarter() -> None:
    targets = book(
        Target("revenue", Grain.QUARTER, COMPANY, D(10_000)),
        Target("revenue", Grain.QUARTER, TEAM_A, D(5_000)),
        Target("revenue", Grain.QUARTER, TEAM_B, D(5_000)),
    )
    found = evaluate("revenue", COMPANY, Q3, date(2026, 9, 15), company(), targets, CALENDAR)
    assert found is not None
    # 1 July – 15 Sept is 77 of Q3's 92 calendar days
    assert found.expected == D(10_000) * D(repr(77 / 92))
    assert found.actual.value == D("4000.00")
    # booked 4000 + o4 2000 × 1.0 + o5 4000 × 0.5
    assert found.forecast == D("8000.00")
    assert found.status is Status.AT_RISK
    assert found.gap is not None and round(found.gap, 2) == D("-4369.57")
    # team B has booked nothing yet (o4 closes on the 30th): furthest behind, then team A
    assert [c.scope for c in found.contributors] == [TEAM_B, TEAM_A]
    assert round(found.contributors[1].gap or 0, 2) == D("-184.78")
    assert found.behind == 2
    # Only the furthest behind are listed; every one behind is counted.
    furthest = evaluate(
        "revenue", COMPANY, Q3, date(2026, 9, 15), company(), targets,
        dataclasses.replace(CALENDAR, contributors=1),
    )  # fmt: skip
    assert furthest is not None
    assert [c.scope for c in furthest.contributors] == [TEAM_B] and furthest.behind == 2


def test_business_day_pacing_skips_weekends_and_holidays() -> None:
    targets = book(Target("revenue", Grain.QUARTER, COMPANY, D(10_000)))
    policy = Policy(business_days=True, holidays=frozenset({date(2026, 7, 14)}))
    found = evaluate("revenue", COMPANY, Q3, date(2026, 7, 3), company(), targets, policy)
    assert found is not None and found.expected is not None
    # Q3 2026 has 66 weekdays, 65 without 14 July; 1–3 July are three of them
    assert found.expected == D(10_000) * D(repr(3 / 65))


def test_lower_is_better_gap_is_negative_when_behind() -> None:
    targets = book(Target("cpa", Grain.QUARTER, COMPANY, D(500)))
    found = evaluate("cpa", COMPANY, Q3, date(2026, 10, 1), company(), targets, CALENDAR)
    assert found is not None
    # CPA 750 against 500: 250 worse than target, period over
    assert found.gap == D("-250.00")
    assert (found.status, found.why) == (Status.MISSED, Why.ENDED_SHORT)
    # 750 against 500 is 50 % worse than target, not "66.7 % attained"
    assert found.attainment is None
    assert found.better_than_target == D("-0.5")


# kpi, actual, target, status, attainment, better than target: a value is read against its
# target only when it is judged (a paced KPI's share booked is a fact even on day 1)
VERSUS_TARGET_CASES = [
    # CPA 375 against 1 800: 79.17 % better, judged
    ("cpa", D(375), D(1800), Status.ON_TRACK, None, D(1425) / D(1800)),
    # the same CPA on day 1, "too early to judge": not "79 % better than target" beside it
    ("cpa", D(375), D(1800), Status.NO_DATA, None, None),
    # a win rate on too few deals: no attainment either
    ("win_rate", D("0.3"), D("0.25"), Status.NO_DATA, None, None),
    ("win_rate", D("0.3"), D("0.25"), Status.ON_TRACK, D("1.2"), None),
    # revenue within the pacing grace: 2 % of the target booked is still 2 %
    ("revenue", D(2), D(100), Status.NO_DATA, D("0.02"), None),
    # no target, or no value: nothing to read against
    ("revenue", D(2), D(0), Status.NO_DATA, None, None),
    ("cpa", None, D(1800), Status.NO_DATA, None, None),
]


@pytest.mark.parametrize(
    ("kpi", "actual", "target", "status", "attained", "better"), VERSUS_TARGET_CASES
)
def test_value_against_target_only_when_judged(
    kpi: str, actual: Decimal | None, target: Decimal, status: Status,
    attained: Decimal | None, better: Decimal | None,
) -> None:  # fmt: skip
    got = (
        attainment(KPIS[kpi], actual, target, status),
        better_than_target(KPIS[kpi], actual, target, status),
    )
    assert got == (attained, better)


def test_no_target_means_no_evaluation() -> None:
    assert evaluate("revenue", COMPANY, Q3, date(2026, 9, 1), company(), book(), CALENDAR) is None


def test_yearly_revenue_target_is_prorated_to_the_quarter_ratios_are_not() -> None:
    targets = book(
        Target("revenue", Grain.YEAR, COMPANY, D(365_000)),
        Target("win_rate", Grain.YEAR, COMPANY, D("0.3")),
    )
    assert targets.value_for("revenue", COMPANY, Q3) == D(92_000)
    assert targets.value_for("win_rate", COMPANY, Q3) == D("0.3")
    assert targets.value_for("revenue", TEAM_A, Q3) is None


def test_named_period_target_overrides_the_standing_one() -> None:
    targets = book(
        Target("revenue", Grain.QUARTER, COMPANY, D(1000)),
        Target("revenue", Grain.QUARTER, COMPANY, D(2000), period_key="2026-Q4"),
    )
    assert targets.value_for("revenue", COMPANY, Q3) == D(1000)
    assert targets.value_for("revenue", COMPANY, Q4) == D(2000)


def test_ended_period_is_reported_for_a_week_then_dropped() -> None:
    targets = book(Target("revenue", Grain.QUARTER, COMPANY, D(10_000)))
    early = evaluate_all(date(2026, 10, 3), company(), targets, CALENDAR)
    assert [(e.period.key, e.status) for e in early] == [
        ("2026-Q3", Status.MISSED),  # 6000 of 10000, quarter over
        ("2026-Q4", Status.NO_DATA),  # nothing booked, but 3 days in: too early to judge
    ]
    later = evaluate_all(date(2026, 10, 9), company(), targets, CALENDAR)
    assert [e.period.key for e in later] == ["2026-Q4"]


def test_month_inside_quarter_for_monthly_targets() -> None:
    september = Period(Grain.MONTH, date(2026, 9, 1), date(2026, 9, 30))
    targets = book(Target("revenue", Grain.QUARTER, COMPANY, D(9_200)))
    # 30 of 92 days
    assert targets.value_for("revenue", COMPANY, september) == D(9_200) * 30 / 92


def test_forecast_is_judged_against_the_revenue_target_unless_it_has_its_own() -> None:
    targets = book(Target("revenue", Grain.QUARTER, COMPANY, D(10_000)))
    assert targets.value_for("forecast", COMPANY, Q3) == D(10_000)
    own = book(
        Target("revenue", Grain.QUARTER, COMPANY, D(10_000)),
        Target("forecast", Grain.QUARTER, COMPANY, D(9_000)),
    )
    assert own.value_for("forecast", COMPANY, Q3) == D(9_000)


def test_no_pace_judgement_in_the_first_tenth_of_a_period() -> None:
    targets = book(Target("revenue", Grain.QUARTER, COMPANY, D(10_000)))
    # 3 July: 3 of 92 days, nothing booked yet, forecast short — too early to call
    early = evaluate("revenue", COMPANY, Q3, date(2026, 7, 3), company(), targets, CALENDAR)
    assert early is not None and (early.status, early.why) == (Status.NO_DATA, Why.TOO_EARLY)
    # 10 July: 10 of 92 days (10.9 %), 1000 booked against 1087 expected, forecast short
    later = evaluate("revenue", COMPANY, Q3, date(2026, 7, 10), company(), targets, CALENDAR)
    assert later is not None and later.status is Status.AT_RISK
