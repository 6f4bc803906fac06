"""The command line on the demo company: answers and their numbers, JSON, alerts, digests,
imports and config mistakes, checked against the store with plain SQL."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from bot.importers import csv_import
from bot.rendering import validate_blocks
from bot.store import first_load
from metrics.kpis import KPIS
from metrics.periods import Grain, period_containing

AS_OF = "2026-11-26"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("demo")
    config = folder / "kpibot.yaml"
    result = run("--config", str(config), "demo")
    assert result.exit_code == 0, result.output
    yield config


def sql(config: Path, query: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(config.parent / "kpibot.db") as connection:
        return connection.execute(query, params).fetchall()


def won_revenue(config: Path, start: date, end: date, team: str | None = None) -> float:
    """Won amounts in EUR straight from the store, converted with the demo's rates."""
    rates = {"EUR": 1.0, "GBP": 1.17, "CHF": 1.06, "USD": 0.92}
    rows = sql(
        config,
        "SELECT o.amount, o.currency FROM opportunities o JOIN reps r ON o.owner_id = r.id "
        "JOIN teams t ON r.team_id = t.id WHERE o.is_won AND o.close_date BETWEEN ? AND ? "
        "AND (? IS NULL OR t.name = ?)",
        start.isoformat(),
        end.isoformat(),
        team,
        team,
    )
    return sum(round(float(str(amount)) * rates[str(cur)], 2) for amount, cur in rows)


