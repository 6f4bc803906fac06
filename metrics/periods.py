"""Reporting periods: grains, fiscal calendars, comparisons and period expressions.

This module owns what a period is in kpibot: a day, an ISO week, a month, a fiscal quarter or a
fiscal year, with the organisation's fiscal start month; how periods step back and forth and
compare (previous period, same period last year, like for like while a period is running); how
much of a period has elapsed, in calendar or business days; and how English and French period
expressions ("last quarter", "ce mois-ci", "2026-Q3", "FY27", "mars 2026") become a `Period`.

Pure: no clock and no environment. `today` and `as_of` are always parameters, and dates are the
organisation's local dates (the caller converts from its time zone).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from metrics.limits import DATE_RANGE, FIRST_DATE, LAST_DATE

__all__ = [
    "Grain",
    "Period",
    "PeriodParseError",
    "business_days_between",
    "extract_period",
    "like_for_like",
    "parse_period",
    "period_containing",
]


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_EXAMPLES = (
    "Examples of valid periods: today, yesterday, this week, last month, next quarter, "
    "this year, mtd, qtd, ytd, 2026-11-26, 2026-W48, 2026-03, 2026-Q3, Q3 2026, Q3, FY2027, "
    "FY27, 2026, march 2026, aujourd'hui, hier, ce mois, le mois dernier, trimestre dernier, "
    "cette année, l'an dernier, T3 2026, novembre."
)


class PeriodParseError(ValueError):
    """Text that should name a period does not; the message says why and shows valid input
    (English, for logs); ``text`` is the text, for the shell to word, with ``reason`` (a code
    such as ``no_month``, and its ``reason_params``) when a recognised form names no period."""

    def __init__(
        self,
        message: str,
        text: str = "",
        *,
        out_of_range: bool = False,
        reason: str | None = None,
        reason_params: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.text = text
        self.out_of_range = out_of_range  # a real period, outside the dates kpibot holds
        self.reason = reason
        self.reason_params = dict(reason_params or {})


@dataclass(frozen=True)
class Period:
    """A period of one grain, from `start` to `end`, both inclusive.

    `start` is always the grain's natural first day. `end` is the natural last day, or an
    earlier day for a period cut short by `to_date` or `like_for_like`; the key stays that of
    the whole period.
    """

    grain: Grain
    start: date
    end: date
    fiscal_start_month: int = 1

    def __post_init__(self) -> None:
        # Grains read from configuration arrive as plain strings; store the enum member.
        object.__setattr__(self, "grain", Grain(self.grain))
        _check_fiscal_start_month(self.fiscal_start_month)
        natural_start, natural_end = _bounds(self.grain, self.start, self.fiscal_start_month)
        if self.start != natural_start:
            raise ValueError(
                f"a {self.grain} period containing {self.start} starts on {natural_start}"
            )
        if not self.start <= self.end <= natural_end:
            raise ValueError(
                f"a {self.grain} period starting on {self.start} ends between {self.start} "
                f"and {natural_end}, not on {self.end}"
            )

    @functools.cached_property  # target lookups read it several times per period
    def key(self) -> str:
        """Canonical key that `parse_period` reads back with the same fiscal start month."""
        fiscal = self.fiscal_start_month != 1
        match self.grain:
            case Grain.DAY:
                return self.start.isoformat()
            case Grain.WEEK:
                iso = self.start.isocalendar()
                return f"{iso.year:04d}-W{iso.week:02d}"
            case Grain.MONTH:
                return f"{self.start.year:04d}-{self.start.month:02d}"
            case Grain.QUARTER:
                # The FY prefix keeps a fiscal quarter from being read as a calendar one.
                prefix = f"FY{self.fiscal_year:04d}" if fiscal else f"{self.fiscal_year:04d}"
                return f"{prefix}-Q{self.quarter}"
            case Grain.YEAR:
                return f"FY{self.fiscal_year:04d}" if fiscal else f"{self.fiscal_year:04d}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def fiscal_year(self) -> int:
        """The fiscal year, named by the calendar year in which it ends.

        A week belongs to the fiscal year holding its Thursday, as ISO weeks do.
        """
        anchor = _add_days(self.start, 3) if self.grain == Grain.WEEK else self.start
        return _fiscal_year_of(anchor, self.fiscal_start_month)

    @property
    def quarter(self) -> int | None:
        """Fiscal quarter number 1 to 4 for a quarter, None for other grains."""
        if self.grain != Grain.QUARTER:
            return None
        return (self.start.month - self.fiscal_start_month) % 12 // 3 + 1

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end

    def shift(self, n: int) -> Period:
        """The whole period `n` periods later (earlier when `n` is negative), same grain."""
        match self.grain:
            case Grain.DAY:
                start = _add_days(self.start, n)
            case Grain.WEEK:
                start = _add_days(self.start, 7 * n)
            case Grain.MONTH:
                start = _add_months(self.start, n)
            case Grain.QUARTER:
                start = _add_months(self.start, 3 * n)
            case Grain.YEAR:
                start = _add_months(self.start, 12 * n)
        return period_containing(self.grain, start, self.fiscal_start_month)

    def previous(self) -> Period:
        return self.shift(-1)

    def same_period_last_year(self) -> Period:
        """The matching whole period one year earlier.

        A day maps to the same date (29 February to 28 February) and a week to the same ISO
        week number (week 53 to week 52 when the earlier year has no week 53).
        """
        match self.grain:
            case Grain.DAY:
                year = self.start.year - 1
                day = 28 if (self.start.month, self.start.day) == (2, 29) else self.start.day
                start = _date(year, self.start.month, day)
            case Grain.WEEK:
                iso = self.start.isocalendar()
                year = iso.year - 1
                start = date.fromisocalendar(year, min(iso.week, _iso_weeks_in(year)), 1)
            case Grain.MONTH | Grain.QUARTER | Grain.YEAR:
                start = _add_months(self.start, -12)
        return period_containing(self.grain, start, self.fiscal_start_month)

    def to_date(self, as_of: date) -> Period:
        """This period cut at `as_of` (the period to date); unchanged once it has ended."""
        if as_of < self.start:
            raise ValueError(f"{self.key} has not started on {as_of}")
        return replace(self, end=min(self.end, as_of))

    def is_running(self, as_of: date) -> bool:
        return self.start <= as_of <= self.end

    def has_ended(self, as_of: date) -> bool:
        return as_of > self.end

    def elapsed_fraction(
        self, as_of: date, *, business_days: bool, holidays: frozenset[date] = frozenset()
    ) -> float:
        """Share of the period elapsed at the end of day `as_of`, from 0.0 to 1.0.

        With `business_days`, only Monday to Friday outside `holidays` count; a period with no
        business day at all falls back to calendar days so that pacing still moves.
        """
        if as_of < self.start:
            return 0.0
        if as_of >= self.end:
            return 1.0
        if business_days:
            total = business_days_between(self.start, self.end, holidays)
            if total:
                return business_days_between(self.start, as_of, holidays) / total
        return ((as_of - self.start).days + 1) / self.days


def period_containing(grain: Grain, d: date, fiscal_start_month: int = 1) -> Period:
    """The whole period of `grain` that contains `d`.

    Raises ValueError when the fiscal start month is not 1 to 12 or the period would reach
    outside years 1 to 9999.
    """
    grain = Grain(grain)
    _check_fiscal_start_month(fiscal_start_month)
    start, end = _bounds(grain, d, fiscal_start_month)
    return Period(grain, start, end, fiscal_start_month)


def like_for_like(current: Period, as_of: date, other: Period) -> Period:
    """`other` cut to as many days as `current` has run at `as_of`.

    While `current` is running, its first N days (N counting `as_of`) are compared with the
    first N days of `other`; once `current` has ended, `other` is compared whole.
    """
    if current.has_ended(as_of):
        return other
    if not current.is_running(as_of):
        raise ValueError(f"{current.key} has not started on {as_of}")
    return other.to_date(_add_days(other.start, (as_of - current.start).days))


@functools.lru_cache(maxsize=1024)  # pacing asks it for every child of a breakdown
def business_days_between(start: date, end: date, holidays: frozenset[date] = frozenset()) -> int:
    """Mondays to Fridays from `start` to `end`, both inclusive, that are not holidays."""
    if end < start:
        return 0
    full_weeks, extra_days = divmod((end - start).days + 1, 7)
    count = 5 * full_weeks
    count += sum(1 for i in range(extra_days) if (start.weekday() + i) % 7 < 5)
    count -= sum(1 for h in holidays if start <= h <= end and h.weekday() < 5)
    return count


def parse_period(text: str, today: date, fiscal_start_month: int = 1) -> Period:
    """The period that the whole of `text` names, relative to `today`.

    Case, accents and extra spaces do not matter. Raises PeriodParseError when the text is not
    exactly one period expression or names a period that does not exist ("2026-13").
    """
    _check_fiscal_start_month(fiscal_start_month)
    normalised, _ = _normalise(text)
    wanted = normalised.strip()
    for rule in _RULES:
        match = rule.pattern.fullmatch(wanted)
        if match:
            return _evaluate(match, rule, today, fiscal_start_month, text.strip())
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise PeriodParseError(f"{shown!r} is not a period. {_EXAMPLES}", shown)


def extract_period(
    text: str, today: date, fiscal_start_month: int = 1
) -> tuple[Period | None, str]:
    """Find one period expression inside a question and take it out.

    Returns the period (None when there is none) and the rest of the text with whitespace
    normalised. The longest expression wins, then the earliest. A malformed explicit key such
    as "2026-Q7" raises PeriodParseError rather than being ignored, so that the user hears
    about the typo instead of getting the wrong period.
    """
    _check_fiscal_start_month(fiscal_start_month)
    normalised, origin = _normalise(text)
    best: tuple[tuple[int, int], re.Match[str], _Rule] | None = None
    for rule in _RULES:
        if not rule.in_questions:
            continue
        for match in rule.pattern.finditer(normalised):
            rank = (match.end() - match.start(), -match.start())
            if best is None or rank > best[0]:
                best = (rank, match, rule)
    if best is None:
        return None, _tidy(text)
    _, match, rule = best
    cut_start, cut_end = origin[match.start()], origin[match.end() - 1] + 1
    period = _evaluate(match, rule, today, fiscal_start_month, text[cut_start:cut_end])
    return period, _tidy(text[:cut_start] + " " + text[cut_end:])


# --- calendar arithmetic ---------------------------------------------------------------------


def _check_fiscal_start_month(fiscal_start_month: int) -> None:
    if not 1 <= fiscal_start_month <= 12:
        raise ValueError(f"fiscal_start_month must be 1 to 12, not {fiscal_start_month}")


def _date(year: int, month: int, day: int) -> date:
    # Huge shifts overflow C ints before date() can say "out of range"; keep one error type.
    try:
        return date(year, month, day)
    except OverflowError as exc:
        raise ValueError(f"year {year} is out of range") from exc


def _add_days(d: date, n: int) -> date:
    try:
        return date.fromordinal(d.toordinal() + n)
    except OverflowError as exc:
        raise ValueError(f"{n} days from {d} is out of range") from exc


def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _month_start(month_index: int) -> date:
    year, month = divmod(month_index, 12)
    return _date(year, month + 1, 1)


def _add_months(d: date, n: int) -> date:
    """First day of the month `n` months after the month of `d`."""
    return _month_start(_month_index(d) + n)


# Every Period checks its bounds when made, and an answer with a breakdown makes thousands of
# periods (each child's period to date, comparisons and target lookups): the same few bounds.
@functools.lru_cache(maxsize=4096)
def _bounds(grain: Grain, d: date, fiscal_start_month: int) -> tuple[date, date]:
    if grain == Grain.DAY:
        return d, d
    if grain == Grain.WEEK:
        start = _add_days(d, -d.weekday())
        return start, _add_days(start, 6)
    length = {Grain.MONTH: 1, Grain.QUARTER: 3, Grain.YEAR: 12}[grain]
    index = _month_index(d)
    # Quarters and years are counted from the fiscal start month; for months length is 1 and
    # the offset is always 0.
    first = index - (index - (fiscal_start_month - 1)) % length
    return _month_start(first), _add_days(_month_start(first + length), -1)


def _fiscal_year_of(d: date, fiscal_start_month: int) -> int:
    # A fiscal year that does not start in January ends, and is named, in the next calendar year.
    return d.year + 1 if fiscal_start_month > 1 and d.month >= fiscal_start_month else d.year


def _fiscal_year_start(fiscal_year: int, fiscal_start_month: int) -> date:
    year = fiscal_year - 1 if fiscal_start_month > 1 else fiscal_year
    return _date(year, fiscal_start_month, 1)


def _iso_weeks_in(year: int) -> int:
    # 28 December is always in the last ISO week of its year.
    return _date(year, 12, 28).isocalendar().week


# --- period expressions ----------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'", "′": "'"})


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lower-case `text` without accents, with the index of each character in the original.

    The index map lets `extract_period` cut the expression out of the user's own text, so the
    rest keeps its case and accents.
    """
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text.translate(_APOSTROPHES)):
        for piece in unicodedata.normalize("NFKD", char).lower():
            if not unicodedata.combining(piece):
                chars.append(piece)
                origin.append(index)
    return "".join(chars), origin


