"""Settings: the YAML config file and the environment, read once at start-up into one object.

Nothing else in kpibot reads ``os.environ``. Mistakes are reported as ``ConfigError`` with the
key path and what was expected (``targets.0.grain: expected one of day, week, ...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url

from metrics.evaluation import Policy
from metrics.kpis import KPIS
from metrics.periods import Grain, PeriodParseError, parse_period
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook

DEFAULT_CONFIG = "kpibot.yaml"
_SUFFIX = {
    "k": Decimal(10) ** 3,
    "m": Decimal(10) ** 6,
    "md": Decimal(10) ** 9,
    "b": Decimal(10) ** 9,
}


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` lists every problem with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))


def parse_amount(raw: Any) -> Decimal:
    """``1200000``, ``"1.2M"``, ``"800k"``, ``"1 234 567"``, ``"27.5%"`` (→ 0.275)."""
    if isinstance(raw, bool):
        raise ValueError("expected a number such as 1200000, 1.2M, 800k or 25%")
    if isinstance(raw, int | float | Decimal):
        return Decimal(str(raw))
    text = str(raw).strip().replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    match = re.fullmatch(r"([-+]?\d+(?:[.,]\d+)?)\s*(%|k|m|md|b)?", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a number such as 1200000, 1.2M, 800k or 25%, got {raw!r}")
    try:
        number = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation as error:  # pragma: no cover - the regex only lets numbers through
        raise ValueError(f"not a number: {raw!r}") from error
    suffix = (match.group(2) or "").lower()
    if suffix == "%":
        return number / 100
    return number * _SUFFIX.get(suffix, Decimal(1))


Amount = Annotated[Decimal, BeforeValidator(parse_amount)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Section):
    name: str = "My company"
    locale: str = "en_US"
    timezone: str = "UTC"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    default_grain: Grain = Grain.QUARTER

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError) as error:
            raise ValueError(f"unknown locale {value!r}; use e.g. fr_FR or en_US") from error
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}; use e.g. Europe/Paris") from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def language(self) -> str:
        return Locale.parse(self.locale).language


class Database(_Section):
    url: str = "sqlite:///kpibot.db"


class Evaluation(_Section):
    tolerance: Amount = Decimal("0.05")
    pace: Literal["business_days", "calendar_days"] = "business_days"
    holidays: tuple[date, ...] = ()
    min_sample: int = Field(default=20, ge=0)
    report_ended_for_days: int = Field(default=7, ge=0)
    # Weight of an open deal in the forecast when the CRM gives no probability.
    default_probability: Amount = Field(default=Decimal("0.5"), ge=0, le=1)

    def policy(self) -> Policy:
        return Policy(
            tolerance=self.tolerance,
            business_days=self.pace == "business_days",
            holidays=frozenset(self.holidays),
            min_sample=self.min_sample,
            report_ended_for_days=self.report_ended_for_days,
        )


class TargetValues(_Section):
    company: Amount | None = None
    regions: dict[str, Amount] = {}
    teams: dict[str, Amount] = {}
    reps: dict[str, Amount] = {}

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
            raise ValueError(f"unknown KPI {value!r}; expected one of {', '.join(KPIS)}")
        return value


class ColumnMap(_Section):
    """One CSV file and how its columns map onto the canonical model."""

    file: str
    columns: dict[str, str]
    stages: dict[str, Literal["open", "won", "lost"]] = {}
    date_format: str | None = None  # strptime format; ISO dates when absent
    delimiter: str = ","
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


class Config(_Section):
    """The YAML file's schema (every key documented in README's configuration section)."""

    organisation: Organisation = Organisation()
    database: Database = Database()
    evaluation: Evaluation = Evaluation()
    fx_rates: dict[str, Amount] = {}
    targets: list[TargetSpec] = []
    # "import" is a Python keyword, hence the alias.
    imports: Import = Field(default=Import(), alias="import")


class Secrets(BaseModel):
    """Values that only ever come from the environment and are never logged."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: str | None = Field(default=None, repr=False)
    slack_signing_secret: str | None = Field(default=None, repr=False)
    slack_app_token: str | None = Field(default=None, repr=False)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    config_path: Path
    database_url: str
    slack_api_url: str | None = None
    secrets: Secrets = Secrets()

    @property
    def organisation(self) -> Organisation:
        return self.config.organisation

    @property
    def redacted_database_url(self) -> str:
        """The database URL with any password masked, for messages and logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def target_book(self) -> TargetBook:
        return TargetBook(build_targets(self.config), self.organisation.fiscal_year_start_month)

    def policy(self) -> Policy:
        return self.config.evaluation.policy()


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


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and its section)"
        out.append(f"{_location(item['loc'])}: {message}")
    return out


def _period_problems(config: Config) -> list[str]:
    problems = []
    fsm = config.organisation.fiscal_year_start_month
    for i, spec in enumerate(config.targets):
        for key in spec.periods:
            try:
                period = parse_period(key, date(2000, 1, 1), fsm)
            except PeriodParseError as error:
                problems.append(f"targets.{i}.periods.{key}: {error}")
                continue
            if period.grain is not spec.grain:
                problems.append(
                    f"targets.{i}.periods.{key}: a {period.grain.value}, but this target's "
                    f"grain is {spec.grain.value}"
                )
    return problems


def read_config(path: Path) -> Config:
    """Parse and validate one config file; every problem is reported, not just the first."""
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as error:
        raise ConfigError(source, [f"not valid YAML: {error}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections"])
    try:
        config = Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, _problems(error)) from None
    problems = _period_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def config_path(option: str | None, environ: Mapping[str, str]) -> Path:
    return Path(option or environ.get("KPIBOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    config = read_config(path)
    url = env.get("DATABASE_URL") or config.database.url
    url = _relative_sqlite(url, path.parent)
    return Settings(
        config=config,
        config_path=path,
        database_url=url,
        slack_api_url=env.get("SLACK_API_URL") or None,
        secrets=Secrets(
            slack_bot_token=env.get("SLACK_BOT_TOKEN"),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET"),
            slack_app_token=env.get("SLACK_APP_TOKEN"),
        ),
    )


def _relative_sqlite(url: str, base: Path) -> str:
    """A relative SQLite path in the config is relative to the config file, not to the shell's
    working directory, so ``kpibot --config other/kpibot.yaml`` finds its database."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str((base / rest).resolve())
    return url
