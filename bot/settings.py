"""Settings: the YAML config file and the environment, read once at start-up into one object.

Only ``process_environment`` reads ``os.environ`` (and the ``.env`` file); nothing else in
kpibot does. Mistakes are reported as ``ConfigError`` with the key path and what was expected
(``targets.0.grain: expected one of day, week, ...``): each problem is a code with parameters
(``SettingError``, ``ConfigProblem``), worded from the catalogs' ``config.*`` messages in the
organisation's language by ``ConfigError.worded``; ``str()`` is the English wording, for logs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from babel import Locale, UnknownLocaleError
from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bot.delivery.notifier import SURFACES, parse_destination
from bot.formatting import Formatter, translations
from bot.importers.canonical import KINDS, mapping_problems
from conversation.authorization import RepFigures
from metrics.alerts import Damping
from metrics.evaluation import Policy
from metrics.key_accounts import KeyAccounts
from metrics.kpis import KPIS
from metrics.limits import MAX_AMOUNT, date_problem
from metrics.periods import Grain, PeriodParseError, parse_period
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook

DEFAULT_CONFIG = "kpibot.yaml"
# Every environment variable kpibot reads (README: configuration reference, .env.example).
VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "TEAMS_CLIENT_ID",
    "TEAMS_CLIENT_SECRET",
    "TEAMS_TENANT_ID",
    "TEAMS_LOGIN_URL",
    "TEAMS_OPENID_METADATA_URL",
    "KPIBOT_TEAMS_UNAUTHENTICATED",
    "PORT",
    "DATABASE_URL",
    "KPIBOT_CONFIG",
)
_SUFFIX = {
    "k": Decimal(10) ** 3,
    "m": Decimal(10) ** 6,
    "md": Decimal(10) ** 9,
    "b": Decimal(10) ** 9,
}


def _english(code: str, params: Mapping[str, object]) -> str:
    return translations("en").gettext(f"config.{code}").format(**params)


class SettingError(ValueError):
    """A value kpibot cannot use: ``config.<code>`` in the catalogs, with ``params``. Raised by
    the parsers below for the config file and for chat (a snooze's duration, a subscription's
    days); ``str()`` is the English wording (pydantic and logs read it)."""

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(_english(code, params))

    def worded(self, fmt: Formatter) -> str:
        return fmt.t(f"config.{self.code}", **self.params)


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake: where (a key path such as ``targets.0.company``; None for the file as a
    whole) and what, as a ``config.<code>`` message with parameters."""

    path: str | None
    code: str
    params: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, path: str | None, error: SettingError) -> ConfigProblem:
        return cls(path, error.code, error.params)

    def worded(self, fmt: Formatter) -> str:
        what = fmt.t(f"config.{self.code}", **self.params)
        return what if self.path is None else f"{self.path}: {what}"

    def __str__(self) -> str:
        what = _english(self.code, self.params)
        return what if self.path is None else f"{self.path}: {what}"


class ConfigError(Exception):
    """A config file that cannot be used, with every problem and its key path. Problems given
    as text (other modules' mapping checks) are already worded. ``locale``: the language the
    file asked for (``organisation.locale``), when it could be read."""

    def __init__(
        self, source: str, problems: Sequence[ConfigProblem | str], locale: str | None = None
    ) -> None:
        self.source = source
        self.problems = list(problems)
        self.locale = locale
        super().__init__(f"{source}:\n" + "\n".join(f"  - {p}" for p in self.problems))

    def worded(self, fmt: Formatter) -> str:
        """``invalid configuration <source>:`` and one problem a line, in ``fmt``'s language."""
        lines = [fmt.t("config.invalid", source=self.source)]
        for problem in self.problems:
            text = problem if isinstance(problem, str) else problem.worded(fmt)
            lines.append(f"  - {text}")
        return "\n".join(lines)


def parse_amount(raw: Any) -> Decimal:
    """``1200000``, ``"1.2M"``, ``"800k"``, ``"1 234 567"``, ``"27.5%"`` (→ 0.275)."""
    if isinstance(raw, bool):
        raise SettingError("amount", got=repr(raw))
    if isinstance(raw, int | float | Decimal):
        return _held_amount(Decimal(str(raw)))
    text = str(raw).strip().replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    match = re.fullmatch(r"([-+]?\d+(?:[.,]\d+)?)\s*(%|k|m|md|b)?", text, re.IGNORECASE)
    if not match:
        raise SettingError("amount", got=repr(raw))
    try:
        number = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation as error:  # pragma: no cover - the regex only lets numbers through
        raise SettingError("amount", got=repr(raw)) from error
    suffix = (match.group(2) or "").lower()
    return _held_amount(number / 100 if suffix == "%" else number * _SUFFIX.get(suffix, Decimal(1)))


class AmountTooLarge(SettingError):
    """An amount beyond what kpibot holds exactly (``metrics.limits.MAX_AMOUNT``)."""


def _held_amount(value: Decimal) -> Decimal:
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        raise AmountTooLarge("amount_too_large", value=f"{value.normalize():f}")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise SettingError("negative_target", value=str(value))
    return value


def _positive_rate(value: Decimal) -> Decimal:
    if value <= 0:
        raise SettingError("rate", value=str(value))
    return value


def _held_date(value: date) -> date:
    if date_problem(value) is not None:
        raise SettingError("date_range", value=value.isoformat())
    return value