def test_demo_prints_digest_alerts_and_answers(demo: Path) -> None:
    # the fixture's own run: check what it left behind and what a second run prints
    result = run("--config", str(demo), "demo")
    assert result.exit_code == 0
    # The demo company is French, and so are the demo's own lines; the numbers are the store's.
    counts = {
        table: sql(demo, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("teams", "reps", "accounts", "leads", "opportunities", "spend", "surveys")
    }
    thousands = {table: f"{n:,}".replace(",", "\u202f") for table, n in counts.items()}
    assert result.output.splitlines()[0] == (
        f"Entreprise de démo dans sqlite:///{demo.parent / 'kpibot.db'}\u00a0: "
        "{teams} équipes, {reps} commerciaux, {accounts} comptes, {leads} leads, "
        "{opportunities} opportunités, {spend} lignes de dépenses, {surveys} enquêtes".format(
            **thousands
        )
    )
    assert "Récap quotidien" in result.output
    assert "Chiffre d'affaires" in result.output
    assert "à risque" in result.output
    assert '$ kpibot ask "ca ce trimestre"' in result.output
    # The quarter's slipped pipeline, from the demo's history (its deals depend on the day).
    assert '$ kpibot ask "glissements ce trimestre"' in result.output
    # The KPIs a CSO steers besides (issue 13): key accounts, lead sources, new reps.
    assert "CA grands comptes · Entreprise" in result.output
    assert "Par source" in result.output and "Salon" in result.output
    assert "Nouveaux commerciaux (6 premiers mois) et confirmés" in result.output
    assert "Théo Blanc" in result.output
    assert (demo.parent / "kpibot.db").exists()


def test_ask_json_has_the_documented_shape_and_the_store_s_numbers(demo: Path) -> None:
    result = run("--config", str(demo), "ask", "ca", "ce", "trimestre", "--json", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    quarter = period_containing(Grain.QUARTER, date(2026, 11, 26))
    assert answer["kpi"] == "revenue"
    assert answer["label"] == "Chiffre d'affaires"
    assert answer["unit"] == "money" and answer["currency"] == "EUR"
    assert answer["period"] == {
        "start": "2026-10-01", "end": "2026-12-31", "label": "2026-Q4", "grain": "quarter"
    }  # fmt: skip
    assert answer["scope"] == {"level": "company", "name": None}
    expected = won_revenue(demo, quarter.start, date(2026, 11, 26))
    assert answer["value"] == pytest.approx(expected, abs=0.01)
    assert answer["status"] in {"achieved", "on_track", "at_risk", "missed"}
    assert answer["attainment"] == pytest.approx(answer["value"] / answer["target"])
    teams = {row["scope"]["name"]: row["value"] for row in answer["breakdown"]}
    assert set(teams) == {r[0] for r in sql(demo, "SELECT name FROM teams")}
    assert sum(teams.values()) == pytest.approx(answer["value"], abs=0.05)
    lyon = won_revenue(demo, quarter.start, date(2026, 11, 26), "Lyon")
    assert teams["Lyon"] == pytest.approx(lyon, abs=0.01)
    assert set(answer["previous"]) == {
        "period",
        "value",
        "delta",
        "relative",
        "too_early",
        "rebuilt",
    }
    assert answer["last_year"]["period"]["start"] == "2025-10-01"


def test_cpa_json_splits_the_company_figure_by_where_spend_was_booked(demo: Path) -> None:
    def cpa(question: str) -> dict[str, Any]:
        result = run("--config", str(demo), "ask", question, "--json", "--as-of", AS_OF)
        answer: dict[str, Any] = json.loads(result.output)
        return answer

    company = cpa("cpa 2026-10")
    split = company["spend_split"]
    # the demo books LinkedIn to teams, trade shows to regions, Google Ads and webinars to nobody
    assert set(split) == {"team", "region", "company"}
    assert sum(split.values()) == pytest.approx(company["value"], abs=1e-4)
    teams = [row["value"] for row in company["breakdown"] if row["value"] is not None]
    # a team carries only its own spend: every team is below the company, by the rest of it
    assert teams and max(teams) < company["value"]
    team = cpa("cpa team Lyon 2026-10")
    assert team["spend_split"] in ({"team": team["value"]}, None)
    rep = cpa("cpa rep " + str(sql(demo, "SELECT name FROM reps LIMIT 1")[0][0]) + " 2026-10")
    assert (rep["value"], rep["reason"]) == (None, "not_per_rep")
    assert rep["reason_text"] == "pas un chiffre par commercial"


def test_ask_team_last_quarter_in_english_words(demo: Path) -> None:
    result = run(
        "--config", str(demo), "ask", "revenue team Lyon last quarter", "--json", "--as-of", AS_OF
    )
    answer = json.loads(result.output)
    assert answer["scope"] == {"level": "team", "name": "Lyon"}
    assert answer["period"]["label"] == "2026-Q3"
    expected = won_revenue(demo, date(2026, 7, 1), date(2026, 9, 30), "Lyon")
    assert answer["value"] == pytest.approx(expected, abs=0.01)
    assert {row["scope"]["level"] for row in answer["breakdown"]} == {"rep"}


def test_win_rate_by_team_is_won_over_closed(demo: Path) -> None:
    result = run("--config", str(demo), "ask", "win rate by team 2026-Q3", "--json")
    answer = json.loads(result.output)
    won, closed = sql(
        demo,
        "SELECT SUM(is_won), COUNT(*) FROM opportunities WHERE is_closed "
        "AND close_date BETWEEN '2026-07-01' AND '2026-09-30'",
    )[0]
    assert answer["value"] == pytest.approx(int(str(won)) / int(str(closed)), abs=1e-6)


def test_text_answer_is_formatted_in_french(demo: Path) -> None:
    result = run("--config", str(demo), "ask", "taux de gain", "--as-of", AS_OF)
    assert result.exit_code == 0
    assert "Taux de gain" in result.output and "%" in result.output
    assert "," in result.output  # French decimal comma


def test_unknown_kpi_exits_non_zero_with_suggestions(demo: Path) -> None:
    result = run("--config", str(demo), "ask", "winrat")
    assert result.exit_code == 1
    # The demo company is French: the same words as in Slack, without Slack's markup.
    assert "kpibot: Je ne connais pas l'indicateur «\u00a0winrat\u00a0»." in result.output
    assert "Vouliez-vous dire `win_rate`\u00a0?" in result.output
    assert ", ".join(f"`{k}`" for k in KPIS) in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("ask", "revenue 0001-01"),
            "kpibot: «\u00a00001-01\u00a0» n'est pas une période valide\u00a0: kpibot ne "
            "connaît que les dates du 1900-01-01 au 2199-12-31.",
        ),
        (
            ("ask", "ca 2300-Q1"),
            "kpibot: «\u00a02300-Q1\u00a0» n'est pas une période valide\u00a0: kpibot ne "
            "connaît que les dates du 1900-01-01 au 2199-12-31.",
        ),
        (
            ("ask", "revenue", "--as-of", "9999-12-31"),
            "kpibot: `--as-of`\u00a0: 9999-12-31 est hors des dates que kpibot tient (1900-01-01 à "
            "2199-12-31)",
        ),
        (
            ("check", "--as-of", "0001-01-01T08:00:00+00:00"),
            "kpibot: `--as-of`\u00a0: 0001-01-01 est hors des dates que kpibot tient (1900-01-01 à "
            "2199-12-31)",
        ),
        (
            ("digest", "--dry-run", "--as-of", "1600-06-01"),
            "kpibot: `--as-of`\u00a0: 1600-06-01 est hors des dates que kpibot tient (1900-01-01 à "
            "2199-12-31)",
        ),
    ],
)
def test_dates_at_the_calendars_edges_get_help(
    demo: Path, args: tuple[str, ...], message: str
) -> None:
    result = run("--config", str(demo), *args)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(message)