def _tidy(text: str) -> str:
    return " ".join(text.split())


class _Invalid(Exception):
    """Why a recognised expression names no period, as a code with its numbers and in English;
    `_evaluate` adds the text and examples."""

    def __init__(self, code: str, english: str, **params: int) -> None:
        super().__init__(english)
        self.code = code
        self.params = params


_Builder = Callable[[re.Match[str], date, int], Period]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    build: _Builder
    # Some forms are only safe when they are all the user typed: "may" is a modal verb and any
    # four digits could be an amount, but alone they can only mean a month and a year.
    in_questions: bool = True


def _evaluate(
    match: re.Match[str], rule: _Rule, today: date, fiscal_start_month: int, shown: str
) -> Period:
    try:
        period = rule.build(match, today, fiscal_start_month)
    except _Invalid as exc:
        raise PeriodParseError(
            f"{shown!r} is not a valid period: {exc}. {_EXAMPLES}",
            shown,
            reason=exc.code,
            reason_params=exc.params,
        ) from None
    except (ValueError, OverflowError):
        # Expressions near year 1 or 9999 step off the calendar that date supports.
        period = None
    if period is not None and period.start >= FIRST_DATE and period.end <= LAST_DATE:
        return period
    reason = f"kpibot holds dates from {DATE_RANGE} only"
    raise PeriodParseError(
        f"{shown!r} is not a valid period: {reason}. {_EXAMPLES}", shown, out_of_range=True
    )