Amount = Annotated[Decimal, BeforeValidator(parse_amount)]
TargetAmount = Annotated[Decimal, BeforeValidator(parse_amount), AfterValidator(_not_negative)]
Rate = Annotated[Decimal, BeforeValidator(parse_amount), AfterValidator(_positive_rate)]
HeldDate = Annotated[date, AfterValidator(_held_date)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def known_locale(value: str) -> str:
    try:
        Locale.parse(value)
    except (UnknownLocaleError, ValueError) as error:
        raise SettingError("locale", value=repr(value)) from error
    return value


class Organisation(_Section):
    name: str = "My company"
    locale: str = "en_US"
    timezone: str = "UTC"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    default_grain: Grain = Grain.QUARTER

    _locale = field_validator("locale")(known_locale)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise SettingError("zone", value=repr(value)) from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def language(self) -> str:
        return Locale.parse(self.locale).language


def check_database_url(value: str) -> str:
    """A URL SQLAlchemy can parse, naming a database kind it knows."""
    try:
        make_url(value).get_dialect()
    except NoSuchModuleError:  # a subclass of ArgumentError: first
        raise SettingError("database_kind", kind=repr(value.partition(":")[0])) from None
    except (ArgumentError, ValueError) as error:
        raise SettingError("database_url", error=str(error)) from None
    return value


class Database(_Section):
    url: Annotated[str, AfterValidator(check_database_url)] = "sqlite:///kpibot.db"
    # The folder of the facts snapshots (bot.store.facts_snapshot), relative to the config
    # file; beside an SQLite file by default, none for PostgreSQL unless set.
    snapshots: str | None = None


def _named(value: str) -> str:
    if not value.strip():
        raise SettingError("blank_name")
    return value.strip()


Name = Annotated[str, AfterValidator(_named)]


class KeyAccountsSpec(_Section):
    """Key accounts ("grands comptes"): the accounts of these CRM segments and these accounts
    by name, case aside. Left empty, the key-account KPIs say none are configured."""

    segments: tuple[Name, ...] = ()
    accounts: tuple[Name, ...] = ()

    def definition(self) -> KeyAccounts | None:
        if not self.segments and not self.accounts:
            return None
        return KeyAccounts(frozenset(self.segments), frozenset(self.accounts))


class Evaluation(_Section):
    tolerance: Amount = Decimal("0.05")
    pace: Literal["business_days", "calendar_days"] = "business_days"
    # Public holidays: not business days for pacing, and no digests or evaluations on them.
    holidays: tuple[HeldDate, ...] = ()
    min_sample: int = Field(default=20, ge=0)
    report_ended_for_days: int = Field(default=7, ge=0)
    pacing_grace: Amount = Field(default=Decimal("0.1"), ge=0, le=1)
    # Days a lead is given to convert before it counts in a conversion rate.
    conversion_window: int = Field(default=30, ge=0)
    # A rep counts as new (ramp-up: new against tenured reps) in their first months.
    new_rep_months: int = Field(default=6, ge=1, le=120)
    # Weight of an open deal in the forecast when the CRM gives no probability.
    default_probability: Amount = Field(default=Decimal("0.5"), ge=0, le=1)

    def policy(self) -> Policy:
        return Policy(
            tolerance=self.tolerance,
            business_days=self.pace == "business_days",
            holidays=frozenset(self.holidays),
            min_sample=self.min_sample,
            report_ended_for_days=self.report_ended_for_days,
            pacing_grace=self.pacing_grace,
            conversion_window=self.conversion_window,
            new_rep_months=self.new_rep_months,
        )


class TargetValues(_Section):
    company: TargetAmount | None = None
    regions: dict[str, TargetAmount] = {}
    teams: dict[str, TargetAmount] = {}
    reps: dict[str, TargetAmount] = {}

    def scoped(self) -> list[tuple[Scope, Decimal]]:
        out = [] if self.company is None else [(Scope.company(), self.company)]
        for level, values in (
            (Level.REGION, self.regions), (Level.TEAM, self.teams), (Level.REP, self.reps)
        ):  # fmt: skip
            out.extend((Scope(level, name), value) for name, value in values.items())
        return out


class TargetSpec(TargetValues):
    kpi: str
    grain: Grain = Grain.QUARTER
    periods: dict[str, TargetValues] = {}
    min_sample: int | None = Field(default=None, ge=0)

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, value: str) -> str:
        if value not in KPIS:
            raise SettingError("unknown_kpi", value=repr(value), known=", ".join(KPIS))
        return value


class ColumnMap(_Section):
    """One CSV file and how its columns map onto the canonical model."""

    file: str
    columns: dict[str, str]
    stages: dict[str, Literal["open", "won", "lost"]] = {}
    date_format: str | None = None  # strptime format; ISO dates when absent
    delimiter: str = ","
    # French exports write 1 234,56; thousands separators are accepted only in proper groups.
    decimal_separator: Literal[".", ","] = "."
    encoding: str = "utf-8-sig"


class CsvSource(_Section):
    base_dir: str = "."
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    teams: ColumnMap | None = None
    reps: ColumnMap | None = None
    accounts: ColumnMap | None = None
    opportunities: ColumnMap | None = None
    leads: ColumnMap | None = None
    spend: ColumnMap | None = None
    surveys: ColumnMap | None = None


class Import(_Section):
    csv: dict[str, CsvSource] = {}


# --- CRM and warehouse sources pulled by ``kpibot sync`` (issue 11) -----------------------------

StageStatus = Literal["open", "won", "lost"]
# The secrets each kind of source reads from the environment, as <env_prefix>_<NAME>
# (SALESFORCE_PASSWORD, HUBSPOT_TOKEN, PIPEDRIVE_API_TOKEN, SQL_URL by default).
SOURCE_SECRETS: dict[str, tuple[str, ...]] = {
    "salesforce": (
        "username", "password", "security_token", "consumer_key", "consumer_secret",
        "access_token",
    ),
    "hubspot": ("token",),
    "pipedrive": ("api_token",),
    "sql": ("url",),
    "csv": (),
}  # fmt: skip


