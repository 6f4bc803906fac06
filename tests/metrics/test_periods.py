"""Tests for metrics.periods: hand-computed calendars, one row per behaviour."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from metrics.periods import (
    Grain,
    Period,
    PeriodParseError,
    business_days_between,
    extract_period,
    like_for_like,
    parse_period,
    period_containing,
)

D, W, M, Q, Y = Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.QUARTER, Grain.YEAR

# 2026-11-26 is a Thursday in ISO week 48; November 2026 runs Sunday 1st to Monday 30th.
T = date(2026, 11, 26)
# 2026-01-02 is a Friday in ISO week 2026-W01, which began on Monday 2025-12-29.
J = date(2026, 1, 2)


def d(text: str) -> date:
    return date.fromisoformat(text)


def period(grain: Grain, start: str, end: str, fsm: int = 1) -> Period:
    return Period(grain, d(start), d(end), fsm)


Row = tuple[str, Grain, str, str]


def cases(today: date, fsm: int, rows: list[Row]) -> Iterator[object]:
    """One parametrize row per expression; the id says what text is read in which context."""
    for text, grain, start, end in rows:
        expected = period(grain, start, end, fsm)
        yield pytest.param(text, today, fsm, expected, id=f"{text!r} on {today} fsm={fsm}")


# --- parse_period ----------------------------------------------------------------------------

ENGLISH_T: list[Row] = [
    ("today", D, "2026-11-26", "2026-11-26"),
    ("Today", D, "2026-11-26", "2026-11-26"),  # case-insensitive
    ("yesterday", D, "2026-11-25", "2026-11-25"),
    ("this week", W, "2026-11-23", "2026-11-29"),  # ISO week: Monday to Sunday
    ("last week", W, "2026-11-16", "2026-11-22"),
    ("previous week", W, "2026-11-16", "2026-11-22"),
    ("next week", W, "2026-11-30", "2026-12-06"),  # crosses into December
    ("this month", M, "2026-11-01", "2026-11-30"),
    ("current month", M, "2026-11-01", "2026-11-30"),
    ("last month", M, "2026-10-01", "2026-10-31"),
    ("next month", M, "2026-12-01", "2026-12-31"),
    ("this quarter", Q, "2026-10-01", "2026-12-31"),
    ("last quarter", Q, "2026-07-01", "2026-09-30"),
    ("previous quarter", Q, "2026-07-01", "2026-09-30"),
    ("next quarter", Q, "2027-01-01", "2027-03-31"),  # crosses into next year
    ("this year", Y, "2026-01-01", "2026-12-31"),
    ("last year", Y, "2025-01-01", "2025-12-31"),
    ("next year", Y, "2027-01-01", "2027-12-31"),
    ("  LAST    Quarter ", Q, "2026-07-01", "2026-09-30"),  # extra spaces and capitals
    ("wtd", W, "2026-11-23", "2026-11-29"),  # to-date forms give the whole running period
    ("mtd", M, "2026-11-01", "2026-11-30"),
    ("QTD", Q, "2026-10-01", "2026-12-31"),
    ("ytd", Y, "2026-01-01", "2026-12-31"),
    ("month-to-date", M, "2026-11-01", "2026-11-30"),
    ("year to date", Y, "2026-01-01", "2026-12-31"),
]

FRENCH_T: list[Row] = [
    ("aujourd'hui", D, "2026-11-26", "2026-11-26"),
    ("Aujourd’hui", D, "2026-11-26", "2026-11-26"),  # typographic apostrophe
    ("aujourdhui", D, "2026-11-26", "2026-11-26"),  # apostrophe left out
    ("hier", D, "2026-11-25", "2026-11-25"),
    ("cette semaine", W, "2026-11-23", "2026-11-29"),
    ("semaine dernière", W, "2026-11-16", "2026-11-22"),
    ("la semaine dernière", W, "2026-11-16", "2026-11-22"),
    ("semaine precedente", W, "2026-11-16", "2026-11-22"),  # accents optional
    ("la semaine prochaine", W, "2026-11-30", "2026-12-06"),
    ("ce mois", M, "2026-11-01", "2026-11-30"),
    ("ce mois-ci", M, "2026-11-01", "2026-11-30"),
    ("le mois dernier", M, "2026-10-01", "2026-10-31"),
    ("mois dernier", M, "2026-10-01", "2026-10-31"),
    ("mois précédent", M, "2026-10-01", "2026-10-31"),
    ("le mois prochain", M, "2026-12-01", "2026-12-31"),
    ("ce trimestre", Q, "2026-10-01", "2026-12-31"),
    ("trimestre dernier", Q, "2026-07-01", "2026-09-30"),
    ("le trimestre dernier", Q, "2026-07-01", "2026-09-30"),
    ("trimestre précédent", Q, "2026-07-01", "2026-09-30"),
    ("le dernier trimestre", Q, "2026-07-01", "2026-09-30"),  # adjective before the noun
    ("le trimestre prochain", Q, "2027-01-01", "2027-03-31"),
    ("cette année", Y, "2026-01-01", "2026-12-31"),
    ("cette annee", Y, "2026-01-01", "2026-12-31"),
    ("l'année dernière", Y, "2025-01-01", "2025-12-31"),
    ("annee derniere", Y, "2025-01-01", "2025-12-31"),
    ("année précédente", Y, "2025-01-01", "2025-12-31"),
    ("L’ANNÉE PROCHAINE", Y, "2027-01-01", "2027-12-31"),
    ("l'an dernier", Y, "2025-01-01", "2025-12-31"),
    ("l'an passé", Y, "2025-01-01", "2025-12-31"),
    ("depuis le début de la semaine", W, "2026-11-23", "2026-11-29"),
    ("depuis le début du mois", M, "2026-11-01", "2026-11-30"),
    ("depuis le debut du trimestre", Q, "2026-10-01", "2026-12-31"),
    ("depuis le début de l'année", Y, "2026-01-01", "2026-12-31"),
]

EXPLICIT_T: list[Row] = [
    ("2026-11-26", D, "2026-11-26", "2026-11-26"),
    ("2024-02-29", D, "2024-02-29", "2024-02-29"),  # leap day exists in 2024
    ("2026-W48", W, "2026-11-23", "2026-11-29"),
    ("2026-w01", W, "2025-12-29", "2026-01-04"),  # ISO week 1 starts in the previous year
    ("2026-W53", W, "2026-12-28", "2027-01-03"),  # 2026 starts on a Thursday: 53 weeks
    ("2020-W53", W, "2020-12-28", "2021-01-03"),
    ("2026-03", M, "2026-03-01", "2026-03-31"),
    ("2026/03", M, "2026-03-01", "2026-03-31"),
    ("2024-02", M, "2024-02-01", "2024-02-29"),
    ("2026-Q3", Q, "2026-07-01", "2026-09-30"),
    ("2026 q3", Q, "2026-07-01", "2026-09-30"),
    ("Q3 2026", Q, "2026-07-01", "2026-09-30"),
    ("T3 2026", Q, "2026-07-01", "2026-09-30"),  # French trimestre
    ("Q3", Q, "2026-07-01", "2026-09-30"),  # alone: current fiscal year
    ("q1", Q, "2026-01-01", "2026-03-31"),
    ("FY2027", Y, "2027-01-01", "2027-12-31"),  # fsm=1: the fiscal year is the calendar year
    ("FY27", Y, "2027-01-01", "2027-12-31"),
    ("fy 2027", Y, "2027-01-01", "2027-12-31"),
    ("2026", Y, "2026-01-01", "2026-12-31"),
    ("march 2026", M, "2026-03-01", "2026-03-31"),
    ("mars 2026", M, "2026-03-01", "2026-03-31"),
    ("Février 2024", M, "2024-02-01", "2024-02-29"),
    ("sept 2026", M, "2026-09-01", "2026-09-30"),  # abbreviation with a year
    ("novembre", M, "2026-11-01", "2026-11-30"),  # alone: this calendar year
    ("December", M, "2026-12-01", "2026-12-31"),
    ("May", M, "2026-05-01", "2026-05-31"),  # alone "may" is the month, not the verb
]

# Around New Year: relative periods must step back into 2025.
YEAR_BOUNDARY_J: list[Row] = [
    ("yesterday", D, "2026-01-01", "2026-01-01"),
    ("hier", D, "2026-01-01", "2026-01-01"),
    ("this week", W, "2025-12-29", "2026-01-04"),
    ("last week", W, "2025-12-22", "2025-12-28"),  # 2025-W52; 2025 has no week 53
    ("semaine dernière", W, "2025-12-22", "2025-12-28"),
    ("last month", M, "2025-12-01", "2025-12-31"),
    ("le mois dernier", M, "2025-12-01", "2025-12-31"),
    ("last quarter", Q, "2025-10-01", "2025-12-31"),
    ("trimestre dernier", Q, "2025-10-01", "2025-12-31"),
    ("last year", Y, "2025-01-01", "2025-12-31"),
    ("l'an dernier", Y, "2025-01-01", "2025-12-31"),
    ("ytd", Y, "2026-01-01", "2026-12-31"),
    ("novembre", M, "2026-11-01", "2026-11-30"),  # the month of today's year, even if ahead
    ("Q3", Q, "2026-07-01", "2026-09-30"),
]

# Fiscal year starting in April: FY2027 = 2026-04-01..2027-03-31, Q1 = April to June.
FISCAL_APRIL_T: list[Row] = [
    ("this quarter", Q, "2026-10-01", "2026-12-31"),  # Q3 of FY2027
    ("ce trimestre", Q, "2026-10-01", "2026-12-31"),
    ("last quarter", Q, "2026-07-01", "2026-09-30"),
    ("next quarter", Q, "2027-01-01", "2027-03-31"),
    ("qtd", Q, "2026-10-01", "2026-12-31"),
    ("this year", Y, "2026-04-01", "2027-03-31"),  # "year" is the fiscal year
    ("cette année", Y, "2026-04-01", "2027-03-31"),
    ("ytd", Y, "2026-04-01", "2027-03-31"),
    ("last year", Y, "2025-04-01", "2026-03-31"),
    ("l'année dernière", Y, "2025-04-01", "2026-03-31"),
    ("next year", Y, "2027-04-01", "2028-03-31"),
    ("this month", M, "2026-11-01", "2026-11-30"),  # months stay calendar months
    ("this week", W, "2026-11-23", "2026-11-29"),  # weeks ignore the fiscal start
    ("Q1", Q, "2026-04-01", "2026-06-30"),
    ("Q3", Q, "2026-10-01", "2026-12-31"),
    ("Q4", Q, "2027-01-01", "2027-03-31"),  # Q4 of the current FY is next calendar year
    ("2026-Q3", Q, "2025-10-01", "2025-12-31"),  # the year before Q is the fiscal year
    ("FY2027-Q1", Q, "2026-04-01", "2026-06-30"),
    ("Q1 FY27", Q, "2026-04-01", "2026-06-30"),
    ("T3 2027", Q, "2026-10-01", "2026-12-31"),
    ("FY2027", Y, "2026-04-01", "2027-03-31"),
    ("FY27", Y, "2026-04-01", "2027-03-31"),
    ("2026", Y, "2025-04-01", "2026-03-31"),  # a bare year is the FY of that number
    ("mars 2026", M, "2026-03-01", "2026-03-31"),
]

FISCAL_APRIL_J: list[Row] = [
    ("this quarter", Q, "2026-01-01", "2026-03-31"),  # Q4 of FY2026
    ("last quarter", Q, "2025-10-01", "2025-12-31"),
    ("le trimestre prochain", Q, "2026-04-01", "2026-06-30"),
    ("this year", Y, "2025-04-01", "2026-03-31"),
    ("last year", Y, "2024-04-01", "2025-03-31"),
    ("l'an passé", Y, "2024-04-01", "2025-03-31"),
    ("Q3", Q, "2025-10-01", "2025-12-31"),  # Q3 of FY2026, already over
]


@pytest.mark.parametrize(
    ("text", "today", "fsm", "expected"),
    [
        *cases(T, 1, ENGLISH_T),
        *cases(T, 1, FRENCH_T),
        *cases(T, 1, EXPLICIT_T),
        *cases(J, 1, YEAR_BOUNDARY_J),
        *cases(T, 4, FISCAL_APRIL_T),
        *cases(J, 4, FISCAL_APRIL_J),
    ],
)
def test_parse_period(text: str, today: date, fsm: int, expected: Period) -> None:
    assert parse_period(text, today, fsm) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "only spaces"),
        ("last", "modifier without a grain"),
        ("quarterly", "a word that only starts like a grain"),
        ("lastquarter", "words run together"),
        ("revenue last month", "more than a period"),
        ("2026-13", "month 13"),
        ("2026-00", "month 0"),
        ("2026-Q0", "quarter 0"),
        ("2026-Q5", "quarter 5"),
        ("Q7", "quarter 7 alone"),
        ("2026-W54", "no ISO week 54"),
        ("2021-W53", "2021 has 52 ISO weeks"),
        ("2026-02-30", "30 February"),
        ("2026-04-31", "31 April"),
        ("FY202", "three-digit fiscal year"),
        ("0000", "year 0"),
    ],
)
def test_parse_period_rejects(text: str, why: str) -> None:
    with pytest.raises(PeriodParseError):
        parse_period(text, T)


def test_parse_error_says_what_is_wrong_and_shows_examples() -> None:
    with pytest.raises(PeriodParseError) as invalid_key:
        parse_period("2026-13", T)
    assert "month 13" in str(invalid_key.value)
    assert "2026-Q3" in str(invalid_key.value)
    with pytest.raises(PeriodParseError) as unknown:
        parse_period("whenever", T)
    assert "'whenever'" in str(unknown.value)
    assert "last month" in str(unknown.value)
    with pytest.raises(PeriodParseError) as short_year:
        parse_period("2021-W53", T)
    assert "weeks 01 to 52" in str(short_year.value)


@pytest.mark.parametrize(
    ("text", "today"),
    [
        pytest.param("yesterday", date.min, id="day before year 1"),
        pytest.param("next year", date.max, id="year after 9999"),
        pytest.param("this week", date.max, id="week running into year 10000"),
    ],
)
def test_parse_period_outside_the_calendar_is_a_parse_error(text: str, today: date) -> None:
    with pytest.raises(PeriodParseError):
        parse_period(text, today)


# --- extract_period --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fsm", "expected", "rest"),
    [
        pytest.param(
            "revenue team EMEA last quarter",
            1,
            period(Q, "2026-07-01", "2026-09-30"),
            "revenue team EMEA",
            id="English relative period at the end",
        ),
        pytest.param(
            "ca ce trimestre",
            1,
            period(Q, "2026-10-01", "2026-12-31"),
            "ca",
            id="French relative period",
        ),
        pytest.param(
            "win rate by team 2026-Q3",
            1,
            period(Q, "2026-07-01", "2026-09-30"),
            "win rate by team",
            id="explicit quarter key",
        ),
        pytest.param(
            "CA le mois dernier France",
            1,
            period(M, "2026-10-01", "2026-10-31"),
            "CA France",
            id="longest match takes the article with it",
        ),
        pytest.param(
            "Revenue Année Dernière EMEA",
            1,
            period(Y, "2025-01-01", "2025-12-31"),
            "Revenue EMEA",
            id="accents and case ignored, rest keeps its own case",
        ),
        pytest.param(
            "CA d’hier",
            1,
            period(D, "2026-11-25", "2026-11-25"),
            "CA",
            id="elided d' goes with hier",
        ),
        pytest.param(
            "today's revenue",
            1,
            period(D, "2026-11-26", "2026-11-26"),
            "revenue",
            id="English possessive goes with the period",
        ),
        pytest.param(
            "revenue Q3 FY27",
            4,
            period(Q, "2026-10-01", "2026-12-31", 4),
            "revenue",
            id="Q3 FY27 beats Q3 and FY27",
        ),
        pytest.param(
            "pipeline mars 2026 France",
            1,
            period(M, "2026-03-01", "2026-03-31"),
            "pipeline France",
            id="month name with year beats the bare month and the bare year",
        ),
        pytest.param(
            "ventes novembre",
            1,
            period(M, "2026-11-01", "2026-11-30"),
            "ventes",
            id="bare French month name",
        ),
        pytest.param(
            "CA 2026-11-26 EMEA",
            1,
            period(D, "2026-11-26", "2026-11-26"),
            "CA EMEA",
            id="full date beats its month",
        ),
        pytest.param(
            "  revenue   ytd  ",
            1,
            period(Y, "2026-01-01", "2026-12-31"),
            "revenue",
            id="whitespace normalised",
        ),
        pytest.param(
            "revenue this quarter vs last quarter",
            1,
            period(Q, "2026-10-01", "2026-12-31"),
            "revenue vs last quarter",
            id="two periods of the same length: the first is taken",
        ),
        pytest.param(
            "revenue Ｑ３ ２０２６",
            1,
            period(Q, "2026-07-01", "2026-09-30"),
            "revenue",
            id="full-width characters",
        ),
        pytest.param("quarterly revenue", 1, None, "quarterly revenue", id="quarterly"),
        pytest.param("revenue lastquarter", 1, None, "revenue lastquarter", id="run together"),
        pytest.param(
            "revenue team Marseille", 1, None, "revenue team Marseille", id="mars inside a word"
        ),
        pytest.param("marshmallow sales", 1, None, "marshmallow sales", id="march-like prefix"),
        pytest.param("deals over 5000", 1, None, "deals over 5000", id="an amount is no year"),
        pytest.param("what may happen", 1, None, "what may happen", id="may as a verb"),
        pytest.param("Q7 sales", 1, None, "Q7 sales", id="Q7 alone is a name, not a typo"),
        pytest.param(" pipeline \n coverage ", 1, None, "pipeline coverage", id="no period"),
    ],
)
def test_extract_period(text: str, fsm: int, expected: Period | None, rest: str) -> None:
    assert extract_period(text, T, fsm) == (expected, rest)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("revenue 2026-13", id="month 13"),
        pytest.param("win rate 2026-Q7", id="quarter 7 with a year"),
        pytest.param("deals 2021-W53", id="week 53 in a 52-week year"),
        pytest.param("CA T5 2026", id="French quarter 5"),
        pytest.param("CA 2026-02-30", id="30 February"),
    ],
)
def test_extract_period_reports_invalid_explicit_keys(text: str) -> None:
    with pytest.raises(PeriodParseError):
        extract_period(text, T)


# --- Period ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grain", "day", "fsm", "key"),
    [
        (D, "2026-11-26", 1, "2026-11-26"),
        (W, "2026-11-26", 1, "2026-W48"),
        (W, "2021-01-01", 1, "2020-W53"),  # 1 January 2021 is in the last week of 2020
        (M, "2026-11-26", 1, "2026-11"),
        (Q, "2026-11-26", 1, "2026-Q4"),
        (Q, "2026-11-26", 4, "FY2027-Q3"),  # fiscal quarters carry their fiscal year
        (Y, "2026-11-26", 1, "2026"),
        (Y, "2026-11-26", 4, "FY2027"),
        (Y, "2026-02-01", 4, "FY2026"),
        (M, "0005-01-01", 1, "0005-01"),  # years are always four digits
    ],
)
def test_key(grain: Grain, day: str, fsm: int, key: str) -> None:
    assert period_containing(grain, d(day), fsm).key == key


@pytest.mark.parametrize(
    ("grain", "day", "fsm", "fiscal_year", "quarter"),
    [
        (M, "2026-03-15", 4, 2026, None),  # last month of FY2026
        (M, "2026-04-01", 4, 2027, None),  # first day of FY2027
        (M, "2026-11-26", 1, 2026, None),  # fsm=1: the calendar year
        (M, "2026-12-01", 12, 2027, None),  # a December start names the next year
        (W, "2025-12-30", 1, 2026, None),  # a week belongs to the year of its Thursday
        (Q, "2026-11-26", 1, 2026, 4),
        (Q, "2026-11-26", 4, 2027, 3),
        (Q, "2027-01-15", 4, 2027, 4),
        (Q, "2027-01-15", 12, 2027, 1),  # Q1 of a December year is December to February
        (Q, "2026-11-26", 12, 2026, 4),  # and Q4 is September to November
    ],
)
def test_fiscal_year_and_quarter(
    grain: Grain, day: str, fsm: int, fiscal_year: int, quarter: int | None
) -> None:
    p = period_containing(grain, d(day), fsm)
    assert (p.fiscal_year, p.quarter) == (fiscal_year, quarter)


@pytest.mark.parametrize(
    ("grain", "day", "fsm", "start", "end", "days"),
    [
        (D, "2026-11-26", 1, "2026-11-26", "2026-11-26", 1),
        (W, "2026-11-26", 1, "2026-11-23", "2026-11-29", 7),
        (M, "2024-02-10", 1, "2024-02-01", "2024-02-29", 29),  # leap February
        (Q, "2026-11-26", 4, "2026-10-01", "2026-12-31", 92),
        (Q, "2027-01-15", 12, "2026-12-01", "2027-02-28", 90),  # quarter across New Year
        (Y, "2024-06-01", 1, "2024-01-01", "2024-12-31", 366),
        (Y, "2024-06-01", 4, "2024-04-01", "2025-03-31", 365),  # FY2025 misses Feb 29 2024
    ],
)
def test_period_containing(
    grain: Grain, day: str, fsm: int, start: str, end: str, days: int
) -> None:
    p = period_containing(grain, d(day), fsm)
    assert p == period(grain, start, end, fsm)
    assert p.days == days
    assert p.contains(d(start)) and p.contains(d(end)) and p.contains(d(day))
    assert not p.contains(d(start) - timedelta(days=1))
    assert not p.contains(d(end) + timedelta(days=1))


@pytest.mark.parametrize(
    ("grain", "start", "end", "fsm"),
    [
        pytest.param(M, "2026-11-02", "2026-11-30", 1, id="month not starting on the 1st"),
        pytest.param(M, "2026-11-01", "2026-12-01", 1, id="end past the month"),
        pytest.param(D, "2026-11-26", "2026-11-25", 1, id="end before start"),
        pytest.param(Q, "2026-10-01", "2026-12-31", 5, id="quarter not on the fiscal grid"),
        pytest.param(W, "2026-11-24", "2026-11-30", 1, id="week starting on a Tuesday"),
        pytest.param(D, "2026-11-26", "2026-11-26", 0, id="fiscal start month 0"),
        pytest.param(D, "2026-11-26", "2026-11-26", 13, id="fiscal start month 13"),
    ],
)
def test_invalid_period(grain: Grain, start: str, end: str, fsm: int) -> None:
    with pytest.raises(ValueError):
        period(grain, start, end, fsm)


def test_grain_read_from_configuration_as_text() -> None:
    p = period_containing("month", T)  # type: ignore[arg-type]
    assert p == NOVEMBER and p.grain is Grain.MONTH


def test_period_containing_outside_the_calendar() -> None:
    with pytest.raises(ValueError):
        period_containing(W, date.max)  # the week of 9999-12-31 ends in year 10000
    with pytest.raises(ValueError):
        period_containing(M, T, 13)


@pytest.mark.parametrize(
    ("p", "n", "expected"),
    [
        pytest.param(
            period(D, "2024-03-01", "2024-03-01"),
            -1,
            period(D, "2024-02-29", "2024-02-29"),
            id="day back onto a leap day",
        ),
        pytest.param(
            period(D, "2026-12-31", "2026-12-31"),
            1,
            period(D, "2027-01-01", "2027-01-01"),
            id="day into the next year",
        ),
        pytest.param(
            period(W, "2021-01-04", "2021-01-10"),
            -1,
            period(W, "2020-12-28", "2021-01-03"),
            id="week back to 2020-W53",
        ),
        pytest.param(
            period(M, "2026-11-01", "2026-11-30"),
            3,
            period(M, "2027-02-01", "2027-02-28"),
            id="three months ahead lands on a short February",
        ),
        pytest.param(
            period(M, "2026-01-01", "2026-01-31"),
            -1,
            period(M, "2025-12-01", "2025-12-31"),
            id="month back over New Year",
        ),
        pytest.param(
            period(Q, "2026-01-01", "2026-03-31"),
            -1,
            period(Q, "2025-10-01", "2025-12-31"),
            id="calendar quarter back over New Year",
        ),
        pytest.param(
            period(Q, "2026-04-01", "2026-06-30", 4),
            -1,
            period(Q, "2026-01-01", "2026-03-31", 4),
            id="fiscal Q1 back to the previous FY's Q4",
        ),
        pytest.param(
            period(Q, "2026-10-01", "2026-12-31", 4),
            -5,
            period(Q, "2025-07-01", "2025-09-30", 4),
            id="five fiscal quarters back",
        ),
        pytest.param(
            period(Y, "2026-04-01", "2027-03-31", 4),
            1,
            period(Y, "2027-04-01", "2028-03-31", 4),
            id="next fiscal year",
        ),
        pytest.param(
            period(M, "2026-11-01", "2026-11-26"),
            -1,
            period(M, "2026-10-01", "2026-10-31"),
            id="a period cut to date shifts to a whole period",
        ),
    ],
)
def test_shift(p: Period, n: int, expected: Period) -> None:
    assert p.shift(n) == expected
    if n == -1:
        assert p.previous() == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(
            period(D, "2024-02-29", "2024-02-29"),
            period(D, "2023-02-28", "2023-02-28"),
            id="29 February falls back to 28 February",
        ),
        pytest.param(
            period(D, "2026-11-26", "2026-11-26"),
            period(D, "2025-11-26", "2025-11-26"),
            id="same date last year",
        ),
        pytest.param(
            period(W, "2026-11-23", "2026-11-29"),
            period(W, "2025-11-24", "2025-11-30"),
            id="W48 to 2025-W48",
        ),
        pytest.param(
            period(W, "2020-12-28", "2021-01-03"),
            period(W, "2019-12-23", "2019-12-29"),
            id="2020-W53 to 2019-W52, 2019 having 52 weeks",
        ),
        pytest.param(
            period(W, "2026-12-28", "2027-01-03"),
            period(W, "2025-12-22", "2025-12-28"),
            id="2026-W53 to 2025-W52",
        ),
        pytest.param(
            period(W, "2021-01-04", "2021-01-10"),
            period(W, "2019-12-30", "2020-01-05"),
            id="2021-W01 to 2020-W01, which starts in 2019",
        ),
        pytest.param(
            period(M, "2024-02-01", "2024-02-29"),
            period(M, "2023-02-01", "2023-02-28"),
            id="leap February to a short one",
        ),
        pytest.param(
            period(Q, "2026-10-01", "2026-12-31", 4),
            period(Q, "2025-10-01", "2025-12-31", 4),
            id="fiscal Q3 FY2027 to Q3 FY2026",
        ),
        pytest.param(
            period(Y, "2026-04-01", "2027-03-31", 4),
            period(Y, "2025-04-01", "2026-03-31", 4),
            id="FY2027 to FY2026",
        ),
    ],
)
def test_same_period_last_year(p: Period, expected: Period) -> None:
    assert p.same_period_last_year() == expected


NOVEMBER = period(M, "2026-11-01", "2026-11-30")


@pytest.mark.parametrize(
    ("as_of", "running", "ended"),
    [
        ("2026-10-31", False, False),  # not started
        ("2026-11-01", True, False),  # first day
        ("2026-11-26", True, False),
        ("2026-11-30", True, False),  # the last day is still running
        ("2026-12-01", False, True),
    ],
)
def test_running_and_ended(as_of: str, running: bool, ended: bool) -> None:
    assert NOVEMBER.is_running(d(as_of)) is running
    assert NOVEMBER.has_ended(d(as_of)) is ended


def test_to_date() -> None:
    to_date = NOVEMBER.to_date(T)
    assert to_date == period(M, "2026-11-01", "2026-11-26")
    assert (to_date.key, to_date.days) == ("2026-11", 26)  # still named after the whole month
    assert NOVEMBER.to_date(d("2026-12-05")) == NOVEMBER  # ended: unchanged
    with pytest.raises(ValueError):
        NOVEMBER.to_date(d("2026-10-31"))  # not started: nothing to date


@pytest.mark.parametrize(
    ("current", "as_of", "other", "expected"),
    [
        pytest.param(
            NOVEMBER,
            "2026-11-26",
            period(M, "2026-10-01", "2026-10-31"),
            period(M, "2026-10-01", "2026-10-26"),
            id="running month vs previous month: first 26 days",
        ),
        pytest.param(
            NOVEMBER,
            "2026-11-26",
            period(M, "2025-11-01", "2025-11-30"),
            period(M, "2025-11-01", "2025-11-26"),
            id="running month vs same month last year",
        ),
        pytest.param(
            NOVEMBER,
            "2026-11-30",
            period(M, "2026-10-01", "2026-10-31"),
            period(M, "2026-10-01", "2026-10-30"),
            id="last day still running: 30 days against 30 days",
        ),
        pytest.param(
            period(W, "2026-11-23", "2026-11-29"),
            "2026-11-26",
            period(W, "2026-11-16", "2026-11-22"),
            period(W, "2026-11-16", "2026-11-19"),
            id="running week: Monday to Thursday",
        ),
        pytest.param(
            period(Q, "2026-10-01", "2026-12-31"),
            "2026-11-26",
            period(Q, "2026-07-01", "2026-09-30"),
            period(Q, "2026-07-01", "2026-08-26"),
            id="running quarter: 57 days against 57 days",
        ),
        pytest.param(
            period(M, "2026-03-01", "2026-03-31"),
            "2026-03-30",
            period(M, "2026-02-01", "2026-02-28"),
            period(M, "2026-02-01", "2026-02-28"),
            id="other shorter than the elapsed days: all of it",
        ),
        pytest.param(
            period(M, "2026-10-01", "2026-10-31"),
            "2026-11-26",
            period(M, "2026-09-01", "2026-09-30"),
            period(M, "2026-09-01", "2026-09-30"),
            id="ended period: other whole",
        ),
    ],
)
def test_like_for_like(current: Period, as_of: str, other: Period, expected: Period) -> None:
    assert like_for_like(current, d(as_of), other) == expected


def test_like_for_like_before_the_period_starts() -> None:
    with pytest.raises(ValueError):
        like_for_like(NOVEMBER, d("2026-10-31"), period(M, "2026-10-01", "2026-10-31"))


WEEK_48 = period(W, "2026-11-23", "2026-11-29")
WEEKDAYS_48 = frozenset(d(f"2026-11-{day}") for day in range(23, 28))


@pytest.mark.parametrize(
    ("p", "as_of", "business", "holidays", "expected"),
    [
        # November 2026 has 21 business days: 2-6, 9-13, 16-20, 23-27 and 30.
        pytest.param(NOVEMBER, "2026-10-31", False, frozenset(), 0.0, id="before start"),
        pytest.param(NOVEMBER, "2026-10-31", True, frozenset(), 0.0, id="before start, business"),
        pytest.param(NOVEMBER, "2026-11-26", False, frozenset(), 26 / 30, id="calendar days"),
        pytest.param(NOVEMBER, "2026-11-26", True, frozenset(), 19 / 21, id="business days"),
        pytest.param(
            NOVEMBER,
            "2026-11-26",
            True,
            frozenset({d("2026-11-11")}),
            18 / 20,
            id="a Wednesday holiday leaves both counts",
        ),
        pytest.param(
            NOVEMBER, "2026-11-28", True, frozenset(), 20 / 21, id="Saturday as_of: Friday's share"
        ),
        pytest.param(
            NOVEMBER,
            "2026-11-29",
            True,
            frozenset({d("2026-11-11"), d("2026-11-28")}),
            19 / 20,
            id="Sunday as_of; a Saturday holiday changes nothing",
        ),
        pytest.param(
            NOVEMBER, "2026-11-01", True, frozenset(), 0.0, id="first day is a Sunday: no work yet"
        ),
        pytest.param(NOVEMBER, "2026-11-02", True, frozenset(), 1 / 21, id="first business day"),
        pytest.param(NOVEMBER, "2026-11-30", False, frozenset(), 1.0, id="last day counts"),
        pytest.param(NOVEMBER, "2026-12-15", True, frozenset(), 1.0, id="after end"),
        pytest.param(
            WEEK_48,
            "2026-11-26",
            True,
            frozenset({d("2026-11-26")}),
            3 / 4,
            id="Thursday holiday as_of: 3 of 4 business days",
        ),
        pytest.param(
            WEEK_48,
            "2026-11-26",
            True,
            WEEKDAYS_48,
            4 / 7,
            id="no business day at all: calendar days",
        ),
        pytest.param(
            period(M, "2026-11-01", "2026-11-26"),
            "2026-11-20",
            False,
            frozenset(),
            20 / 26,
            id="a period cut to date is measured to its own end",
        ),
    ],
)
def test_elapsed_fraction(
    p: Period, as_of: str, business: bool, holidays: frozenset[date], expected: float
) -> None:
    fraction = p.elapsed_fraction(d(as_of), business_days=business, holidays=holidays)
    assert fraction == pytest.approx(expected)


@pytest.mark.parametrize(
    ("start", "end", "holidays", "expected"),
    [
        pytest.param("2026-11-23", "2026-11-29", (), 5, id="Monday to Sunday"),
        pytest.param("2026-11-28", "2026-11-29", (), 0, id="a weekend"),
        pytest.param("2026-11-26", "2026-11-26", (), 1, id="one weekday, both ends inclusive"),
        pytest.param("2026-11-27", "2026-11-26", (), 0, id="end before start"),
        pytest.param("2026-11-01", "2026-11-30", (), 21, id="November 2026"),
        pytest.param(
            "2026-11-01",
            "2026-11-30",
            ("2026-11-11", "2026-11-28", "2026-12-25"),
            20,
            id="weekend and out-of-range holidays do not count",
        ),
        pytest.param("2026-12-21", "2027-01-03", (), 10, id="over New Year"),
        pytest.param(
            "2026-12-21", "2027-01-03", ("2026-12-25", "2027-01-01"), 8, id="Christmas, New Year"
        ),
    ],
)
def test_business_days_between(
    start: str, end: str, holidays: tuple[str, ...], expected: int
) -> None:
    assert business_days_between(d(start), d(end), frozenset(map(d, holidays))) == expected


# --- properties ------------------------------------------------------------------------------

FRAGMENTS = [
    "last", "this", "next", "quarter", "month", "year", "week", "q", "t", "fy", "w", "-", "/",
    "2026", "0000", "9999", "0001", "13", "7", "99", "1", "mars", "may", "sept", "ce", "mois",
    "-ci", "l'", "’", "an", "dernier", "depuis le début de", "aujourd", "'hui", "hier", "ytd",
    "é", "\u0301", "ﬁ", "İ", "２", "to date",
]  # fmt: skip


@st.composite
def period_like_texts(draw: st.DrawFn) -> str:
    """Fragments of period expressions glued together, to reach the parsing rules."""
    parts = draw(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=8))
    return draw(st.sampled_from(["", " ", "  "])).join(parts)


fiscal_start_months = st.integers(min_value=1, max_value=12)


@settings(max_examples=300)
@given(text=st.text() | period_like_texts(), today=st.dates(), fsm=fiscal_start_months)
def test_parsing_raises_only_period_parse_errors(text: str, today: date, fsm: int) -> None:
    for parse in (parse_period, extract_period):
        with contextlib.suppress(PeriodParseError):
            parse(text, today, fsm)


def whole_period(grain: Grain, day: date, fsm: int) -> Period:
    try:
        return period_containing(grain, day, fsm)
    except ValueError:
        assume(False)  # the period would reach past year 1 or 9999
        raise


# Periods whose every day kpibot holds (metrics.limits), whatever the fiscal year's start.
held_days = st.dates(date(1901, 1, 1), date(2198, 12, 31))


@given(grain=st.sampled_from(Grain), day=held_days, fsm=fiscal_start_months, today=st.dates())
def test_key_parses_back(grain: Grain, day: date, fsm: int, today: date) -> None:
    p = whole_period(grain, day, fsm)
    assert parse_period(p.key, today, fsm) == p


@given(
    grain=st.sampled_from(Grain),
    # A bare year inside a question is read as one only for 19xx and 20xx.
    day=st.dates(date(1901, 1, 1), date(2099, 12, 31)),
    fsm=fiscal_start_months,
)
def test_key_is_found_inside_a_question(grain: Grain, day: date, fsm: int) -> None:
    p = period_containing(grain, day, fsm)
    assert extract_period(f"revenue {p.key} EMEA", T, fsm) == (p, "revenue EMEA")


@pytest.mark.parametrize(
    ("text", "key"),
    [("revenue 0001-01", "0001-01"), ("ca 1899-12", "1899-12"), ("ca 2200-01-01", "2200-01-01"),
     ("revenue 9999-Q4", "9999-Q4"), ("pipeline FY2200", "FY2200")],
)  # fmt: skip
def test_periods_outside_the_held_dates_are_refused(text: str, key: str) -> None:
    with pytest.raises(PeriodParseError) as raised:
        extract_period(text, T)
    assert str(raised.value).startswith(
        f"'{key}' is not a valid period: kpibot holds dates from 1900-01-01 to 2199-12-31 only."
    )


@given(
    grain=st.sampled_from(Grain),
    day=st.dates(date(1900, 1, 1), date(2099, 12, 31)),
    fsm=fiscal_start_months,
    n=st.integers(min_value=-30, max_value=30),
)
def test_periods_tile_the_calendar(grain: Grain, day: date, fsm: int, n: int) -> None:
    p = period_containing(grain, day, fsm)
    assert p.contains(day)
    assert p.days == (p.end - p.start).days + 1
    assert p.previous().end + timedelta(days=1) == p.start
    assert p.shift(1).start == p.end + timedelta(days=1)
    assert p.shift(n).shift(-n) == p
