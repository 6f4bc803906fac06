"""Locale formatting: numbers, money, dates, periods, statuses and the small UI vocabulary.

Every separator, symbol and date pattern comes from Babel (CLDR) for the organisation's locale;
nothing here hand-writes a thousands separator or a month name. The words CLDR does not know
(status names, "target", "and 3 more", every chat message) come from the gettext catalogs in
``bot/locale``, English and French; other languages fall back to English words with their own
number and date formats.

Rounding is half-up (``27.45 %`` shows as ``27,5 %``), done here before Babel, whose own
quantisation would round half-even.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from importlib.abc import Traversable
from importlib.resources import files
from io import BytesIO
from typing import TYPE_CHECKING

from babel import Locale
from babel.dates import (
    format_date,
    format_interval,
    format_skeleton,
    format_time,
    get_datetime_format,
    get_day_names,
    get_quarter_names,
    tokenize_pattern,
)
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import (
    NumberPattern,
    get_currency_precision,
    get_plus_sign_symbol,
)
from babel.support import Translations
from babel.units import format_unit

from bot.crm_text import one_line
from metrics.evaluation import Status
from metrics.kpis import Kpi, Reason, Unit
from metrics.periods import Grain, Period
from metrics.scopes import Level, Scope

if TYPE_CHECKING:
    from bot.settings import Organisation

__all__ = ["STATUS_EMOJI", "Formatter", "languages"]

# Amounts from this size up are shown without cents: "1 234 567 €", but "12,50 €".
WHOLE_MONEY_FROM = Decimal(100)

STATUS_EMOJI: dict[Status, str] = {
    Status.ACHIEVED: "✅",
    Status.ON_TRACK: "🟢",
    Status.AT_RISK: "🟠",
    Status.MISSED: "🔴",
    Status.NO_DATA: "⚪",
}

# The words (UI vocabulary, chat messages, refusals, problems) live in gettext catalogs,
# bot/locale/<language>/LC_MESSAGES/kpibot.po, one per language with the same message ids (a
# test checks that, and that French renders no English). Ids are symbolic ("status.at_risk");
# values are str.format templates. None may contain Slack's control characters & < >, so that
# templates can put them into mrkdwn unescaped. Units follow their number after a no-break
# space, as Babel's own units do, so that "+2,1 pts" never wraps between the two.
DOMAIN = "kpibot"
CATALOGS = files("bot.locale")


def catalog_path(language: str) -> Traversable:
    return CATALOGS.joinpath(language, "LC_MESSAGES", f"{DOMAIN}.po")


def languages() -> tuple[str, ...]:
    """The languages that have a catalog (others use English words)."""
    return tuple(
        sorted(d.name for d in CATALOGS.iterdir() if d.is_dir() and catalog_path(d.name).is_file())
    )


@functools.cache
def translations(language: str) -> Translations:
    """``language``'s catalog, compiled once per process from its .po file."""
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def _filled(text: str, values: Mapping[str, object]) -> str:
    """``text`` with ``values`` filled in. A sentence that ends on a value ending in a full
    stop, such as an abbreviation (``lun., ven.``), ends there: its own full stop is dropped,
    as typography wants, rather than printed twice (``ven..``)."""
    filled = text.format(**values)
    _, brace, last = text.rpartition("{")
    name = last[: -len("}.")] if brace and last.endswith("}.") else None
    if name is not None and name in values and str(values[name]).endswith("."):
        return filled[:-1]
    return filled


def _with_digits(pattern: NumberPattern, digits: int, *, signed: bool, plus: str) -> NumberPattern:
    """The locale's own pattern with a fixed number of decimals and, if ``signed``, an explicit
    plus sign on positive values (CLDR patterns only carry the minus)."""
    out = copy.copy(pattern)
    out.frac_prec = (digits, digits)
    if signed:
        out.prefix = (plus + pattern.prefix[0], pattern.prefix[1])
    return out


