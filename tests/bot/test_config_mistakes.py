"""Config mistakes through the real command line: every command that loads the config exits 2
with the key path and a message, never a traceback or a hang (issue 10, "Configuration")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import main

# The billion laughs: ten levels of nine aliases each, 10^9 values once expanded.
ALIAS_BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
)
CSV_SOURCE = "import: {csv: {crm: {accounts: {file: a.csv, columns: {name: account}%s}}}}"

MISTAKES = [
    # (what is wrong, the config, the whole problem line the user reads)
    ("negative target", "targets: [{kpi: revenue, company: -5}]",
     "targets.0.company: a target cannot be negative, got -5"),
    ("negative team target", "targets: [{kpi: revenue, teams: {Lyon: -800k}}]",
     "targets.0.teams.Lyon: a target cannot be negative, got -800000"),
    ("a target beyond what is held exactly",
     "targets: [{kpi: revenue, company: 1000000000000000000000000000000}]",
     "targets.0.company: 1000000000000000000000000000000 is beyond the largest amount kpibot "
     "holds exactly (below 10 000 000 000 000)"),
    ("10^17 as a target", "targets: [{kpi: revenue, periods: {2026-Q4: {company: 1e17}}}]",
     "targets.0.periods.2026-Q4.company: expected a number such as 1200000, 1.2M, 800k or 25%, "
     "got '1e17'"),
    ("a blank key-account segment", "key_accounts: {segments: ['Grands comptes', ' ']}",
     "key_accounts.segments.1: an empty name: write the segment's or the account's name, or "
     "remove the entry"),
    ("key accounts not a list", "key_accounts: {accounts: 12}",
     "key_accounts.accounts: expected a list"),
    ("new reps for no month", "evaluation: {new_rep_months: 0}",
     "evaluation.new_rep_months: must be at least 1, got 0"),
    ("fx rate of zero", "fx_rates: {GBP: 0}",
     "fx_rates.GBP: an exchange rate must be above 0, got 0"),
    ("negative fx rate", "fx_rates: {USD: -0.92}",
     "fx_rates.USD: an exchange rate must be above 0, got -0.92"),
    ("sync_source naming no source", "scheduling: {sync_source: crm}",
     "scheduling.sync_source: no source named 'crm': none is declared under sources or "
     "import.csv"),
    ("sync_source naming another source",
     CSV_SOURCE % "" + "\nscheduling: {sync_source: hubspot}",
     "scheduling.sync_source: no source named 'hubspot' (declared: crm)"),
    ("sync_source list naming a missing source",
     CSV_SOURCE % "" + "\nsources: {warehouse: {kind: sql}}\n"
     "scheduling: {sync_source: [crm, warehouse, hubspot]}",
     "scheduling.sync_source.2: no source named 'hubspot' (declared: crm, warehouse)"),
    ("unknown field in a CSV source under sources",
     "sources: {drop: {kind: csv, accounts: {file: a.csv, columns: {name: n, size: s}}}}",
     "sources.drop.accounts.columns.size: unknown field for accounts; expected one of id, "
     "name, segment, industry, country"),
    ("a route on a surface kpibot does not know",
     "slack: {team_channels: {Lyon: [C0LYON, tems:lyon]}}",
     "slack.team_channels.Lyon.1: 'tems:lyon' is not a destination: expected a Slack id such "
     "as C0123ABCD, or one of console:<name>, slack:<name>, teams:<name>, webhook:<name>"),
    ("a digest to a destination without a name", "subscriptions: [{channel: 'teams:', "
     "time: '08:30'}]",
     "subscriptions.0.channel: 'teams:' is not a destination: expected a Slack id such as "
     "C0123ABCD, or one of console:<name>, slack:<name>, teams:<name>, webhook:<name>"),
    ("a chart switch that is not a yes or a no",
     "subscriptions: [{channel: C1, time: '08:30', chart: sometimes}]",
     "subscriptions.0.chart: expected true or false, got 'sometimes'"),
    ("duplicate subscription ids",
     "subscriptions: [{id: lead, channel: C1, time: '08:30'}, {id: lead, channel: C2, "
     "time: '09:00'}]",
     "subscriptions.1.id: 'lead' is already the id of subscriptions.0; give each subscription "
     "its own id"),
    ("duplicate default subscription ids",
     "subscriptions: [{channel: C1, time: '08:30'}, {channel: C1, time: 8h30}]",
     "subscriptions.1.id: 'C1@0830' is already the id of subscriptions.0; give each "
     "subscription its own id"),
    ("delimiter of two characters", CSV_SOURCE % ", delimiter: ';;'",
     "import.csv.crm.accounts.delimiter: expected one character such as , or ; (not a quote or "
     "a line break), got ';;'"),
    ("unknown CSV field", CSV_SOURCE % ", columns: {name: account, size: employees}",
     "import.csv.crm.accounts.columns.size: unknown field for accounts; expected one of id, "
     "name, segment, industry, country"),
    ("impossible holiday", "evaluation: {holidays: [2026-02-30]}",
     "evaluation.holidays.0: expected a date such as 2026-12-01, got '2026-02-30'"),
    ("holiday in month 13", "evaluation: {holidays: [2026-13-01]}",
     "evaluation.holidays.0: expected a date such as 2026-12-01, got '2026-13-01'"),
    ("holiday outside the held dates", "evaluation: {holidays: [1600-06-01]}",
     "evaluation.holidays.0: 1600-06-01 is outside the dates kpibot holds (1900-01-01 to "
     "2199-12-31)"),
    ("impossible day as period key",
     "targets: [{kpi: revenue, grain: day, periods: {2026-02-30: {company: 5}}}]",
     "targets.0.periods.2026-02-30: '2026-02-30' is not a valid period: 2026-02 has no day 30."),
    ("month 13 as period key",
     "targets: [{kpi: revenue, grain: day, periods: {2026-13-01: {company: 5}}}]",
     "targets.0.periods.2026-13-01: '2026-13-01' is not a valid period: there is no month 13; "
     "months are 01 to 12."),
    ("quarter 5 as period key",
     "targets: [{kpi: revenue, periods: {2026-Q5: {company: 5}}}]",
     "targets.0.periods.2026-Q5: '2026-Q5' is not a valid period: there is no quarter 5; "
     "quarters are Q1 to Q4."),
    ("period key outside the held dates",
     "targets: [{kpi: revenue, grain: year, periods: {'2300': {company: 5}}}]",
     "targets.0.periods.2300: '2300' is not a valid period: kpibot holds dates from 1900-01-01 "
     "to 2199-12-31 only."),
    ("database URL that does not parse", "database: {url: 'postgres ql://nope'}",
     "database.url: not a database URL (Could not parse SQLAlchemy URL from given URL string); "
     "expected e.g. sqlite:///kpibot.db or postgresql+psycopg://user@host:5432/kpibot"),
    ("database URL with a port that is not a number",
     "database: {url: 'postgresql+psycopg://db:port/kpi'}",
     "database.url: not a database URL (invalid literal for int() with base 10: 'port'); "
     "expected e.g. sqlite:///kpibot.db or postgresql+psycopg://user@host:5432/kpibot"),
    ("database of an unknown kind", "database: {url: 'oracle+nodriver://db/kpi'}",
     "database.url: unknown database kind 'oracle+nodriver'; expected sqlite:///... or "
     "postgresql+psycopg://..."),
    ("snooze-sized repeat interval", "alerts: {repeat_interval: 99999999999d}",
     "alerts.repeat_interval: expected a duration such as 30m, 4h or 1d, at most 3650d, got "
     "'99999999999d'"),
    ("YAML alias bomb", ALIAS_BOMB, "it expands to more than 100000 values (YAML aliases?)"),
    ("5 000 levels deep", "a: " + "[" * 5000 + "]" * 5000, "nested more than 50 levels deep"),
    ("60 levels of mappings", "a:" + "".join(f"\n{' ' * i}b:" for i in range(1, 60)) + " 1",
     "nested more than 50 levels deep"),
    ("an alias inside itself", "a: &a [1, *a]", "an alias refers to a value that contains it"),
]  # fmt: skip
COMMANDS = [("check-config",), ("ask", "revenue"), ("status",)]


def run(config: Path, *args: str) -> Result:
    # catch_exceptions=False: a traceback fails the test instead of becoming exit code 1.
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def problem_lines(result: Result, config: Path, *, french: bool = False) -> list[str]:
    first, *rest = result.output.splitlines()
    header = (
        f"configuration invalide {config}\u00a0:" if french else f"invalid configuration {config}:"
    )
    assert first == f"kpibot: {header}"
    return [line.removeprefix("  - ") for line in rest]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("text", "problem"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_config_mistake_exits_2_with_its_key_path(
    tmp_path: Path, command: tuple[str, ...], text: str, problem: str
) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text(text, encoding="utf-8")

    result = run(config, *command)

    assert result.exit_code == 2
    [line] = problem_lines(result, config)
    assert line.startswith(problem)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_bytes("organisation:\n  name: Société Générale\n".encode("latin-1"))

    result = run(config, "check-config")

    assert result.exit_code == 2
    assert problem_lines(result, config) == [
        "not UTF-8 text (byte 0xe9 on line 2); save the file as UTF-8"
    ]


def test_a_directory_given_as_the_config(tmp_path: Path) -> None:
    result = run(tmp_path, "check-config")

    assert result.exit_code == 2
    assert problem_lines(result, tmp_path) == ["cannot read the file: Is a directory"]


def test_a_database_url_from_the_environment_that_does_not_parse(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text("organisation: {name: Acme}\n")

    result = CliRunner(env={"DATABASE_URL": "::nope"}).invoke(
        main, ["--config", str(config), "check-config"], catch_exceptions=False
    )

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "kpibot: invalid configuration DATABASE_URL (environment):",
        "  - not a database URL (Could not parse SQLAlchemy URL from given URL string); "
        "expected e.g. sqlite:///kpibot.db or postgresql+psycopg://user@host:5432/kpibot",
    ]


@pytest.mark.parametrize("command", [("ask", "revenue"), ("status",), ("check",)])
def test_an_unreachable_database_is_a_message(tmp_path: Path, command: tuple[str, ...]) -> None:
    config = tmp_path / "kpibot.yaml"
    # Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    config.write_text("database: {url: 'postgresql+psycopg://kpibot:secret@127.0.0.1:1/kpi'}\n")

    result = run(config, *command)

    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(
        "kpibot: cannot use the database postgresql+psycopg://kpibot:***@127.0.0.1:1/kpi: "
        "connection failed:"
    )
    assert "Connection refused" in line
    assert "secret" not in result.output


# A French organisation's config: every mistake in French, with its key path.
FRENCH_CONFIG = """\
organisation: {locale: fr_FR, timezone: Europe/Paris}
targets: [{kpi: revenu, company: -5}]
alerts: {repeat_interval: 3 lunes}
subscriptions: [{channel: C1, time: '25:00', days: 'lun-xyz', scope: 'équipe'}]
evaluation: {min_sample: -1, pace: weekly, colour: red, holidays: [2026-02-30]}
sources: {crm: {kind: zoho}, hub: {page_size: 3}}
fx_rates: {USD: 0}
"""
# Words that give an English sentence away (outside quoted values and key paths).
ENGLISH = re.compile(
    r"\b(expected|got|unknown|invalid|must|cannot|required|such|least|"
    r"one|of|or|the|a|an|is|key|spelling|time|range|duration)\b"
)


def test_a_french_organisations_config_mistakes_are_told_in_french(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text(FRENCH_CONFIG, encoding="utf-8")

    result = run(config, "check-config")

    assert result.exit_code == 2
    assert result.output.splitlines()[0] == f"kpibot: configuration invalide {config}\u00a0:"
    assert sorted(problem_lines(result, config, french=True)) == [
        "alerts.repeat_interval: durée attendue, par exemple 30m, 4h, 2j ou 1 sem, au plus "
        "3650j, reçu '3 lunes'",
        "evaluation.colour: clé inconnue (vérifiez son orthographe et sa section)",
        "evaluation.holidays.0: date attendue, par exemple 2026-12-01, reçu '2026-02-30'",
        "evaluation.min_sample: doit valoir au moins 0, reçu -1",
        "evaluation.pace: attendu l'un de\u00a0: business_days, calendar_days, reçu 'weekly'",
        "fx_rates.USD: un taux de change doit être supérieur à 0, reçu 0",
        "sources.crm.kind: attendu l'un de\u00a0: salesforce, hubspot, pipedrive, sql, csv, "
        "reçu 'zoho'",
        "sources.hub.kind: obligatoire",
        "subscriptions.0.days: plage de jours attendue, par exemple lun-ven, reçu 'lun-xyz'",
        "subscriptions.0.scope: attendu entreprise, équipe Lyon, région EMEA ou commercial "
        "Alice Martin, reçu 'équipe'",
        "subscriptions.0.time: heure attendue, par exemple 08:30 ou 8h30, reçu '25:00'",
        "targets.0.company: un objectif ne peut pas être négatif, reçu -5",
        "targets.0.kpi: indicateur inconnu 'revenu'\u00a0; attendu l'un de\u00a0: revenue, "
        "conversion, win_rate, pipeline, new_pipeline, slipped, overdue, coverage, avg_deal, "
        "sales_cycle, attainment, cpa, csat, nps, turnover, ramp_up, key_revenue, key_pipeline, "
        "key_win_rate, key_share, forecast",
    ]
    # Outside the key path and the value read back ("reçu '3 lunes'").
    said = [
        re.sub(r"reçu '.*'$", "", line.split(": ", 1)[1]) for line in result.output.splitlines()[1:]
    ]
    assert not ENGLISH.findall(" ".join(said))


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        # (a French config's later mistake, what it says) — checks that need the whole file.
        ("scheduling: {sync_source: crm}",
         "scheduling.sync_source: aucune source nommée 'crm'\u00a0: aucune n'est déclarée sous "
         "sources ou import.csv"),
        ("targets: [{kpi: revenue, grain: month, periods: {2026-Q3: {company: 1}}}]",
         "targets.0.periods.2026-Q3: une période `quarter`, mais le grain de cet objectif est "
         "`month`"),
        ("targets: [{kpi: revenue, grain: year, periods: {'2300': {company: 5}}}]",
         "targets.0.periods.2300: '2300' n'est pas une période valide\u00a0: kpibot tient les "
         "dates de 1900-01-01 à 2199-12-31 seulement."),
        ("targets: [{kpi: revenue, grain: day, periods: {2026-02-30: {company: 5}}}]",
         "targets.0.periods.2026-02-30: '2026-02-30' n'est pas une période valide\u00a0: 2026-02 "
         "n'a pas de jour 30."),
        ("delivery: {retention: 1d}",
         "delivery.retention: doit être au moins aussi longue que alerts.repeat_interval, "
         "sinon des lignes encore utiles seraient supprimées"),
    ],
)  # fmt: skip
def test_cross_section_mistakes_in_french(tmp_path: Path, section: str, problem: str) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text(f"organisation: {{locale: fr_FR}}\n{section}\n", encoding="utf-8")

    result = run(config, "status")

    assert result.exit_code == 2
    assert problem_lines(result, config, french=True)[0] == problem


@pytest.mark.parametrize(
    ("locale", "said"),
    [
        ("en_US", "no exchange rate from USD to EUR: add USD under fx_rates in the config"),
        ("fr_FR", "aucun taux de change de USD vers EUR\u00a0: ajoutez USD sous fx_rates dans la "
                  "configuration"),
    ],
)  # fmt: skip
def test_a_deal_in_a_currency_without_a_rate_is_told_in_the_organisations_language(
    tmp_path: Path, locale: str, said: str
) -> None:
    (tmp_path / "deals.csv").write_text(
        "id,owner,stage,amount,currency,created,closed\n"
        "d1,Ann,Won,1000,USD,2026-07-01,2026-07-20\n",
        encoding="utf-8",
    )
    (tmp_path / "reps.csv").write_text("name,team\nAnn,North\n", encoding="utf-8")
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        f"""
organisation: {{locale: {locale}, currency: EUR}}
import:
  csv:
    crm:
      reps: {{file: reps.csv, columns: {{name: name, team: team}}}}
      opportunities:
        file: deals.csv
        columns: {{id: id, owner: owner, stage: stage, amount: amount, currency: currency,
                  created_at: created, close_date: closed}}
        stages: {{Won: won}}