class _CrmSource(_Section):
    # Environment variables hold the credentials: <env_prefix>_<NAME>; default the kind's name
    # in capitals. Two sources of one kind need two prefixes.
    env_prefix: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")  # when a record has none
    # Stage names onto open/won/lost, over what the CRM itself says about its stages.
    stages: dict[str, StageStatus] = {}
    timeout: float = Field(default=30.0, gt=0)  # seconds per HTTP request
    max_retries: int = Field(default=4, ge=0, le=10)  # on 429, 5xx and timeouts


class SalesforceSource(_CrmSource):
    kind: Literal["salesforce"]
    # "login", "test" (sandboxes) or a My Domain such as "acme.my"; or instance_url with an
    # access token.
    domain: str = "login"
    instance_url: str | None = None
    api_version: str = "62.0"
    page_size: int = Field(default=2000, ge=200, le=2000)  # Sforce-Query-Options batchSize


class HubSpotSource(_CrmSource):
    kind: Literal["hubspot"]
    host: str = "https://api.hubapi.com"
    page_size: int = Field(default=100, ge=1, le=200)  # the search API's maximum is 200
    # Contact lifecycle stages that count a lead as converted.
    converted_stages: tuple[str, ...] = ("opportunity", "customer", "evangelist")
    # Least time between two reads of the archived deals by incremental syncs: HubSpot lists
    # them whole (no filter on archivedAt), a call per 100 deals in the recycle bin.
    deletions_every: Duration = timedelta(days=1)


class PipedriveSource(_CrmSource):
    kind: Literal["pipedrive"]
    company_domain: str | None = None  # https://<company_domain>.pipedrive.com/api
    base_url: str | None = None  # overrides company_domain (a sandbox, a proxy, a test server)
    page_size: int = Field(default=500, ge=1, le=500)
    # The share of the day's API token budget the first sync's history backfill (a call per
    # deal) leaves for the syncs: it stops once no more than that is left.
    backfill_reserve: float = Field(default=0.5, ge=0, le=1)

    @property
    def api_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        domain = self.company_domain or "api"
        return f"https://{domain}.pipedrive.com/api"


class SqlTable(_Section):
    """One SELECT feeding one canonical table, mapped like a CSV file."""

    query: str
    columns: dict[str, str]
    stages: dict[str, StageStatus] = {}
    # A column of the query's result holding each row's last change: syncs after the first
    # read only rows changed since the last one.
    updated_at: str | None = None
    date_format: str | None = None  # for dates stored as text

    def column_map(self, name: str) -> ColumnMap:
        """The mapping as the import reads it, the query's result standing for a file."""
        return ColumnMap(
            file=name, columns=self.columns, stages=self.stages, date_format=self.date_format
        )


class SqlSource(_Section):
    kind: Literal["sql"]
    env_prefix: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    chunk_rows: int = Field(default=10_000, ge=1)
    teams: SqlTable | None = None
    reps: SqlTable | None = None
    accounts: SqlTable | None = None
    opportunities: SqlTable | None = None
    leads: SqlTable | None = None
    spend: SqlTable | None = None
    surveys: SqlTable | None = None


class CsvSyncSource(CsvSource):
    kind: Literal["csv"]


SourceSpec = Annotated[
    SalesforceSource | HubSpotSource | PipedriveSource | SqlSource | CsvSyncSource,
    Field(discriminator="kind"),
]


def source_env_prefix(spec: SourceSpec) -> str:
    if isinstance(spec, CsvSyncSource):
        return ""
    return spec.env_prefix or spec.kind.upper()


# --- chat: Slack routes, access roles, digest subscriptions, alert delivery (issue 3) ---------

_WEEKDAYS = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{name: i for i, name in enumerate(("lun", "mar", "mer", "jeu", "ven", "sam", "dim"))},
}


def parse_weekdays(raw: Any) -> tuple[int, ...]:
    """``[mon, tue]``, ``"mon-fri"``, ``"lun,mar"`` or ``[0, 1]`` (Monday is 0)."""
    if not isinstance(raw, str | list | tuple):
        raise SettingError("weekdays", got=repr(raw))
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
            continue
        text = str(item).strip().lower()
        if "-" in text:
            first, _, last = (part.strip()[:3] for part in text.partition("-"))
            if first not in _WEEKDAYS or last not in _WEEKDAYS:
                raise SettingError("weekday_range", got=repr(item))
            days.update(range(_WEEKDAYS[first], _WEEKDAYS[last] + 1))
        elif text[:3] in _WEEKDAYS:  # "monday", "lundi"
            days.add(_WEEKDAYS[text[:3]])
        elif text.isdigit() and int(text) <= 6:
            days.add(int(text))
        else:
            raise SettingError("weekdays", got=repr(item))
    if not days:
        raise SettingError("no_weekday")
    return tuple(sorted(days))


def parse_clock_time(raw: Any) -> str:
    """``08:30`` or ``8h30`` → ``08:30``."""
    match = re.fullmatch(r"([01]?\d|2[0-3])\s*[:hH]\s*([0-5]\d)?", str(raw).strip())
    if not match:
        raise SettingError("clock_time", got=repr(raw))
    return f"{int(match.group(1)):02d}:{match.group(2) or '00'}"