_GRAIN_WORDS: dict[str, Grain] = {
    "week": Grain.WEEK,
    "semaine": Grain.WEEK,
    "month": Grain.MONTH,
    "mois": Grain.MONTH,
    "quarter": Grain.QUARTER,
    "trimestre": Grain.QUARTER,
    "year": Grain.YEAR,
    "fiscal year": Grain.YEAR,
    "fy": Grain.YEAR,
    "annee": Grain.YEAR,
    "an": Grain.YEAR,
    "exercice": Grain.YEAR,
    # The letters of wtd, mtd, qtd, ytd and fytd.
    "w": Grain.WEEK,
    "m": Grain.MONTH,
    "q": Grain.QUARTER,
    "y": Grain.YEAR,
}

_OFFSETS: dict[str, int] = {
    "this": 0,
    "current": 0,
    "ce": 0,
    "cet": 0,
    "cette": 0,
    "en cours": 0,
    "last": -1,
    "previous": -1,
    "prev": -1,
    "dernier": -1,
    "derniere": -1,
    "precedent": -1,
    "precedente": -1,
    "passe": -1,
    "passee": -1,
    "next": 1,
    "prochain": 1,
    "prochaine": 1,
}

_MONTH_NAMES: dict[str, int] = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
    "janvier": 1,
    "fevrier": 2,
    "mars": 3,
    "avril": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "aout": 8,
    "septembre": 9,
    "octobre": 10,
    "novembre": 11,
    "decembre": 12,
}

