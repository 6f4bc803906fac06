"""The config file: values, mistakes reported with their key path, the environment's part."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.formatting import Formatter
from bot.settings import (
    ConfigError,
    SettingError,
    load_settings,
    parse_amount,
    parse_clock_time,
    parse_duration,
    parse_scope,
    parse_weekdays,
)
from metrics.key_accounts import KeyAccounts
from metrics.periods import Grain
from metrics.scopes import Level, Scope


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpibot.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1200000, Decimal(1200000)),
        ("1.2M", Decimal("1200000")),
        ("800k", Decimal("800000")),
        ("1,5M", Decimal("1500000")),
        ("1 234 567", Decimal(1234567)),
        ("25%", Decimal("0.25")),
        ("27,5 %", Decimal("0.275")),
        (0.3, Decimal("0.3")),
    ],
)
def test_amounts(raw: object, expected: Decimal) -> None:
    assert parse_amount(raw) == expected


def test_targets_per_scope_and_named_period(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
organisation: {locale: fr_FR, timezone: Europe/Paris, currency: EUR}
targets:
  - kpi: revenue
    grain: quarter
    company: 4.5M
    teams: {Lyon: 800k}
    periods:
      2026-Q4: {company: 5M}
  - kpi: cpa
    grain: month
    company: 1500
    min_sample: 5
""",
    )
    settings = load_settings(path, {})
    book = settings.target_book()
    keys = {(t.kpi, t.scope, t.grain, t.period_key): t.value for t in book}
    assert keys == {
        ("revenue", Scope.company(), Grain.QUARTER, None): Decimal("4500000"),
        ("revenue", Scope(Level.TEAM, "Lyon"), Grain.QUARTER, None): Decimal("800000"),
        ("revenue", Scope.company(), Grain.QUARTER, "2026-Q4"): Decimal("5000000"),
        ("cpa", Scope.company(), Grain.MONTH, None): Decimal(1500),
    }
    assert [t.min_sample for t in book if t.kpi == "cpa"] == [5]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("organisaton: {}", "organisaton: unknown key"),
        ("organisation: {timezone: Europe/Pariss}", "organisation.timezone: unknown time zone"),
        ("organisation: {locale: xx_YY}", "organisation.locale: unknown locale"),
        ("organisation: {fiscal_year_start_month: 13}", "organisation.fiscal_year_start_month"),
        ("targets: [{kpi: revenu}]", "targets.0.kpi: unknown KPI 'revenu'"),
        ("targets: [{kpi: revenue, grain: quartr}]", "targets.0.grain"),
        ("targets: [{kpi: revenue, company: lots}]", "targets.0.company: expected a number"),
        ("targets: [{kpi: revenue, teams: {Lyon: x}}]", "targets.0.teams.Lyon"),
        (
            "targets: [{kpi: revenue, periods: {2026-Q7: {company: 1}}}]",
            "targets.0.periods.2026-Q7",
        ),
        (
            "targets: [{kpi: revenue, grain: month, periods: {2026-Q3: {company: 1}}}]",
            "targets.0.periods.2026-Q3: a quarter, but this target's grain is month",
        ),
        ("evaluation: {pace: weekly}", "evaluation.pace"),
        ("- a\n- list", "(top level): expected a mapping"),
        ("targets: [\n", "not valid YAML"),
    ],
)
def test_mistakes_name_their_key_path(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, text), {})
    assert problem in str(raised.value)
    assert str(tmp_path) in str(raised.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, "organisation: {currency: euro, colour: red}"), {})
    assert len(raised.value.problems) == 2


def test_database_url_from_environment_and_relative_sqlite(tmp_path: Path) -> None:
    path = write(tmp_path, "database: {url: 'sqlite:///data/kpi.db'}")
    assert load_settings(path, {}).database_url == f"sqlite:///{tmp_path}/data/kpi.db"
    env = {"DATABASE_URL": "postgresql+psycopg://u:secret@db/kpi"}
    settings = load_settings(path, env)
    assert settings.database_url == env["DATABASE_URL"]
    assert "secret" not in settings.redacted_database_url


def test_secrets_come_from_the_environment_and_are_never_printed(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-very-secret", "SLACK_SIGNING_SECRET": "shh"}
    settings = load_settings(write(tmp_path, ""), env)
    assert settings.secrets.slack_bot_token == "xoxb-very-secret"
    assert "xoxb-very-secret" not in repr(settings)
    assert "shh" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2j", timedelta(days=2)),
        ("3 jours", timedelta(days=3)),
        ("1 sem", timedelta(weeks=1)),
        ("2 semaines", timedelta(weeks=2)),
        ("1d", timedelta(days=1)),
        ("30m", timedelta(minutes=30)),
        ("4 h", timedelta(hours=4)),
    ],
)
def test_durations_in_english_and_french(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_an_unknown_duration_unit_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="expected a duration such as 30m"):
        parse_duration("3 lunes")


@pytest.mark.parametrize(
    ("raw", "days"),
    [
        ("mon-fri", (0, 1, 2, 3, 4)),
        ("lun-ven", (0, 1, 2, 3, 4)),
        ("sam,dim", (5, 6)),
        ("lundi,mercredi", (0, 2)),
        (["tue", "jeu"], (1, 3)),
        ([0, 6], (0, 6)),
    ],
)
def test_weekdays_in_english_and_french(raw: object, days: tuple[int, ...]) -> None:
    assert parse_weekdays(raw) == days


@pytest.mark.parametrize(
    ("parse", "raw", "english", "french"),
    [
        (parse_duration, "3 lunes",
         "expected a duration such as 30m, 4h or 1d, at most 3650d, got '3 lunes'",
         "durée attendue, par exemple 30m, 4h, 2j ou 1 sem, au plus 3650j, reçu '3 lunes'"),
        (parse_weekdays, "lun-xyz",
         "expected a range of weekdays such as mon-fri, got 'lun-xyz'",
         "plage de jours attendue, par exemple lun-ven, reçu 'lun-xyz'"),
        (parse_clock_time, "25h",
         "expected a time of day such as 08:30, got '25h'",
         "heure attendue, par exemple 08:30 ou 8h30, reçu '25h'"),
        (parse_scope, "ville Lyon",
         "expected company, team Lyon, region EMEA or rep Alice Martin, got 'ville Lyon'",
         "attendu entreprise, équipe Lyon, région EMEA ou commercial Alice Martin, reçu "
         "'ville Lyon'"),
    ],
)  # fmt: skip
def test_a_setting_error_is_a_code_worded_in_each_language(parse, raw, english, french) -> None:
    with pytest.raises(SettingError) as raised:
        parse(raw)
    assert str(raised.value) == english
    assert raised.value.worded(Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))) == french


def test_key_accounts_and_new_reps_reach_the_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
evaluation: {new_rep_months: 4}
key_accounts: {segments: [" Grands comptes "], accounts: [Crédit Hexagone SA]}
""",
    )
    policy = load_settings(path, environ={}).policy()
    assert policy.new_rep_months == 4
    assert policy.key_accounts == KeyAccounts(
        frozenset({"Grands comptes"}), frozenset({"Crédit Hexagone SA"})
    )


def test_without_key_accounts_the_policy_has_none(tmp_path: Path) -> None:
    policy = load_settings(write(tmp_path, "key_accounts: {segments: []}\n"), environ={}).policy()
    assert (policy.key_accounts, policy.new_rep_months) == (None, 6)