@pytest.mark.parametrize(
    ("words", "shown"),
    [
        (["classement"], "Par commercial"),  # an admin's leaderboard: revenue by rep
        (["team", "Lyon"], "Équipe Lyon"),  # the team's overview
        (["alertes"], "alerte"),
        (["objectifs"], "Objectifs"),
        (["aide"], "/kpi classement"),
    ],
)
def test_ask_takes_the_sub_commands_of_slack(demo: Path, words: list[str], shown: str) -> None:
    result = run("--config", str(demo), "ask", *words, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert shown in result.output and "*" not in result.output.split("\n")[0]


def test_targets_of_one_kpi_are_listed_in_full(demo: Path) -> None:
    everything = run("--config", str(demo), "ask", "objectifs", "--as-of", AS_OF).output
    # the revenue group shows 5 targets and the way to the rest: "… et 24 autres : `/kpi …`"
    more = re.search(r"… et (\d+) autres\u00a0: `/kpi objectifs revenue`", everything)
    assert more is not None, everything
    revenue = run("--config", str(demo), "ask", "objectifs", "ca", "--as-of", AS_OF)
    assert revenue.exit_code == 0, revenue.output
    listed = [line for line in revenue.output.splitlines() if line.startswith("  ")]
    assert len(listed) == 5 + int(more.group(1))
    assert "Taux de gain" not in revenue.output and "autres" not in revenue.output
    unknown = run("--config", str(demo), "ask", "objectifs", "chiffrage", "--as-of", AS_OF)
    assert unknown.exit_code == 1 and "chiffrage" in unknown.output


def test_check_lists_alerts_with_gap_and_contributors(demo: Path) -> None:
    result = run("--config", str(demo), "check", "--json", "--as-of", AS_OF)
    assert result.exit_code == 0
    alerts = json.loads(result.output)
    assert alerts and {a["status"] for a in alerts} <= {"at_risk", "missed"}
    team = next(a for a in alerts if a["scope"]["level"] == "team" and a["kpi"] == "revenue")
    assert team["gap"] == pytest.approx(
        team["value"] - (team["expected"] if team["expected"] is not None else team["target"]),
        abs=0.01,
    )
    text = run("--config", str(demo), "check", "--as-of", AS_OF).output
    assert "à risque" in text


def test_digest_dry_run_blocks_are_valid_block_kit(demo: Path) -> None:
    result = run("--config", str(demo), "digest", "--dry-run", "--format", "blocks")
    assert result.exit_code == 0
    blocks = json.loads(result.output)["blocks"]
    validate_blocks(blocks)
    assert 0 < len(blocks) <= 50


def test_digest_dry_run_writes_its_chart(demo: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    result = run(
        "--config", str(demo), "digest", "--dry-run", "--chart", str(chart), "--as-of", AS_OF
    )
    assert result.exit_code == 0, result.output
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # six teams in a 3 × 2 grid of 4 × 2.8 inches at 100 dpi: 1200 × 620 pixels
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 620)


def test_digest_dry_run_carries_the_weekly_waterfall_and_draws_it(
    demo: Path, tmp_path: Path
) -> None:
    chart = tmp_path / "waterfall.png"
    result = run(
        "--config", str(demo), "digest", "--dry-run", "--waterfall", "quarter",
        "--waterfall-chart", str(chart), "--as-of", AS_OF,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The demo's history: the quarter's pipeline since Thursday 19 November, in French.
    assert "mouvements depuis le 19 nov. 2026" in result.output
    assert "+ Créées" in result.output and "Pipeline aujourd'hui" in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_waterfall_chart_needs_a_waterfall(demo: Path, tmp_path: Path) -> None:
    result = run(
        "--config", str(demo), "digest", "--dry-run", "--waterfall-chart",
        str(tmp_path / "w.png"), "--as-of", AS_OF,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--waterfall-chart draws the waterfall of --waterfall" in result.output


def test_commands_default_to_kpibot_yaml_in_the_working_directory(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo.parent)
    monkeypatch.delenv("KPIBOT_CONFIG", raising=False)
    result = run("ask", "conversion", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["kpi"] == "conversion"


def test_check_config_reports_the_key_path_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text("targets:\n  - kpi: revenue\n    grain: quartr\n", encoding="utf-8")
    result = run("--config", str(config), "check-config")
    assert result.exit_code == 2
    assert "targets.0.grain" in result.output
    assert "Traceback" not in result.output


def test_check_config_accepts_the_demo_config(demo: Path) -> None:
    result = run("--config", str(demo), "check-config")
    assert result.exit_code == 0
    assert "OK" in result.output


def test_import_reports_bad_rows_and_keeps_the_good_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kpibot import` leaves no other connection open beside its write, so that its first
    # load is written through a rollback journal (bot.store.first_load); the second is not.
    switched: list[bool] = []

    def recorded(session: Any) -> bool:
        switched.append(first_load.written_once(session))
        return switched[-1]

    monkeypatch.setattr(csv_import, "written_once", recorded)
    (tmp_path / "deals.csv").write_text(
        "id,owner,stage,amount,created,closed\n"
        "d1,Ann,Won,1000,2026-07-01,2026-07-20\n"
        ",Ann,Won,500,2026-07-01,2026-07-20\n"
        "d3,Ann,Sleeping,500,2026-07-01,\n"
        "d4,Ann,Lost,abc,2026-07-01,2026-07-21\n"
        "d5,Ann,Open,700,2026-07-02,\n",
        encoding="utf-8",
    )
    (tmp_path / "reps.csv").write_text("name,team\nAnn,North\n", encoding="utf-8")
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        """
organisation: {currency: EUR}
import:
  csv:
    crm:
      reps: {file: reps.csv, columns: {name: name, team: team}}
      opportunities:
        file: deals.csv
        columns: {id: id, owner: owner, stage: stage, amount: amount, created_at: created,
                  close_date: closed}
        stages: {Won: won, Lost: lost, Open: open}
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(config), "import", "csv", "crm"])
    assert result.exit_code == 0, result.output
    assert "deals.csv:3" in result.output and "deals.csv:4" in result.output
    assert "deals.csv:5" in result.output
    ids = sorted(r[0] for r in sql(config, "SELECT source_id FROM opportunities"))
    assert ids == ["d1", "d5"]
    # The import published the facts every serving process maps (bot.store.facts_snapshot).
    published = tmp_path / "kpibot.db.facts"
    assert [p.name.split("-")[0] for p in published.iterdir() if p.is_dir()] == ["v1"]
    again = CliRunner().invoke(main, ["--config", str(config), "import", "csv", "crm"])
    assert sorted(r[0] for r in sql(config, "SELECT source_id FROM opportunities")) == ids
    assert again.exit_code == 0
    assert [p.name.split("-")[0] for p in published.iterdir() if p.is_dir()] == [
        "v1"
    ]  # nothing changed
    assert switched == [True, False]
    assert sql(config, "PRAGMA journal_mode") == [("wal",)]


def test_import_says_why_rows_were_skipped_in_the_organisation_s_language(
    tmp_path: Path,
) -> None:
    (tmp_path / "deals.csv").write_text(
        "id,owner,stage,amount,closed\n"
        ",Ann,Won,500,2026-07-20\n"
        "d3,Ann,Sleeping,500,\n"
        "d4,Ann,Lost,abc,2026-07-21\n"
        "d5,Bob,Open,700,\n"
        "d6,Ann,Won,700,2026-02-30\n",
        encoding="utf-8",
    )
    (tmp_path / "reps.csv").write_text("name\nAnn\n", encoding="utf-8")
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        """
organisation: {currency: EUR, locale: fr_FR}
import:
  csv:
    crm:
      reps: {file: reps.csv, columns: {name: name}}
      opportunities:
        file: deals.csv
        columns: {id: id, owner: owner, stage: stage, amount: amount, close_date: closed}
        stages: {Won: won, Lost: lost, Open: open}
""",
        encoding="utf-8",
    )

    result = CliRunner().invoke(main, ["--config", str(config), "import", "csv", "crm"])

    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if "ignorée" in line]
    assert skipped == [
        "  ignorée deals.csv:2\u00a0: id manquant (id est vide)",
        "  ignorée deals.csv:3\u00a0: stage\u00a0: étape inconnue 'Sleeping' (la correspondance "
        "des étapes connaît Won, Lost, Open)",
        "  ignorée deals.csv:4\u00a0: amount\u00a0: montant illisible 'abc'",
        "  ignorée deals.csv:5\u00a0: owner inconnu 'Bob' (aucun commercial avec cet "
        "identifiant ou ce nom)",
        "  ignorée deals.csv:6\u00a0: closed\u00a0: date illisible '2026-02-30' "
        "(attendu\u00a0: YYYY-MM-DD)",
    ]


def test_import_of_an_unknown_source_says_which_exist(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text("import: {csv: {crm: {}}}\n", encoding="utf-8")
    result = run("--config", str(config), "import", "csv", "hubspot")
    assert result.exit_code == 2
    assert "known: crm" in result.output


def test_the_company_digest_leaves_rep_alerts_to_the_reps_and_their_teams(demo: Path) -> None:
    alerts = json.loads(run("--config", str(demo), "check", "--json", "--as-of", AS_OF).output)
    rep_names = {a["scope"]["name"] for a in alerts if a["scope"]["level"] == "rep"}
    assert rep_names  # the demo has reps at risk...
    digest = run("--config", str(demo), "digest", "--dry-run", "--as-of", AS_OF).output
    # ...that the company digest does not list as alerts of their own
    assert not any(f"· {name} ·" in digest for name in rep_names)
    assert "Équipe London" in digest


def test_the_demo_on_the_first_of_a_month_judges_nothing_too_early(tmp_path: Path) -> None:
    """Issue 13: `make demo` on 1 December sent "Taux de conversion · décembre — 0,0 % · à
    risque" to leadership. On a fixed 1st of a month, so that the check runs every day: the
    quarter two thirds through still has its alerts, the month just begun has none (its CPA
    and any month's ratio are "trop tôt pour juger")."""
    config = tmp_path / "kpibot.yaml"
    result = run("--config", str(config), "demo", "--as-of", "2026-12-01T09:00")
    assert result.exit_code == 0, result.output
    assert "mardi 1 décembre 2026" in result.output
    heads = [line for line in result.output.splitlines() if line.startswith(("🟠", "🔴"))]
    assert any("T4 2026" in line for line in heads), heads
    assert not [line for line in heads if "décembre 2026" in line]
    assert "Coût d'acquisition · décembre 2026" in result.output
    assert "trop tôt pour juger" in result.output


def test_a_slack_only_serve_loads_no_module_that_only_another_command_needs(
    tmp_path: Path,
) -> None:
    """bot.cli's docstring: the demo company, the CSV importer, APScheduler, the charts and
    the Teams SDK are imported only where they are used, so a Slack-only ``kpibot serve``
    goes without them. Here it stops at its missing Slack tokens, after its imports."""
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "try:\n"
        "    main(['serve'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 2, stop.code\n"
        "names = ('bot.demo', 'bot.importers.csv_import', 'bot.scheduling', 'apscheduler',\n"
        "         'bot.charts', 'matplotlib', 'bot.teams', 'microsoft_teams')\n"
        "print(sorted(m for m in sys.modules if m.startswith(names)))\n"
    )
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLACK_", "TEAMS_", "KPIBOT_", "DATABASE_URL"))
    }
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environ, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert "SLACK_BOT_TOKEN" in ran.stderr  # stopped where it should
    assert ran.stdout == "[]\n"


def test_the_entry_point_imports_without_the_collector_then_turns_it_back_on() -> None:
    """bot.launch: the command line's modules are frozen out of the collector, which is on
    again when the command runs; importing bot.launch alone changes nothing."""
    code = (
        "import gc, sys\n"
        "import bot.launch\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
        "sys.argv = ['kpibot', '--help']\n"
        "try:\n"
        "    bot.launch.main()\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.splitlines()[0] == "True 0"
    assert ran.stdout.splitlines()[-1] == "True True"