_MONTH_ABBREVIATIONS: dict[str, int] = {
    "jan": 1,
    "janv": 1,
    "feb": 2,
    "fev": 2,
    "fevr": 2,
    "mar": 3,
    "apr": 4,
    "avr": 4,
    "jun": 6,
    "jul": 7,
    "juil": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}

_ALL_MONTHS = _MONTH_NAMES | _MONTH_ABBREVIATIONS


def _alternatives(words: Iterable[str]) -> str:
    # Longest first, so that "sept" is tried before "sep" and "juillet" before "juil".
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


def _words(text: str) -> str:
    return " ".join(text.split())


def _number(text: str) -> int:
    # The patterns allow only a few ASCII digits, so int() cannot fail or be slow here.
    return int(text)


def _year(text: str) -> int:
    year = _number(text)
    if year < 1:
        raise _Invalid("no_year_zero", "there is no year 0")
    return year


def _fiscal_year_number(text: str) -> int:
    digits = text.removeprefix("fy").strip()
    if len(digits) == 2:
        return 2000 + _number(digits)
    if len(digits) == 4:
        return _year(digits)
    raise _Invalid(
        "fiscal_digits", "a fiscal year is written with 4 or 2 digits, as in FY2027 or FY27"
    )


def _month_number(text: str) -> int:
    month = _number(text)
    if not 1 <= month <= 12:
        raise _Invalid("no_month", f"there is no month {month}; months are 01 to 12", month=month)
    return month