class Formatter:
    """Formats values for one organisation: its locale (numbers, dates, words), its base
    currency and its time zone. Cheap to build; build one per message or keep one per org."""

    def __init__(self, locale: str, currency: str, zone: tzinfo) -> None:
        self.locale = Locale.parse(locale)
        self.currency = currency
        self.zone = zone
        self.language: str = self.locale.language
        self._words = translations(self.language if self.language in languages() else "en")
        self._cents = min(2, get_currency_precision(currency))
        self._plus = get_plus_sign_symbol(self.locale)
        self._money_pattern = self.locale.currency_formats["standard"]
        self._percent_pattern = self.locale.percent_formats[None]
        self._decimal_pattern = self.locale.decimal_formats[None]
        # The locale's integer pattern ("#,##0", or "#,##,##0" in India), for Babel's units.
        self._integer_pattern = self._decimal_pattern.pattern.split(";")[0].split(".")[0]

    @classmethod
    def for_organisation(cls, organisation: Organisation) -> Formatter:
        return cls(organisation.locale, organisation.currency, organisation.zone)

    def __repr__(self) -> str:
        return f"Formatter({self.locale!s}, {self.currency}, {self.zone})"

    # --- words ---------------------------------------------------------------------------------

    def t(self, key: str, **values: object) -> str:
        """The message ``key`` in this formatter's language, with ``values`` filled in."""
        text = self._words.gettext(key)
        if text == key:
            raise KeyError(f"no message {key!r} in the {self.language} catalog")
        return _filled(text, values)

    def tn(self, key: str, n: int, **values: object) -> str:
        """A phrase that agrees with the count ``n`` (formatted in the locale as ``{n}``)."""
        text = self._words.ngettext(key, f"{key}_plural", n)
        if text in (key, f"{key}_plural"):
            raise KeyError(f"no message {key!r} in the {self.language} catalog")
        return _filled(text, {"n": self.number(n, digits=0), **values})

    # --- numbers -------------------------------------------------------------------------------

    def _apply(
        self,
        pattern: NumberPattern,
        value: Decimal,
        digits: int,
        *,
        signed: bool = False,
        currency: str | None = None,
    ) -> str:
        # Round half-up here so that Babel's half-even quantisation has nothing left to do, and
        # turn a rounded -0.0 into 0.0 so that it shows without a sign.
        quantum = Decimal(1).scaleb(-(digits + pattern.scale))
        rounded = Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)
        if rounded.is_zero():
            rounded = abs(rounded)
            signed = False
        chosen = _with_digits(pattern, digits, signed=signed, plus=self._plus)
        return str(chosen.apply(rounded, self.locale, currency=currency, currency_digits=False))

    def money(self, value: Decimal, *, signed: bool = False, whole: bool = False) -> str:
        """``1 234 567 €`` / ``$1,234,567``; cents only below 100 (``12,50 €``) except for 0,
        and never with ``whole`` (the parts of a figure shown in whole units)."""
        # Compare once rounded to cents, so that 99.999 shows as "100 €", not "100,00 €"; and
        # nothing is nothing: "0 €", not "0,00 €".
        cents = abs(value).quantize(Decimal(1).scaleb(-self._cents), rounding=ROUND_HALF_UP)
        digits = 0 if whole or cents >= WHOLE_MONEY_FROM or cents.is_zero() else self._cents
        return self._apply(
            self._money_pattern, value, digits, signed=signed, currency=self.currency
        )

    def percent(self, fraction: Decimal, *, signed: bool = False) -> str:
        """A fraction as a percentage with one decimal: 0.274 → ``27,4 %`` / ``27.4%``."""
        return self._apply(self._percent_pattern, fraction, 1, signed=signed)

    def change(self, relative: Decimal) -> str:
        """A relative change, always signed: 0.123 → ``+12,3 %`` / ``+12.3%``."""
        return self.percent(relative, signed=True)

    def points(self, delta: Decimal) -> str:
        """A difference between two fractions in percentage points: 0.021 → ``+2,1 pts``."""
        value = self._apply(self._decimal_pattern, delta * 100, 1, signed=True)
        return self.t("points", value=value)

    def number(self, value: Decimal | int, *, digits: int = 0, signed: bool = False) -> str:
        return self._apply(self._decimal_pattern, Decimal(value), digits, signed=signed)

    def days(self, value: Decimal | int, *, signed: bool = False) -> str:
        """Whole days with the CLDR unit name: ``42 jours`` / ``42 days`` / ``1 day``."""
        rounded = Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if rounded.is_zero():
            rounded, signed = abs(rounded), False
        whole = self._integer_pattern
        pattern = f"{self._plus}{whole};-{whole}" if signed else whole
        return format_unit(rounded, "duration-day", "long", format=pattern, locale=self.locale)

    def multiple(self, value: Decimal, *, signed: bool = False) -> str:
        """A ratio such as pipeline coverage: ``2,3×`` / ``2.3×``."""
        return self.t("multiple", value=self.number(value, digits=1, signed=signed))

    def score(self, value: Decimal, *, signed: bool = False) -> str:
        """A CSAT or NPS score, one decimal: ``4,3`` / ``4.3``."""
        return self.number(value, digits=1, signed=signed)

    def value(self, kpi: Kpi, value: Decimal | None) -> str:
        """A KPI value in its unit; ``no data`` when there is none."""
        if value is None:
            return self.t("no_data")
        return self._in_unit(kpi.unit, value, signed=False)

    def delta(self, kpi: Kpi, value: Decimal | None) -> str:
        """A signed difference in the KPI's unit (a gap, a change): ``-120 000 €``,
        ``+2,1 pts`` for percentages, ``+3 jours``; ``—`` when there is none."""
        if value is None:
            return self.t("dash")
        if kpi.unit is Unit.PERCENT:
            return self.points(value)
        return self._in_unit(kpi.unit, value, signed=True)

    def _in_unit(self, unit: Unit, value: Decimal, *, signed: bool) -> str:
        match unit:
            case Unit.MONEY:
                return self.money(value, signed=signed)
            case Unit.PERCENT:
                return self.percent(value, signed=signed)
            case Unit.MULTIPLE:
                return self.multiple(value, signed=signed)
            case Unit.DAYS:
                return self.days(value, signed=signed)
            case Unit.SCORE:
                return self.score(value, signed=signed)

    # --- dates and periods ---------------------------------------------------------------------

    def day_month(self, day: date) -> str:
        """``1 oct.`` / ``Oct 1``: a day on a chart's axis, its year in the title."""
        return str(format_skeleton("MMMd", day, locale=self.locale))

    def dates(self, start: date, end: date) -> str:
        """A span of days as CLDR writes it: ``1–27 oct. 2026`` / ``Oct 1 – 27, 2026``."""
        return str(format_interval(start, end, "yMMMd", locale=self.locale))

    def date(self, day: date, length: str = "medium") -> str:
        """``26 nov. 2026`` / ``Nov 26, 2026``; ``length="full"`` adds the weekday."""
        return format_date(day, length, locale=self.locale)

    def datetime(self, moment: datetime) -> str:
        """An aware moment in the organisation's zone, to the minute: ``26 nov. 2026, 09:30``."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime: kpibot only formats timezone-aware times")
        local = moment.astimezone(self.zone)
        return (
            str(get_datetime_format("medium", locale=self.locale))
            .replace("{1}", format_date(local, "medium", locale=self.locale))
            .replace("{0}", format_time(local, "short", locale=self.locale))
        )

    def weekday(self, day: int) -> str:
        """A weekday's abbreviated name (Monday is 0): ``lun.`` / ``Mon``."""
        return str(get_day_names("abbreviated", locale=self.locale)[day])

    def period(self, period: Period) -> str:
        """``T3 2026`` / ``Q3 2026``, ``novembre 2026``, ``semaine 48 de 2026`` / ``week 48 of
        2026``, ``26 nov. 2026``, ``2026``, and ``exercice 2027`` / ``FY2027`` for fiscal years.

        Labels name the whole period even when ``end`` was cut short (to date, like for like).
        Weeks are ISO weeks whatever the locale's own week rules (en_US counts from Sunday), so
        the CLDR pattern is filled in with the ISO numbers rather than handed to Babel.
        """
        start = period.start
        match period.grain:
            case Grain.DAY:
                return self.date(start)
            case Grain.WEEK:
                iso = start.isocalendar()
                return self._skeleton("yw", w=self.number(iso.week), Y=str(iso.year))
            case Grain.MONTH:
                return format_skeleton("yMMMM", start, locale=self.locale)
            case Grain.QUARTER:
                assert period.quarter is not None  # always set for a quarter
                names = get_quarter_names("abbreviated", locale=self.locale)
                year = self._year(period)
                return self._skeleton("yQQQ", Q=names[period.quarter], y=year)
            case Grain.YEAR:
                return self._year(period)

    def _year(self, period: Period) -> str:
        if period.fiscal_start_month == 1:
            return str(period.fiscal_year)
        return self.t("fiscal_year", year=period.fiscal_year)

    def _skeleton(self, skeleton: str, **fields: str) -> str:
        """A CLDR skeleton's pattern for this locale with its fields replaced by ``fields``."""
        pattern = self.locale.datetime_skeletons[skeleton].pattern
        parts = []
        for _kind, token in tokenize_pattern(pattern):
            if isinstance(token, tuple):
                parts.append(fields[token[0]])  # a field: (letter, repeat count)
            else:
                parts.append(token)
        return "".join(parts)

    # --- domain words --------------------------------------------------------------------------

    def status(self, status: Status) -> str:
        return self.t(f"status.{status.value}")

    def emoji(self, status: Status) -> str:
        return STATUS_EMOJI[status]

    def kpi_label(self, kpi: Kpi) -> str:
        return self.t(f"kpi.{kpi.id}")

    def reason(self, reason: Reason) -> str:
        """Why a KPI has no value, in a few words: "période terminée", "aucun nouveau client"."""
        return self.t(f"reason.{reason.value}")

    def scope(self, scope: Scope) -> str:
        """``Entreprise``, ``Équipe EMEA``, or a rep's name on one line (raw: escape it for
        Slack)."""
        if scope.level is Level.COMPANY:
            return self.t("scope.company")
        return self.t(f"scope.{scope.level.value}", name=one_line(scope.name))

    def breakdown_title(self, level: Level) -> str:
        return self.t(f"by.{level.value}")