# Longer durations (a snooze of 99999999999d) would overflow the calendar.
MAX_DURATION = timedelta(days=3650)
# Duration units in English and French: 30m, 4h, 1d / 2j, 1w / 1 sem, 3 jours, 2 weeks.
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "seconds"), "seconds"),
    **dict.fromkeys(("m", "min", "mins", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hr", "hours", "heure", "heures"), "hours"),
    **dict.fromkeys(("d", "day", "days", "j", "jour", "jours"), "days"),
    **dict.fromkeys(("w", "week", "weeks", "sem", "semaine", "semaines"), "weeks"),
}


class DurationTooLong(SettingError):
    """A readable duration beyond ``MAX_DURATION``: chat says the longest snooze allowed."""


def parse_duration(raw: Any) -> timedelta:
    """``4h``, ``1d``, ``2j``, ``1 sem``, ``30m``, ``90s``, or a number of seconds; at most
    ``MAX_DURATION`` (``DurationTooLong`` beyond)."""
    unusable = SettingError("duration", max=MAX_DURATION.days, got=repr(raw))
    too_long = DurationTooLong("duration", max=MAX_DURATION.days, got=repr(raw))
    if isinstance(raw, timedelta):
        duration = raw
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        if raw < 0 or math.isnan(raw):
            raise unusable
        if raw > MAX_DURATION.total_seconds():
            raise too_long
        duration = timedelta(seconds=raw)
    else:
        match = re.fullmatch(r"(\d{1,12})\s*([a-z]+)", str(raw).strip().lower())
        unit = _DURATION_UNITS.get(match.group(2)) if match else None
        if match is None or unit is None:
            raise unusable
        number = int(match.group(1))
        # Compared before building the timedelta, which overflows past 999 999 999 days.
        if number > MAX_DURATION / timedelta(**{unit: 1}):
            raise too_long
        duration = timedelta(**{unit: number})
    if duration > MAX_DURATION:
        raise too_long
    return duration


def parse_persistence(raw: Any) -> int | timedelta:
    """How long a condition must hold: a number of evaluations (``2``) or a duration (``2d``)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    return parse_duration(raw)


_SCOPE_WORDS = {
    "company": Level.COMPANY, "entreprise": Level.COMPANY, "societe": Level.COMPANY,
    "société": Level.COMPANY, "region": Level.REGION, "région": Level.REGION,
    "team": Level.TEAM, "équipe": Level.TEAM, "equipe": Level.TEAM, "rep": Level.REP,
    "commercial": Level.REP,
}  # fmt: skip


def parse_scope(raw: Any) -> Scope:
    """``company``, ``team Lyon``, ``region EMEA``, ``rep Alice Martin`` (French words too)."""
    word, _, name = str(raw).strip().partition(" ")
    level = _SCOPE_WORDS.get(word.lower())
    if level is None or (level is not Level.COMPANY and not name.strip()):
        raise SettingError("scope", got=repr(raw))
    return Scope.company() if level is Level.COMPANY else Scope(level, name.strip())


Weekdays = Annotated[tuple[int, ...], BeforeValidator(parse_weekdays)]
ClockTime = Annotated[str, BeforeValidator(parse_clock_time)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Persistence = Annotated[int | timedelta, BeforeValidator(parse_persistence)]
ScopeText = Annotated[Scope, BeforeValidator(parse_scope)]
_MON_FRI = (0, 1, 2, 3, 4)


def _zone_name(value: str | None) -> str | None:
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise SettingError("zone", value=repr(value)) from error
    return value


def _destination(value: str) -> str:
    surface, address = parse_destination(value)
    if surface not in SURFACES or not address.strip():
        raise SettingError(
            "destination",
            value=repr(value),
            surfaces=", ".join(f"{name}:<name>" for name in sorted(SURFACES)),
        )
    return value


def _destinations(raw: Any) -> Any:
    """One destination, or a list of them on several surfaces."""
    return [raw] if isinstance(raw, str) else raw


Destination = Annotated[str, AfterValidator(_destination)]
Destinations = Annotated[tuple[Destination, ...], BeforeValidator(_destinations)]


class SlackRoutes(_Section):
    """Where alerts and notices go. Values are destinations: a Slack channel or user id
    (C0123ABCD, or slack:C0123ABCD), teams:<conversation>, webhook:<Workflows webhook> or
    console:<name>; an alert route may list several, on several surfaces."""

    # Company and region alerts; also admin notices when admin_channel is not set.
    leadership_channel: Destinations = ()
    # Delivery problems and stale-data notices for sales-ops.
    admin_channel: Destination | None = None
    team_channels: dict[str, Destinations] = {}  # team name → destinations
    region_channels: dict[str, Destinations] = {}  # region name → destinations (else leadership)
    # Rep name → Slack user id, for reps whose CRM email differs from their Slack email;
    # everyone else is found with users.lookupByEmail.
    rep_users: dict[str, str] = {}

    @property
    def notices_channel(self) -> str | None:
        return self.admin_channel or next(iter(self.leadership_channel), None)


def _as_list(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {key: [value] if isinstance(value, str) else value for key, value in raw.items()}
    return raw


class TeamsWebhook(_Section):
    """A Teams Workflows webhook (the flow "Send webhook alerts to a channel"). Its URL carries
    its own credential, so the config names the environment variable that holds it."""

    url_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")


class TeamsRoutes(_Section):
    """Where alerts go in Microsoft Teams through the bot. Values name conversations the bot
    was installed in or spoken to (``kpibot teams-conversations`` lists them): a team's
    name, ``Team/Channel``, a group chat's title, or ``user:<email>`` for a 1:1 chat. Without
    the bot, routes name a Workflows webhook as ``webhook:<name>``."""

    leadership_channel: str | None = None  # company and region alerts
    team_channels: dict[str, str] = {}  # team name → conversation name
    webhooks: dict[str, TeamsWebhook] = {}  # name → where its URL is


class Access(_Section):
    """Who sees what. Keys are Slack user ids (U0123ABCD), Microsoft Entra (AAD) object ids
    of Teams users, or email addresses."""

    # Leadership and sales-ops: every number, and the admin commands (subscribe, sync...).
    admins: tuple[str, ...] = ()
    # A manager sees their teams and the reps in them.
    managers: Annotated[dict[str, tuple[str, ...]], BeforeValidator(_as_list)] = {}
    # Reps are matched to the CRM by email; list here the ones whose emails differ.
    reps: dict[str, str] = {}  # user id or email → rep name as in the CRM
    # What a user who is none of the above may see: company figures, or nothing.
    unknown_users: Literal["company", "nothing"] = "company"


class Visibility(_Section):
    """What channel messages (alerts, digests, shared answers) may show about reps."""

    # private: a channel learns how many reps are behind, their manager gets names and
    # figures by direct message; team: a team's reps in its own channel; company: everywhere.
    rep_figures: RepFigures = RepFigures.PRIVATE


class SubscriptionSpec(_Section):
    """A daily digest: a destination, a local time, weekdays, a scope and its KPIs."""

    id: str | None = None  # stable name (part of the idempotency key); default channel@time
    channel: Destination
    time: ClockTime
    timezone: str | None = None  # default: organisation.timezone
    days: Weekdays = _MON_FRI
    scope: ScopeText = Scope.company()
    kpis: tuple[str, ...] = ()  # default: the standard digest KPIs
    title: str | None = None
    # Adds the pipeline waterfall of the current month, quarter or year: its movements over
    # the last seven days (a weekly digest, with ``days: [mon]``), and on Slack its chart.
    waterfall: Literal["month", "quarter", "year"] | None = None
    # The digest's chart (revenue against its pace line, per team) in the digest's thread.
    chart: bool = True

    @property
    def key(self) -> str:
        """The stable id: the one given, else the channel and time (``C0LEAD@0830``)."""
        return self.id or f"{self.channel}@{self.time.replace(':', '')}"

    _zone = field_validator("timezone")(_zone_name)

    @field_validator("kpis")
    @classmethod
    def _known_kpis(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [kpi for kpi in value if kpi not in KPIS]
        if unknown:
            raise SettingError("unknown_kpi", value=repr(unknown[0]), known=", ".join(KPIS))
        return value


class QuietHours(_Section):
    start: ClockTime = "20:00"
    end: ClockTime = "08:00"


class AlertDelivery(_Section):
    """When alert notifications may go out (held ones go at the next allowed time)."""

    # A still-firing alert is notified again after this, and only if its gap has moved since;
    # in between, the digest carries it.
    repeat_interval: Duration = timedelta(days=7)
    # Fire only once the condition has held for this many evaluations (or this long), resolve
    # only once it has cleared as long or is back past the threshold by resolve_margin.
    fire_after: Persistence = Field(default=2, alias="for")
    resolve_after: Persistence = 3
    resolve_margin: Amount | None = Decimal("0.05")
    # An alert whose firing state changed flap_limit times within flap_window is unstable:
    # shown as such, not announced again.
    flap_window: Duration = timedelta(days=14)
    flap_limit: int = Field(default=3, ge=2)
    quiet_hours: QuietHours | None = None
    business_days: Weekdays = _MON_FRI
    timezone: str | None = None  # default: organisation.timezone

    _zone = field_validator("timezone")(_zone_name)

    def damping(self, tolerance: Decimal) -> Damping:
        def split(value: int | timedelta) -> tuple[int, timedelta]:
            return (value, timedelta(0)) if isinstance(value, int) else (1, value)

        fire_after, fire_for = split(self.fire_after)
        resolve_after, resolve_for = split(self.resolve_after)
        return Damping(
            fire_after=fire_after,
            fire_for=fire_for,
            resolve_after=resolve_after,
            resolve_for=resolve_for,
            resolve_margin=self.resolve_margin,
            tolerance=tolerance,
            flap_window=self.flap_window,
            flap_limit=self.flap_limit,
        )


# --- scheduling and delivery (issue 4) ---------------------------------------------------


def _crontab(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as error:
        raise SettingError("crontab", got=repr(value)) from error
    return value


class Scheduling(_Section):
    """The clock: when the CRM sync, the target evaluation and the digests run."""

    # Cron expressions in the organisation's time zone (minute hour day month weekday).
    sync_cron: str = "*/15 * * * *"
    # The source(s) the sync job pulls, in order: names under ``sources`` or ``import.csv``;
    # none: the sync only records a run, for installs that import by other means.
    sync_source: str | tuple[str, ...] | None = None

    @property
    def sync_sources(self) -> tuple[str, ...]:
        if self.sync_source is None:
            return ()
        return (self.sync_source,) if isinstance(self.sync_source, str) else self.sync_source

    evaluation_cron: str = "0 9-18 * * mon-fri"
    # A job that could not run at its time (the process was down) still runs, once, if the
    # process is back within this delay; later than that it is skipped until its next time.
    grace_time: Duration = timedelta(hours=1)
    # KPI alerts are held, and sales-ops told once, when the last successful sync is older.
    stale_after: Duration = timedelta(hours=6)
    # A process that claimed a job and stopped renewing its claim for this long is presumed
    # dead; another process (or its own restart) takes the job over.
    claim_lease: Duration = timedelta(minutes=2)
    # How often the clock looks for jobs nobody ran (a dead peer's) and for new subscriptions.
    recovery_interval: Duration = timedelta(minutes=1)
    # Jobs (digest fan-out) run in parallel by this many threads.
    workers: int = Field(default=8, ge=1, le=64)

    _crontabs = field_validator("sync_cron", "evaluation_cron")(_crontab)


class DeliveryPolicy(_Section):
    """Retries of outgoing messages, owned by the outbox alone: at most ``1 + max_retries``
    attempts per message and pass. Rate limits wait for Slack's Retry-After; server errors and
    dropped connections back off exponentially with jitter, and the next attempt looks the
    message up before posting it again."""

    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base: float = Field(default=0.5, gt=0)  # seconds; doubled on each attempt
    backoff_cap: float = Field(default=30.0, gt=0)  # seconds
    # A message still unsent after this long is given up and reported instead of retried.
    give_up_after: Duration = timedelta(hours=6)
    # Sent and failed messages, the alert notification log and finished job claims are
    # deleted once older than this (by the evaluation job), so that a run reads recent history.
    retention: Duration = timedelta(days=30)


class Config(_Section):
    """The YAML file's schema (every key documented in README's configuration section)."""

    organisation: Organisation = Organisation()
    database: Database = Database()
    evaluation: Evaluation = Evaluation()
    key_accounts: KeyAccountsSpec = KeyAccountsSpec()
    fx_rates: dict[CurrencyCode, Rate] = {}
    targets: list[TargetSpec] = []
    # "import" is a Python keyword, hence the alias.
    imports: Import = Field(default=Import(), alias="import")
    sources: dict[str, SourceSpec] = {}
    slack: SlackRoutes = SlackRoutes()
    teams: TeamsRoutes = TeamsRoutes()
    access: Access = Access()
    visibility: Visibility = Visibility()
    subscriptions: list[SubscriptionSpec] = []
    alerts: AlertDelivery = AlertDelivery()
    scheduling: Scheduling = Scheduling()
    delivery: DeliveryPolicy = DeliveryPolicy()

    def source_names(self) -> set[str]:
        """Every declared data source, which ``scheduling.sync_source`` may name."""
        return set(self.imports.csv) | set(self.sources)


class Secrets(BaseModel):
    """Values that only ever come from the environment and are never logged."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: str | None = Field(default=None, repr=False)
    slack_signing_secret: str | None = Field(default=None, repr=False)
    slack_app_token: str | None = Field(default=None, repr=False)
    teams_client_id: str | None = Field(default=None, repr=False)
    teams_client_secret: str | None = Field(default=None, repr=False)
    teams_tenant_id: str | None = Field(default=None, repr=False)
    # Per source name, its credentials by name (``password``, ``token``...).
    sources: dict[str, dict[str, str]] = Field(default={}, repr=False)
    # Per Teams webhook name (``teams.webhooks``), its URL, when its variable is set.
    teams_webhooks: dict[str, str] = Field(default={}, repr=False)

    @property
    def teams_bot_set(self) -> bool:
        """Whether the Teams bot is asked for: either of its credentials is set (both are
        needed, which ``bot.teams.app.credentials`` checks)."""
        return bool(self.teams_client_id or self.teams_client_secret)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    config_path: Path
    database_url: str
    slack_api_url: str | None = None
    # Microsoft's endpoints, replaceable for tests (and sovereign clouds): Entra ID's token
    # service, and the Bot Framework's OpenID metadata naming the keys that sign its requests.
    teams_login_url: str | None = None
    teams_openid_metadata_url: str | None = None
    # Local development only: /api/messages accepts requests without a Bot Framework token.
    teams_unauthenticated: bool = False
    port: int | None = None  # the HTTP server's port (PORT, as hosting platforms set it)
    secrets: Secrets = Secrets()

    @property
    def organisation(self) -> Organisation:
        return self.config.organisation

    @property
    def snapshot_folder(self) -> Path | None:
        """``database.snapshots`` as a path, None when not set."""
        folder = self.config.database.snapshots
        return None if folder is None else self.config_path.parent / folder

    @property
    def redacted_database_url(self) -> str:
        """The database URL with any password masked, for messages and logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def unset_webhook_variables(self) -> list[str]:
        """The ``teams.webhooks`` whose variable is not set, as "name (VARIABLE)"."""
        webhooks = self.config.teams.webhooks
        return [f"{name} ({w.url_env})" for name, w in webhooks.items()
                if name not in self.secrets.teams_webhooks]  # fmt: skip

    def target_book(self) -> TargetBook:
        return TargetBook(build_targets(self.config), self.organisation.fiscal_year_start_month)

    def policy(self) -> Policy:
        policy = self.config.evaluation.policy()
        return dataclasses.replace(policy, key_accounts=self.config.key_accounts.definition())


def build_targets(config: Config) -> list[Target]:
    targets: list[Target] = []
    fsm = config.organisation.fiscal_year_start_month
    for spec in config.targets:
        for scope, value in spec.scoped():
            targets.append(Target(spec.kpi, spec.grain, scope, value, None, spec.min_sample))
        for key, values in spec.periods.items():
            period = parse_period(key, date(2000, 1, 1), fsm)
            for scope, value in values.scoped():
                targets.append(
                    Target(spec.kpi, spec.grain, scope, value, period.key, spec.min_sample)
                )
    return targets


# pydantic's own checks, by error type, as config.* messages (its English ``msg`` is never
# shown): the message and which of the error's context values it names.
_PYDANTIC: dict[str, tuple[str, str | None]] = {
    "extra_forbidden": ("unknown_key", None),
    "missing": ("missing", None),
    "greater_than_equal": ("at_least", "ge"),
    "greater_than": ("above", "gt"),
    "less_than_equal": ("at_most", "le"),
    "less_than": ("below", "lt"),
    "literal_error": ("one_of", "expected"),
    "enum": ("one_of", "expected"),
    "string_pattern_mismatch": ("pattern", "pattern"),
    "union_tag_invalid": ("one_of", "expected_tags"),
    "union_tag_not_found": ("missing", "discriminator"),
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float"), ("expected_integer", None)),
    **dict.fromkeys(("float_parsing", "float_type", "decimal_parsing", "decimal_type",
                     "finite_number"), ("expected_number", None)),
    **dict.fromkeys(("bool_parsing", "bool_type"), ("expected_boolean", None)),
    **dict.fromkeys(("string_type",), ("expected_text", None)),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"),
                    ("expected_mapping", None)),
    **dict.fromkeys(("list_type", "tuple_type", "set_type"), ("expected_list", None)),
    **dict.fromkeys(("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact",
                     "date_type"), ("expected_date", None)),
}  # fmt: skip


def _problem(item: ErrorDetails) -> ConfigProblem | str:
    path = ".".join(str(part) for part in item["loc"]) or None
    ctx = item.get("ctx") or {}
    if isinstance(ctx.get("error"), SettingError):
        return ConfigProblem.of(path, ctx["error"])
    if item["type"] in _PYDANTIC:
        code, named = _PYDANTIC[item["type"]]
        value = "" if named is None else str(ctx[named])
        if code == "one_of":  # pydantic writes "'a', 'b' or 'c'": the choices, without its "or"
            value = ", ".join(re.findall(r"'([^']*)'", value)) or value
        got = item["input"]
        if "discriminator" in ctx:  # a source's kind: name the key itself, and what it said
            path = f"{path}.{str(ctx['discriminator']).strip(chr(39))}"
            got = ctx.get("tag")
        return ConfigProblem(path, code, {"got": repr(got), "value": value})
    # A check of pydantic's that kpibot never meets in practice: its own English words.
    return f"{path}: {item['msg'].removeprefix('Value error, ')}"


def _period_error(key: str, error: PeriodParseError) -> tuple[str, dict[str, object]]:
    """Why ``key`` names no period: the message and its parameters, numbers as written."""
    if error.out_of_range:
        return "period_range", {"text": repr(key)}
    if error.reason is None:
        return "period", {"text": repr(key)}
    widths = {"year": 4, "month": 2}
    numbers = {k: f"{v:0{widths.get(k, 1)}d}" for k, v in error.reason_params.items()}
    return f"period.{error.reason}", {"text": repr(key), **numbers}


def _period_problems(config: Config) -> list[ConfigProblem]:
    problems = []
    fsm = config.organisation.fiscal_year_start_month
    for i, spec in enumerate(config.targets):
        for key in spec.periods:
            path = f"targets.{i}.periods.{key}"
            try:
                period = parse_period(key, date(2000, 1, 1), fsm)
            except PeriodParseError as error:
                problems.append(ConfigProblem(path, *_period_error(key, error)))
                continue
            if period.grain is not spec.grain:
                grains = {"period_grain": period.grain.value, "grain": spec.grain.value}
                problems.append(ConfigProblem(path, "period_grain", grains))
    return problems


def _reference_problems(config: Config) -> list[ConfigProblem | str]:
    """What one section says about another: the sync's source, subscription ids, CSV fields."""
    problems: list[ConfigProblem | str] = []
    declared = config.source_names()
    named = config.scheduling.sync_source
    for i, source in enumerate(config.scheduling.sync_sources):
        if source not in declared:
            key = "scheduling.sync_source" + ("" if isinstance(named, str) else f".{i}")
            names = {"name": repr(source), "known": ", ".join(sorted(declared))}
            code = "no_source" if declared else "no_source.none"
            problems.append(ConfigProblem(key, code, names))
    first: dict[str, int] = {}
    for i, spec in enumerate(config.subscriptions):
        if spec.key in first:
            ids = {"id": repr(spec.key), "first": first[spec.key]}
            problems.append(ConfigProblem(f"subscriptions.{i}.id", "duplicate_id", ids))
        first.setdefault(spec.key, i)
    for key, destination in _routed(config):
        surface, name = parse_destination(destination)
        if surface == "webhook" and name not in config.teams.webhooks:
            known = ", ".join(sorted(config.teams.webhooks)) or "—"
            names = {"name": repr(name), "known": known}
            problems.append(ConfigProblem(key, "unknown_webhook", names))
    csv_sources = [(f"import.csv.{name}", spec) for name, spec in config.imports.csv.items()]
    csv_sources += [
        (f"sources.{name}", spec)
        for name, spec in config.sources.items()
        if isinstance(spec, CsvSyncSource)
    ]
    for key, csv_source in csv_sources:
        for kind in KINDS:
            mapping = getattr(csv_source, kind.name)
            if mapping is not None:
                problems += mapping_problems(f"{key}.{kind.name}", kind, mapping)
    for name, declared_source in config.sources.items():
        if isinstance(declared_source, SqlSource):
            for kind in KINDS:
                table = getattr(declared_source, kind.name)
                if table is not None:
                    key = f"sources.{name}.{kind.name}"
                    problems += mapping_problems(key, kind, table.column_map(key))
    return problems


