"""Questions in English and French parsed into KPI, scope, period and breakdown."""

from __future__ import annotations

import contextlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.periods import Grain, Period
from metrics.query import Directory, QueryError, parse_query
from metrics.scopes import Level, Scope

TODAY = date(2026, 11, 26)
DIRECTORY = Directory(
    regions=("Île-de-France", "DACH", "EMEA"),
    teams=("Paris Grands Comptes", "Lyon", "EMEA"),
    reps=("Élodie Martin", "Hans Müller"),
)
Q3 = Period(Grain.QUARTER, date(2026, 7, 1), date(2026, 9, 30))
Q4 = Period(Grain.QUARTER, date(2026, 10, 1), date(2026, 12, 31))
NOV = Period(Grain.MONTH, date(2026, 11, 1), date(2026, 11, 30))
COMPANY = Scope.company()

# question, kpi, scope, period, breakdown
CASES = [
    ("conversion", "conversion", COMPANY, Q4, Level.TEAM),
    ("revenue team EMEA last quarter", "revenue", Scope(Level.TEAM, "EMEA"), Q3, Level.REP),
    ("ca ce trimestre", "revenue", COMPANY, Q4, Level.TEAM),
    ("win rate by team 2026-Q3", "win_rate", COMPANY, Q3, Level.TEAM),
    ("taux de gain par équipe trimestre dernier", "win_rate", COMPANY, Q3, Level.TEAM),
    ("Taux-de-gain region DACH", "win_rate", Scope(Level.REGION, "DACH"), Q4, Level.TEAM),
    # EMEA is both a team and a region: the word before it decides, else the team
    ("revenue region EMEA", "revenue", Scope(Level.REGION, "EMEA"), Q4, Level.TEAM),
    ("revenue EMEA", "revenue", Scope(Level.TEAM, "EMEA"), Q4, Level.REP),
    ("revenue by region", "revenue", COMPANY, Q4, Level.REGION),
    ("revenue by regional office 2026-Q3", "revenue", COMPANY, Q3, Level.REGION),
    ("win rate by manager", "win_rate", COMPANY, Q4, Level.TEAM),
    ("chiffre d'affaires lyon ce mois", "revenue", Scope(Level.TEAM, "Lyon"), NOV, Level.REP),
    ("pipe paris grands comptes", "pipeline", Scope(Level.TEAM, "Paris Grands Comptes"), Q4,
     Level.REP),
    ("cac elodie martin", "cpa", Scope(Level.REP, "Élodie Martin"), Q4, None),
    ("what is the win_rate for Hans Müller?", "win_rate", Scope(Level.REP, "Hans Müller"), Q4,
     None),
    ("panier moyen par commercial", "avg_deal", COMPANY, Q4, Level.REP),
    # key accounts: the longer alias wins over "ca", "pipeline", "win rate"...
    ("ca grands comptes", "key_revenue", COMPANY, Q4, Level.TEAM),
    ("pipeline grands comptes ce mois", "key_pipeline", COMPANY, NOV, Level.TEAM),
    ("win rate key accounts by team", "key_win_rate", COMPANY, Q4, Level.TEAM),
    ("part des grands comptes", "key_share", COMPANY, Q4, Level.TEAM),
    # ...but a team named "Paris Grands Comptes" is still that team
    ("ca paris grands comptes", "revenue", Scope(Level.TEAM, "Paris Grands Comptes"), Q4,
     Level.REP),
    ("montée en puissance", "ramp_up", COMPANY, Q4, Level.TEAM),
    ("ramp-up team Lyon", "ramp_up", Scope(Level.TEAM, "Lyon"), Q4, Level.REP),
]  # fmt: skip

# question, kpi, scope: broken down by lead source instead of by scope
BY_CHANNEL = [
    ("conversion par source", "conversion", COMPANY),
    ("cpa par canal", "cpa", COMPANY),
    ("nouveau pipeline par source ce trimestre", "new_pipeline", COMPANY),
    ("conversion by lead source team Lyon", "conversion", Scope(Level.TEAM, "Lyon")),
    ("cac par canaux", "cpa", COMPANY),
]


@pytest.mark.parametrize(("question", "kpi", "scope"), BY_CHANNEL)
def test_broken_down_by_lead_source(question: str, kpi: str, scope: Scope) -> None:
    query = parse_query(question, TODAY, DIRECTORY)
    assert (query.kpi, query.scope, query.by_channel) == (kpi, scope, True)