def _relative_day(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    offset = -1 if match["day"] in ("yesterday", "hier") else 0
    return period_containing(Grain.DAY, today, fiscal_start_month).shift(offset)


def _relative(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    grain = _GRAIN_WORDS[_words(match["grain"])]
    offset = _OFFSETS[_words(match["mod"])]
    return period_containing(grain, today, fiscal_start_month).shift(offset)


def _running(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    # The whole running period: the caller cuts it with to_date(as_of) for "to date" figures.
    grain = _GRAIN_WORDS[_words(match["grain"])]
    return period_containing(grain, today, fiscal_start_month)


def _explicit_day(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    year, month, day = _year(match["y"]), _month_number(match["m"]), _number(match["d"])
    try:
        d = date(year, month, day)
    except ValueError:
        english = f"{year:04d}-{month:02d} has no day {day}"
        raise _Invalid("no_day", english, year=year, month=month, day=day) from None
    return period_containing(Grain.DAY, d, fiscal_start_month)


def _iso_week(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    year, week = _year(match["y"]), _number(match["w"])
    weeks = _iso_weeks_in(year)
    if not 1 <= week <= weeks:
        english = f"ISO year {year:04d} has weeks 01 to {weeks}"
        raise _Invalid("no_week", english, year=year, weeks=weeks)
    return period_containing(Grain.WEEK, date.fromisocalendar(year, week, 1), fiscal_start_month)


def _numbered_month(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    start = _date(_year(match["y"]), _month_number(match["m"]), 1)
    return period_containing(Grain.MONTH, start, fiscal_start_month)


def _named_month(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    year_text = match.groupdict().get("y")
    year = _year(year_text) if year_text else today.year
    start = _date(year, _ALL_MONTHS[match["name"]], 1)
    return period_containing(Grain.MONTH, start, fiscal_start_month)


def _fiscal_quarter(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    quarter = _number(match["q"])
    if not 1 <= quarter <= 4:
        english = f"there is no quarter {quarter}; quarters are Q1 to Q4"
        raise _Invalid("no_quarter", english, quarter=quarter)
    year_text = match.groupdict().get("fy")
    fiscal_year = (
        _fiscal_year_number(year_text) if year_text else _fiscal_year_of(today, fiscal_start_month)
    )
    year_start = _fiscal_year_start(fiscal_year, fiscal_start_month)
    start = _add_months(year_start, 3 * (quarter - 1))
    return period_containing(Grain.QUARTER, start, fiscal_start_month)


def _fiscal_year(match: re.Match[str], today: date, fiscal_start_month: int) -> Period:
    # With a January start a fiscal year is the calendar year, so "2026" and "FY2026" agree.
    start = _fiscal_year_start(_fiscal_year_number(match["y"]), fiscal_start_month)
    return period_containing(Grain.YEAR, start, fiscal_start_month)


def _rule(pattern: str, build: _Builder, *, in_questions: bool = True) -> _Rule:
    # Slashes and hyphens count as part of a word so that "2026" is not found inside
    # "2026-13" and "ce mois" is not found inside "ce mois-ci".
    bounded = rf"(?<![\w/-])(?:{pattern})(?![\w/-])"
    return _Rule(re.compile(bounded), build, in_questions)


_ARTICLE = r"(?:(?:le|la)\s+|l\s*'\s*)?"
_FR_GRAIN = r"semaine|mois|trimestre|annee|exercice"
_FISCAL_YEAR = r"fy\s*[0-9]{2,4}|[0-9]{4}"
_QUESTION_MONTHS = {name: n for name, n in _MONTH_NAMES.items() if name != "may"}

_RULES: tuple[_Rule, ...] = (
    _rule(r"(?P<day>today|yesterday)(?:'s)?", _relative_day),
    _rule(r"(?:d\s*'\s*)?(?P<day>aujourd\s*'?\s*hui|hier)", _relative_day),
    _rule(
        r"(?P<mod>this|current|last|previous|prev|next)\s+"
        r"(?P<grain>week|month|quarter|fiscal\s+year|year|fy)(?:'s)?",
        _relative,
    ),
    _rule(rf"(?P<mod>cette|cet|ce)\s+(?P<grain>{_FR_GRAIN})(?:\s*-\s*ci|\s+ci)?", _relative),
    _rule(
        rf"{_ARTICLE}(?P<grain>{_FR_GRAIN}|an)\s+"
        r"(?P<mod>derniere?|precedente?|passee?|prochaine?|en\s+cours)",
        _relative,
    ),
    _rule(
        rf"{_ARTICLE}(?P<mod>derniere?|precedente?|prochaine?)\s+(?P<grain>{_FR_GRAIN})", _relative
    ),
    _rule(r"(?P<grain>[wmqy]|fy)td", _running),
    _rule(r"(?P<grain>week|month|quarter|year)[\s-]+to[\s-]+date", _running),
    _rule(
        r"depuis\s+(?:le\s+)?debut\s+(?:de\s+la\s+|du\s+|de\s+l\s*'\s*|d\s*'\s*)"
        rf"(?P<grain>{_FR_GRAIN})",
        _running,
    ),
    _rule(r"(?P<y>[0-9]{4})[-/](?P<m>[0-9]{1,2})[-/](?P<d>[0-9]{1,2})", _explicit_day),
    _rule(r"(?P<y>[0-9]{4})\s*-?\s*w(?P<w>[0-9]{1,2})", _iso_week),
    _rule(r"(?P<y>[0-9]{4})[-/](?P<m>[0-9]{1,2})", _numbered_month),
    _rule(rf"(?P<fy>{_FISCAL_YEAR})\s*[-/]?\s*[qt](?P<q>[0-9]{{1,2}})", _fiscal_quarter),
    _rule(rf"[qt](?P<q>[0-9]{{1,2}})\s*[-/]?\s*(?P<fy>{_FISCAL_YEAR})", _fiscal_quarter),
    _rule(r"[qt](?P<q>[1-4])", _fiscal_quarter),
    # Alone, "Q7" is more likely a product name than a typo, so only whole text reports it.
    _rule(r"[qt](?P<q>[0-9]{1,2})", _fiscal_quarter, in_questions=False),
    _rule(r"fy\s*(?P<y>[0-9]{2,4})", _fiscal_year),
    _rule(r"(?P<y>(?:19|20)[0-9]{2})", _fiscal_year),
    _rule(r"(?P<y>[0-9]{4})", _fiscal_year, in_questions=False),
    _rule(rf"(?P<name>{_alternatives(_ALL_MONTHS)})\.?\s+(?P<y>[0-9]{{4}})", _named_month),
    _rule(rf"(?P<name>{_alternatives(_QUESTION_MONTHS)})", _named_month),
    _rule(rf"(?P<name>{_alternatives(_ALL_MONTHS)})", _named_month, in_questions=False),
)