""",
        encoding="utf-8",
    )
    # The import stores the deal, then cannot publish the figures: it says why.
    imported = run(config, "import", "csv", "crm")
    asked = run(config, "ask", "revenue")

    assert (imported.exit_code, imported.stderr.splitlines()[-1]) == (2, f"kpibot: {said}")
    assert (asked.exit_code, asked.stderr) == (2, f"kpibot: {said}\n")


def test_values_pydantic_or_the_parsers_met_only_in_english_are_told_in_french(
    tmp_path: Path,
) -> None:
    # A number that is not finite, and a list of days that is a number: pydantic's
    # finite_number, and what once escaped the parsers as a ValueError or a TypeError.
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {locale: fr_FR, fiscal_year_start_month: .nan}\n"
        "alerts: {repeat_interval: .nan, business_days: 1.5}\n",
        encoding="utf-8",
    )

    result = run(config, "check-config")

    assert result.exit_code == 2
    assert sorted(problem_lines(result, config, french=True)) == [
        "alerts.business_days: jours attendus, par exemple lun, mar ou 0-6 (lundi = 0), reçu 1.5",
        "alerts.repeat_interval: durée attendue, par exemple 30m, 4h, 2j ou 1 sem, au plus "
        "3650j, reçu nan",
        "organisation.fiscal_year_start_month: nombre attendu, reçu nan",
    ]


def test_a_sync_of_a_french_organisation_says_in_french_what_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {locale: fr_FR}\n"
        "import: {csv: {crm: {reps: {file: reps.csv, columns: {name: name, team: team}}}}}\n",
        encoding="utf-8",
    )

    unknown = run(config, "sync", "hubspot")
    no_file = run(config, "sync", "crm")

    assert problem_lines(unknown, config, french=True) == [
        "source: aucune source nommée 'hubspot' (déclarées\u00a0: crm)"
    ]
    assert unknown.exit_code == 2
    # The sync ran, found no file, and is recorded as failed: exit 1, and why.
    assert no_file.exit_code == 1
    assert no_file.stderr.splitlines() == [
        f"synchro crm échouée\u00a0: configuration invalide import.csv.crm ({tmp_path})\u00a0:",
        f"  - import.csv.crm.reps.file: aucun fichier {tmp_path / 'reps.csv'}",
    ]