def test_a_kpi_without_sources_says_which_have_them() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("ca par source", TODAY, DIRECTORY)
    assert caught.value.code == "by_channel.unsupported"
    assert caught.value.params == {"kpi": "revenue", "known": "conversion, new_pipeline, cpa"}


def test_a_plain_question_is_not_by_source() -> None:
    assert not parse_query("conversion par équipe", TODAY, DIRECTORY).by_channel


@pytest.mark.parametrize(("question", "kpi", "scope", "period", "breakdown"), CASES)
def test_questions(
    question: str, kpi: str, scope: Scope, period: Period, breakdown: Level | None
) -> None:
    query = parse_query(question, TODAY, DIRECTORY)
    assert (query.kpi, query.scope, query.period, query.breakdown) == (
        kpi,
        scope,
        period,
        breakdown,
    )


def test_kpi_grain_default() -> None:
    query = parse_query("cpa", TODAY, DIRECTORY, grains={"cpa": Grain.MONTH})
    assert query.period == NOV


@pytest.mark.parametrize(
    ("question", "suggestion"),
    [("winrat", "win_rate"), ("revnue", "revenue"), ("conversoin", "conversion")],
)
def test_unknown_kpi_suggests_close_matches(question: str, suggestion: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_query(question, TODAY, DIRECTORY)
    assert suggestion in raised.value.suggestions


def test_unknown_team_is_named_with_close_matches() -> None:
    with pytest.raises(QueryError) as raised:
        parse_query("revenue team Lyn", TODAY, DIRECTORY)
    assert "Lyn" in raised.value.message.replace("lyn", "Lyn")
    assert raised.value.suggestions == ("Lyon",)


def test_leftover_words_are_not_silently_ignored() -> None:
    with pytest.raises(QueryError, match="banana"):
        parse_query("revenue banana", TODAY, DIRECTORY)


@given(st.text(max_size=60))
def test_parser_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse_query(text, TODAY, DIRECTORY)


def test_invalid_period_key_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="Q7"):
        parse_query("revenue 2026-Q7", TODAY, DIRECTORY)


# "Changes since": TODAY is Thursday 26 November 2026. question, scope, period, since
SINCE_CASES = [
    ("pipeline changes since last week", COMPANY, Q4, date(2026, 11, 19)),
    ("mouvements du pipeline depuis lundi", COMPANY, Q4, date(2026, 11, 23)),
    ("mouvements du pipeline depuis la semaine dernière", COMPANY, Q4, date(2026, 11, 19)),
    # On a Thursday, "since Thursday" is a week: the last such day before today.
    ("pipeline changes since thursday", COMPANY, Q4, date(2026, 11, 19)),
    ("pipeline changes since yesterday", COMPANY, Q4, date(2026, 11, 25)),
    ("pipe team Lyon changes since 2026-11-02", Scope(Level.TEAM, "Lyon"), Q4, date(2026, 11, 2)),
    ("pipeline changes 2026-Q3 since 10 days", COMPANY, Q3, date(2026, 11, 16)),
    ("pipeline changes", COMPANY, Q4, date(2026, 11, 19)),  # a week by default
    ("pipeline since monday", COMPANY, Q4, date(2026, 11, 23)),
]


@pytest.mark.parametrize(("question", "scope", "period", "since"), SINCE_CASES)
def test_changes_since_a_day(question: str, scope: Scope, period: Period, since: date) -> None:
    query = parse_query(question, TODAY, DIRECTORY)

    assert (query.kpi, query.scope, query.period, query.since) == ("pipeline", scope, period, since)


def test_a_plain_question_has_no_since() -> None:
    assert parse_query("pipeline last week", TODAY, DIRECTORY).since is None


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("pipeline since tomorrow", "I don't understand “since tomorrow”"),
        ("pipeline since 2026-12-01", "2026-12-01 is in the future"),
        ("pipeline since 2026-02-30", "“2026-02-30” is not a date"),
        ("revenue changes since monday", "kept for the pipeline, not revenue"),
    ],
)
def test_a_since_that_is_not_understood_says_what_works(question: str, message: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse_query(question, TODAY, DIRECTORY)

    assert message in raised.value.message
    assert "since last week" in raised.value.message


def test_a_suggestion_much_less_alike_than_the_best_is_left_out() -> None:
    # "winrat" is 0.92 alike "winrate" and 0.67 alike "key win rate"
    with pytest.raises(QueryError) as caught:
        parse_query("winrat", TODAY, DIRECTORY)
    assert caught.value.suggestions == ("win_rate",)
