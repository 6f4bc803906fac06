"""Locale formatting, table-driven: exact strings for fr_FR and en_US.

The expected strings hold Babel's real characters: U+202F (narrow no-break space) groups French
thousands, U+00A0 (no-break space) sits before "€", "%" and unit names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.formatting import STATUS_EMOJI, Formatter
from bot.settings import Organisation
from metrics.evaluation import Status
from metrics.kpis import KPIS
from metrics.periods import Grain, Period, period_containing
from metrics.scopes import Level, Scope

NNBSP = "\u202f"  # narrow no-break space: French thousands separator
NBSP = "\u00a0"  # no-break space: before € and % in French, between a number and its unit
D = Decimal

FR = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
EN = Formatter("en_US", "USD", ZoneInfo("America/New_York"))

Case = tuple[Callable[[Formatter], str], str, str]  # (call, fr_FR, en_US)


def case(call: Callable[[Formatter], str], fr: str, en: str) -> Case:
    return (call, fr, en)


def check(cases: list[Case]) -> list[tuple[Callable[[Formatter], str], Formatter, str]]:
    return [(c, FR, fr) for c, fr, _ in cases] + [(c, EN, en) for c, _, en in cases]


NUMBERS = [
    # Whole units from 100 up; the locale's own grouping, symbol and position.
    case(lambda f: f.money(D("1234567")), f"1{NNBSP}234{NNBSP}567{NBSP}€", "$1,234,567"),
    case(lambda f: f.money(D("1234567.49")), f"1{NNBSP}234{NNBSP}567{NBSP}€", "$1,234,567"),
    case(lambda f: f.money(D("100")), f"100{NBSP}€", "$100"),
    # Cents below 100, except for nothing at all.
    case(lambda f: f.money(D("12.5")), f"12,50{NBSP}€", "$12.50"),
    case(lambda f: f.money(D("99.994")), f"99,99{NBSP}€", "$99.99"),
    case(lambda f: f.money(D("99.995")), f"100{NBSP}€", "$100"),  # rounds up into whole units
    case(lambda f: f.money(D("0")), f"0{NBSP}€", "$0"),
    case(lambda f: f.money(D("-120000")), f"-120{NNBSP}000{NBSP}€", "-$120,000"),
    case(lambda f: f.money(D("120000"), signed=True), f"+120{NNBSP}000{NBSP}€", "+$120,000"),
    # Percentages: one decimal, rounded half up (Babel alone would round half to even).
    case(lambda f: f.percent(D("0.274")), f"27,4{NBSP}%", "27.4%"),
    case(lambda f: f.percent(D("0.27450")), f"27,5{NBSP}%", "27.5%"),
    case(lambda f: f.percent(D("1.096")), f"109,6{NBSP}%", "109.6%"),
    case(lambda f: f.percent(D("0")), f"0,0{NBSP}%", "0.0%"),
    case(lambda f: f.change(D("0.1223")), f"+12,2{NBSP}%", "+12.2%"),
    case(lambda f: f.change(D("-0.05")), f"-5,0{NBSP}%", "-5.0%"),
    case(lambda f: f.change(D("-0.00001")), f"0,0{NBSP}%", "0.0%"),  # no "-0,0"
    case(lambda f: f.points(D("0.021")), f"+2,1{NBSP}pts", f"+2.1{NBSP}pts"),
    case(lambda f: f.points(D("-0.038")), f"-3,8{NBSP}pts", f"-3.8{NBSP}pts"),
    case(lambda f: f.points(D("0.0004")), f"0,0{NBSP}pts", f"0.0{NBSP}pts"),
    case(lambda f: f.number(1234567), f"1{NNBSP}234{NNBSP}567", "1,234,567"),
    case(lambda f: f.number(D("2.25"), digits=1), "2,3", "2.3"),
    # Days: whole days with CLDR's unit names and plurals (French 0 and 1 are singular).
    case(lambda f: f.days(D("41.6")), f"42{NBSP}jours", "42 days"),
    case(lambda f: f.days(1), f"1{NBSP}jour", "1 day"),
    case(lambda f: f.days(0), f"0{NBSP}jour", "0 days"),
    case(lambda f: f.days(D("-3.4"), signed=True), f"-3{NBSP}jours", "-3 days"),
    case(lambda f: f.days(1200), f"1{NNBSP}200{NBSP}jours", "1,200 days"),
    case(lambda f: f.multiple(D("2.345")), "2,3×", "2.3×"),
    case(lambda f: f.multiple(D("0.4"), signed=True), "+0,4×", "+0.4×"),
    case(lambda f: f.score(D("4.25")), "4,3", "4.3"),
    case(lambda f: f.score(D("-12")), "-12,0", "-12.0"),
]


@pytest.mark.parametrize(("call", "fmt", "expected"), check(NUMBERS))
def test_numbers(call: Callable[[Formatter], str], fmt: Formatter, expected: str) -> None:
    assert call(fmt) == expected


KPI_VALUES = [
    case(lambda f: f.value(KPIS["revenue"], D("1234567")), f"1{NNBSP}234{NNBSP}567{NBSP}€",
         "$1,234,567"),
    case(lambda f: f.value(KPIS["avg_deal"], D("45.5")), f"45,50{NBSP}€", "$45.50"),
    case(lambda f: f.value(KPIS["conversion"], D("0.274")), f"27,4{NBSP}%", "27.4%"),
    case(lambda f: f.value(KPIS["coverage"], D("2.3")), "2,3×", "2.3×"),
    case(lambda f: f.value(KPIS["sales_cycle"], D("41.6")), f"42{NBSP}jours", "42 days"),
    case(lambda f: f.value(KPIS["csat"], D("4.25")), "4,3", "4.3"),
    case(lambda f: f.value(KPIS["nps"], D("32")), "32,0", "32.0"),
    case(lambda f: f.value(KPIS["revenue"], None), "pas de données", "no data"),
    # Signed differences: points for percentages, the unit otherwise.
    case(lambda f: f.delta(KPIS["win_rate"], D("-0.038")), f"-3,8{NBSP}pts", f"-3.8{NBSP}pts"),
    case(lambda f: f.delta(KPIS["cpa"], D("-250")), f"-250{NBSP}€", "-$250"),
    case(lambda f: f.delta(KPIS["sales_cycle"], D("3")), f"+3{NBSP}jours", "+3 days"),
    case(lambda f: f.delta(KPIS["coverage"], D("0.4")), "+0,4×", "+0.4×"),
    case(lambda f: f.delta(KPIS["revenue"], None), "—", "—"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "fmt", "expected"), check(KPI_VALUES))
def test_kpi_values(call: Callable[[Formatter], str], fmt: Formatter, expected: str) -> None:
    assert call(fmt) == expected


def at(grain: Grain, day: date, fiscal_start_month: int = 1) -> Period:
    return period_containing(grain, day, fiscal_start_month)


NOV_26 = date(2026, 11, 26)
PERIODS = [
    case(lambda f: f.period(at(Grain.QUARTER, date(2026, 8, 1))), "T3 2026", "Q3 2026"),
    case(lambda f: f.period(at(Grain.MONTH, NOV_26)), "novembre 2026", "November 2026"),
    # CLDR's own week label, filled in with ISO numbers: en_US would count weeks from Sunday.
    case(lambda f: f.period(at(Grain.WEEK, NOV_26)), "semaine 48 de 2026", "week 48 of 2026"),
    case(lambda f: f.period(at(Grain.WEEK, date(2027, 1, 1))), "semaine 53 de 2026",
         "week 53 of 2026"),
    case(lambda f: f.period(at(Grain.DAY, NOV_26)), "26 nov. 2026", "Nov 26, 2026"),
    case(lambda f: f.period(at(Grain.YEAR, NOV_26)), "2026", "2026"),
    # Fiscal years starting in February are named after the year they end in.
    case(lambda f: f.period(at(Grain.YEAR, NOV_26, 2)), "exercice 2027", "FY2027"),
    case(lambda f: f.period(at(Grain.QUARTER, NOV_26, 2)), "T4 exercice 2027", "Q4 FY2027"),
    case(lambda f: f.period(at(Grain.QUARTER, date(2026, 2, 1), 2)), "T1 exercice 2027",
         "Q1 FY2027"),
    # A period cut to date keeps the label of the whole period.
    case(lambda f: f.period(at(Grain.QUARTER, NOV_26).to_date(NOV_26)), "T4 2026", "Q4 2026"),
    case(lambda f: f.date(NOV_26), "26 nov. 2026", "Nov 26, 2026"),
    case(lambda f: f.date(NOV_26, "full"), "jeudi 26 novembre 2026",
         "Thursday, November 26, 2026"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "fmt", "expected"), check(PERIODS))
def test_periods_and_dates(call: Callable[[Formatter], str], fmt: Formatter, expected: str) -> None:
    assert call(fmt) == expected


def test_datetime_is_shown_in_the_organisation_zone() -> None:
    moment = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    assert FR.datetime(moment) == "26 nov. 2026, 09:30"
    assert EN.datetime(moment) == f"Nov 26, 2026, 3:30{NNBSP}AM"
    assert FR.datetime(moment.astimezone(timezone(timedelta(hours=5)))) == "26 nov. 2026, 09:30"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        FR.datetime(datetime(2026, 11, 26, 8, 30))


STATUSES = [
    (Status.ACHIEVED, "atteint", "achieved", "✅"),
    (Status.ON_TRACK, "en bonne voie", "on track", "🟢"),
    (Status.AT_RISK, "à risque", "at risk", "🟠"),
    (Status.MISSED, "manqué", "missed", "🔴"),
    (Status.NO_DATA, "pas de données", "no data", "⚪"),
]


@pytest.mark.parametrize(("status", "fr", "en", "emoji"), STATUSES)
def test_statuses(status: Status, fr: str, en: str, emoji: str) -> None:
    assert (FR.status(status), EN.status(status)) == (fr, en)
    assert FR.emoji(status) == EN.emoji(status) == emoji


def test_every_status_has_an_emoji() -> None:
    assert set(STATUS_EMOJI) == set(Status)


WORDS = [
    case(lambda f: f.kpi_label(KPIS["revenue"]), "Chiffre d'affaires", "Revenue"),
    case(lambda f: f.kpi_label(KPIS["cpa"]), "Coût d'acquisition", "Cost per acquisition"),
    case(lambda f: f.scope(Scope.company()), "Entreprise", "Company"),
    case(lambda f: f.scope(Scope(Level.TEAM, "EMEA")), "Équipe EMEA", "Team EMEA"),
    case(lambda f: f.scope(Scope(Level.REGION, "Sud")), "Région Sud", "Region Sud"),
    case(lambda f: f.scope(Scope(Level.REP, "Zoé")), "Zoé", "Zoé"),
    case(lambda f: f.breakdown_title(Level.REP), "Par commercial", "By rep"),
    case(lambda f: f.t("as_of", date="x"), "Au x", "As of x"),
    # Plurals follow CLDR: French 0 and 1 are singular, millions take "other".
    case(lambda f: f.tn("and_more", 1), "… et 1 autre", "… and 1 more"),
    case(lambda f: f.tn("and_more", 185), "… et 185 autres", "… and 185 more"),
    case(lambda f: f.tn("alert_count", 0), "0 alerte", "0 alerts"),
    case(lambda f: f.tn("alert_count", 1000000), f"1{NNBSP}000{NNBSP}000 alertes",
         "1,000,000 alerts"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "fmt", "expected"), check(WORDS))
def test_words(call: Callable[[Formatter], str], fmt: Formatter, expected: str) -> None:
    assert call(fmt) == expected


def test_other_locales_use_their_formats_with_the_nearest_words() -> None:
    fr_ca = Formatter("fr_CA", "CAD", ZoneInfo("America/Montreal"))
    assert fr_ca.status(Status.MISSED) == "manqué"
    assert fr_ca.money(D("1234567")) == f"1{NBSP}234{NBSP}567{NBSP}$"
    de = Formatter("de_DE", "EUR", ZoneInfo("Europe/Berlin"))
    assert de.status(Status.MISSED) == "missed"  # no German words yet
    assert de.money(D("1234567")) == f"1.234.567{NBSP}€"


def test_zero_decimal_currencies_never_show_cents() -> None:
    yen = Formatter("en_US", "JPY", ZoneInfo("Asia/Tokyo"))
    assert yen.money(D("12.4")) == "¥12"


def test_formatter_for_an_organisation() -> None:
    org = Organisation(name="Acme", locale="fr_FR", timezone="Europe/Paris", currency="EUR")
    fmt = Formatter.for_organisation(org)
    assert (fmt.language, fmt.currency, str(fmt.zone)) == ("fr", "EUR", "Europe/Paris")


@pytest.mark.parametrize(
    ("fmt", "days", "expected"),
    [
        (FR, (0, 4), "#ventes recevra le résumé quotidien à 08:30 (Europe/Paris), lun., ven."),
        (EN, (0, 4), "Subscribed #sales to the daily digest at 08:30 (Europe/Paris), Mon, Fri."),
    ],
)
def test_a_sentence_ending_on_an_abbreviation_ends_with_one_full_stop(
    fmt: Formatter, days: tuple[int, ...], expected: str
) -> None:
    names = ", ".join(fmt.weekday(day) for day in days)
    channel = "#ventes" if fmt is FR else "#sales"
    said = fmt.t("subscribed", channel=channel, time="08:30", zone="Europe/Paris", days=names)
    assert said == expected