def _routed(config: Config) -> list[tuple[str, str]]:
    """Every route's destination with its key path (a route may list several)."""
    routes = config.slack
    found: list[tuple[str, Sequence[str]]] = [
        ("slack.leadership_channel", routes.leadership_channel),
        ("slack.admin_channel", () if routes.admin_channel is None else (routes.admin_channel,)),
    ]
    for section in ("team_channels", "region_channels"):
        found += [(f"slack.{section}.{k}", v) for k, v in getattr(routes, section).items()]
    found += [(f"subscriptions.{i}.channel", s.channel) for i, s in enumerate(config.subscriptions)]
    listed = [(key, (values,) if isinstance(values, str) else values) for key, values in found]
    return [
        (key if len(values) == 1 else f"{key}.{n}", value)
        for key, values in listed
        for n, value in enumerate(values)
    ]


class _ConfigLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: ``2026-02-30`` stays text for the schema to refuse with
    its key path, where PyYAML's own date constructor would raise from deep inside the parser,
    and a period key such as ``2026-03-01`` stays the string it was written as."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# A config is a few hundred values; aliases that expand it beyond this are an attack (the
# "billion laughs"), and so is nesting that a config never needs.
_MAX_VALUES = 100_000
_MAX_DEPTH = 50


class _Unreadable(Exception):
    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.problem = ConfigProblem(None, code, params)


def _expanded_size(node: yaml.Node, depth: int, sizes: dict[int, int], open_: set[int]) -> int:
    """Values in ``node`` once its aliases are expanded; each node is counted once (linear time
    however the aliases nest)."""
    if depth > _MAX_DEPTH:
        raise _Unreadable("too_deep", depth=_MAX_DEPTH)
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _Unreadable("alias_loop")
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    open_.add(key)
    total = 1
    for child in children:
        total += _expanded_size(child, depth + 1, sizes, open_)
        if total > _MAX_VALUES:
            raise _Unreadable("too_large", n=_MAX_VALUES)
    open_.discard(key)
    sizes[key] = total
    return total


def _load_yaml(path: Path) -> Any:
    """The file's YAML document, or ``_Unreadable`` saying briefly why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = error.object.count(b"\n", 0, error.start) + 1
        raise _Unreadable("not_utf8", byte=f"{error.object[error.start]:02x}", line=line) from None
    except OSError as error:
        raise _Unreadable("unreadable", error=error.strerror or str(error)) from None
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, 0, {}, set())
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise _Unreadable("yaml", error=str(error)) from None
    except RecursionError:
        raise _Unreadable("too_deep", depth=_MAX_DEPTH) from None
    except ValueError as error:  # an explicit !!timestamp or !!int PyYAML cannot build
        raise _Unreadable("yaml", error=str(error)) from None
    finally:
        loader.dispose()


def _retention_problems(config: Config) -> list[ConfigProblem]:
    """What pruning must never forget while it still matters (``bot.store.retention``)."""
    retention = config.delivery.retention
    needed = {
        "alerts.repeat_interval": config.alerts.repeat_interval,
        "delivery.give_up_after": config.delivery.give_up_after,
        "scheduling.grace_time": config.scheduling.grace_time,
    }
    return [
        ConfigProblem("delivery.retention", "retention", {"setting": key})
        for key, value in needed.items()
        if retention < value
    ]


def _asked_locale(raw: dict[Any, Any]) -> str | None:
    """The ``organisation.locale`` of a file that may be wrong elsewhere, if it is one, so that
    its mistakes are told in its own language."""
    organisation = raw.get("organisation")
    locale = organisation.get("locale") if isinstance(organisation, dict) else None
    try:
        return known_locale(locale) if isinstance(locale, str) else None
    except SettingError:
        return None


def read_config(path: Path) -> Config:
    """Parse and validate one config file; every problem is reported, not just the first."""
    source = str(path)
    try:
        raw = _load_yaml(path) if path.exists() else {}
    except _Unreadable as error:
        raise ConfigError(source, [error.problem]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigProblem(None, "not_mapping")])
    locale = _asked_locale(raw)
    try:
        config = Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, [_problem(item) for item in error.errors()], locale) from None
    problems = [*_period_problems(config), *_reference_problems(config)]
    problems += _retention_problems(config)
    if problems:
        raise ConfigError(source, problems, locale)
    return config


def process_environment(
    process: Mapping[str, str] | None = None, dotenv: Path = Path(".env")
) -> dict[str, str]:
    """The variables kpibot reads: the process environment over those of ``.env`` in the
    working directory, when there is one (what ``.env.example`` says to copy). A variable set
    in the process wins, as with python-dotenv's ``load_dotenv(override=False)``, but
    ``os.environ`` itself is left alone."""
    env = os.environ if process is None else process
    if not dotenv.is_file():
        return dict(env)
    try:
        values = dotenv_values(dotenv, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problem = ConfigProblem(None, "dotenv", {"error": str(error)})
        raise ConfigError(str(dotenv), [problem]) from None
    defaults = {name: value for name, value in values.items() if value is not None}
    return {**defaults, **env}


def config_path(option: str | None, environ: Mapping[str, str]) -> Path:
    return Path(option or environ.get("KPIBOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    env = process_environment() if environ is None else environ
    config = read_config(path)
    url = env.get("DATABASE_URL") or config.database.url
    if env.get("DATABASE_URL"):
        try:
            check_database_url(url)
        except SettingError as error:
            problem = ConfigProblem.of(None, error)
            locale = config.organisation.locale
            raise ConfigError("DATABASE_URL (environment)", [problem], locale) from None
    url = _relative_sqlite(url, path.parent)
    return Settings(
        config=config,
        config_path=path,
        database_url=url,
        slack_api_url=env.get("SLACK_API_URL") or None,
        teams_login_url=env.get("TEAMS_LOGIN_URL") or None,
        teams_openid_metadata_url=env.get("TEAMS_OPENID_METADATA_URL") or None,
        teams_unauthenticated=env.get("KPIBOT_TEAMS_UNAUTHENTICATED") == "dev",
        port=_port(env.get("PORT")),
        secrets=Secrets(
            slack_bot_token=env.get("SLACK_BOT_TOKEN"),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET"),
            slack_app_token=env.get("SLACK_APP_TOKEN"),
            teams_client_id=env.get("TEAMS_CLIENT_ID") or None,
            teams_client_secret=env.get("TEAMS_CLIENT_SECRET") or None,
            teams_tenant_id=env.get("TEAMS_TENANT_ID") or None,
            sources=_source_secrets(config, env),
            teams_webhooks={
                name: env[webhook.url_env]
                for name, webhook in config.teams.webhooks.items()
                if env.get(webhook.url_env)
            },
        ),
    )


def _port(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        problem = ConfigProblem(None, "port", {"got": repr(value)})
        raise ConfigError("PORT (environment)", [problem])
    return int(value)


def _source_secrets(config: Config, env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out = {}
    for name, spec in config.sources.items():
        prefix = source_env_prefix(spec)
        found = {key: env.get(f"{prefix}_{key.upper()}") for key in SOURCE_SECRETS[spec.kind]}
        out[name] = {key: value for key, value in found.items() if value}
    return out


def _relative_sqlite(url: str, base: Path) -> str:
    """A relative SQLite path in the config is relative to the config file, not to the shell's
    working directory, so ``kpibot --config other/kpibot.yaml`` finds its database."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str((base / rest).resolve())
    return url
