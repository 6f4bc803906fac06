"""The admin commands beyond subscriptions, through the real Bolt app against the fake Slack:
targets set from chat (``/kpi target …`` / ``/kpi objectif …``) reach the answers of this
process and of another one on the same database, ``/kpi sync`` runs the scheduler's sync job,
both are refused to everyone else; and the help speaks the organisation's language."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.formatting import Formatter
from bot.service import KpiService
from bot.store.chat_models import ChatTarget, from_db
from bot.store.delivery_models import SyncRun
from bot.wording import Wording, help_examples
from conversation.grammar import Kind, parse_request
from metrics.periods import parse_period
from metrics.scopes import Level, Scope
from tests.bot.slack_world import (
    ADMIN,
    MANAGER,
    NOW,
    REP,
    STRANGER,
    World,
    make_world,
    world_fixture,
)
from tests.bot.test_slack_app import all_text, ask, fmt
from tests.fakes.slack_api import FakeSlack

world = pytest.fixture(world_fixture)

LYON = Scope(Level.TEAM, "Lyon")
Q4 = parse_period("2026-Q4", NOW.date())


def chat_targets(world: World) -> list[ChatTarget]:
    with world.sessions()() as session:
        return list(session.scalars(select(ChatTarget).order_by(ChatTarget.id)))


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("target revenue team Lyon 2026-Q4 800k", Kind.TARGET, "revenue team Lyon 2026-Q4 800k"),
        ("objectif ca équipe Lyon 2026-T4 off", Kind.TARGET, "ca équipe Lyon 2026-T4 off"),
        ("targets", Kind.TARGETS, ""),  # the plural still lists them
        ("objectifs", Kind.TARGETS, ""),
        ("sync", Kind.SYNC, ""),
        ("synchro", Kind.SYNC, ""),
    ],
)
def test_parse_admin_commands(text, kind, argument):
    command = parse_request(text)
    assert (command.kind, command.argument) == (kind, argument)


def test_an_admin_sets_a_target_and_the_next_answer_uses_it(world):
    # Lyon's Q4 revenue target in the demo config is 360 000 €.
    assert world.service.targets.value_for("revenue", LYON, Q4) == Decimal(360_000)
    before = ask(world, "revenue team Lyon", ADMIN)
    assert f"Objectif         {fmt().money(Decimal(360_000))}" in before["text"]

    reply = ask(world, "target revenue team Lyon 2026-Q4 800k", ADMIN)
    assert "Objectif fixé" in all_text(reply)
    assert fmt().money(Decimal(800_000)) in all_text(reply)

    after = ask(world, "revenue team Lyon", ADMIN)
    assert f"Objectif         {fmt().money(Decimal(800_000))}" in after["text"]
    [row] = chat_targets(world)
    assert (row.kpi, row.grain, row.scope_level, row.scope_name, row.period_key) == (
        "revenue", "quarter", "team", "Lyon", "2026-Q4",
    )  # fmt: skip
    assert row.value == Decimal(800_000) and row.set_by == ADMIN
    assert from_db(row.set_at) == NOW


def test_another_process_sees_the_change_at_its_next_evaluation(world):
    # The clock process: its own service, started before the change, on the same database.
    clock = KpiService(world.settings)
    try:
        lyon = [e for e in clock.check(NOW) if e.kpi == "revenue" and e.scope == LYON]
        assert [e.target for e in lyon] == [Decimal(360_000)]
        ask(world, "objectif ca équipe Lyon 2026-T4 1,2M", ADMIN)
        lyon = [e for e in clock.check(NOW) if e.kpi == "revenue" and e.scope == LYON]
        assert [e.target for e in lyon] == [Decimal(1_200_000)]
    finally:
        clock.engine.dispose()


def test_off_removes_the_target_and_targets_lists_chat_set_ones(world):
    ask(world, "target revenue team Lyon 2027-Q1 900k", ADMIN)
    # grouped by KPI, five each: the rest of the revenue targets are one command away
    assert "`/kpi objectifs revenue`" in all_text(ask(world, "targets", MANAGER))
    listed = all_text(ask(world, "targets revenue", MANAGER))
    # the chat-set target of a quarter not running yet says who set it
    assert "*Chiffre d'affaires*" in listed and "*Taux de gain*" not in listed
    assert "T1 2027" in listed and fmt().money(Decimal(900_000)) in listed
    assert f"par <@{ADMIN}>" in listed and "fichier de configuration" in listed

    ask(world, "target revenue team Lyon 2026-Q4 off", ADMIN)
    assert world.service.targets.value_for("revenue", LYON, Q4) is None
    removed = ask(world, "revenue team Lyon", ADMIN)["text"]
    assert "Objectif         " not in removed
    assert [r.value for r in chat_targets(world)] == [Decimal(900_000), None]


def test_target_changes_are_refused_to_everyone_but_admins(world):
    for user in (MANAGER, REP, STRANGER):
        reply = ask(world, "target revenue team Lyon 2026-Q4 800k", user)
        assert "`/kpi target` est réservé aux administrateurs" in all_text(reply)
    assert chat_targets(world) == []
    assert world.service.targets.value_for("revenue", LYON, Q4) == Decimal(360_000)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("target revnue team Lyon 2026-Q4 800k", "je ne connais pas l'indicateur «\u00a0revnue"),
        ("target revenue team Lyon 2026-Q4 lots", "«\u00a0lots\u00a0» n'est pas un montant"),
        ("target revenue team Lyon 2026-Q9 800k", "«\u00a02026-Q9\u00a0» n'est pas une période"),
        ("target revenue team Lyon someday 800k", "«\u00a0someday\u00a0» n'est pas une période"),
        ("target revenue team Nowhere 2026-Q4 800k", "pas d'équipe «\u00a0Nowhere\u00a0»"),
        ("target revenue everyone 2026-Q4 800k", "«\u00a0everyone\u00a0» n'est pas un périmètre"),
        ("target revenue 800k", "il faut un indicateur, un périmètre, une période"),
    ],
)
def test_bad_target_input_gets_a_clear_message(world, text, problem):
    reply = all_text(ask(world, text, ADMIN))
    assert "Je n'ai pas pu fixer cet objectif" in reply and problem in reply
    assert "/kpi objectif ca équipe Lyon 2026-Q4 800k" in reply  # the usage, in French
    assert "Traceback" not in reply
    assert chat_targets(world) == []


# --- /kpi sync ---------------------------------------------------------------------------------

SYNC_CONFIG = """
import:
  csv:
    crm:
      base_dir: crm_export
      currency: EUR
      teams: {file: teams.csv, columns: {id: team_id, name: team, region: region}}
      reps:
        file: reps.csv
        columns: {id: rep_id, name: rep, email: email, team: team, active_from: started}
scheduling:
  sync_source: crm
"""


@pytest.fixture
def sync_world(tmp_path: Path) -> Iterator[World]:
    export = tmp_path / "crm_export"
    export.mkdir()
    (export / "teams.csv").write_text("team_id,team,region\nTBX,Bordeaux,France\n")
    (export / "reps.csv").write_text(
        "rep_id,rep,email,team,started\nRBX1,Inès Morel,ines@example.test,TBX,2026-01-05\n"
    )
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake, SYNC_CONFIG)
        yield world
        world.service.engine.dispose()


def sync_runs(world: World) -> list[SyncRun]:
    with world.sessions()() as session:
        return list(session.scalars(select(SyncRun).order_by(SyncRun.id)))


def test_sync_runs_the_configured_source_and_answers_with_its_summary(sync_world):
    world = sync_world
    assert "Bordeaux" not in world.service.snapshot().directory.teams
    reply = all_text(ask(world, "sync", ADMIN))
    assert "Synchronisation terminée" in reply
    assert "synchro csv:crm\u00a0: 2 lignes modifiées" in reply
    # The sync published new facts, and the answer came once this process held them: the
    # next question reads them.
    assert "Bordeaux" in world.service.snapshot().directory.teams
    [run] = sync_runs(world)
    assert (run.source, run.status, run.rows_changed) == ("csv:crm", "succeeded", 2)

    # Nothing new in the export: a second sync changes nothing, and says so.
    assert "synchro csv:crm\u00a0: 0 ligne modifiée" in all_text(ask(world, "synchro", ADMIN))


def test_a_failing_sync_is_reported_not_raised(sync_world):
    world = sync_world
    (world.path.parent / "crm_export" / "reps.csv").unlink()
    reply = all_text(ask(world, "sync", ADMIN))
    assert "synchro csv:crm échouée" in reply and "Traceback" not in reply
    # What is wrong and where, in the organisation's language (French).
    reps = world.path.parent / "crm_export" / "reps.csv"
    assert f"import.csv.crm.reps.file: aucun fichier {reps}" in reply
    assert [r.status for r in sync_runs(world)] == ["failed"]


def test_sync_is_refused_to_everyone_but_admins(sync_world):
    world = sync_world
    for user in (MANAGER, REP, STRANGER):
        assert "`/kpi sync` est réservé aux administrateurs" in all_text(ask(world, "sync", user))
    assert sync_runs(world) == []
    with world.sessions()() as session:
        assert session.scalar(select(func.count()).select_from(SyncRun)) == 0


# --- help --------------------------------------------------------------------------------------


def test_help_in_french_for_a_french_organisation(world):
    text = all_text(ask(world, "aide", STRANGER))
    for example in ("/kpi ca ce trimestre", "/kpi équipe Lyon", "/kpi classement",
                    "/kpi objectifs", "/kpi sourdine ca équipe Lyon 2j",
                    "/kpi objectif ca équipe Lyon 2026-Q4 800k"):  # fmt: skip
        assert example in text
    assert "En anglais aussi" in text and "/kpi leaderboard" in text
    assert text.index("/kpi classement") < text.index("/kpi leaderboard")


def test_help_in_english_mentions_the_french_words(world):
    text = Wording(Formatter("en_US", "EUR", world.settings.organisation.zone)).help(None)
    assert "/kpi target revenue team Lyon 2026-Q4 800k" in text and "/kpi sync" in text
    assert "French words work too: `/kpi ca ce trimestre`" in text


def test_every_help_example_is_understood(world):
    """No example in the help leads to the did-you-mean answer."""
    examples = [*help_examples("en"), *help_examples("fr")]
    # kpis13's key accounts and sources; history12's subscriptions with pipeline changes
    assert len(examples) == 29
    # Every `/kpi …` of a line (a line may show several: "`/kpi ca grands comptes` · …").
    commands = [
        quoted.removeprefix("/kpi ").replace("…", "x")
        for example in examples
        for quoted in example.split("`")[1::2]
        if quoted.startswith("/kpi ")
    ]
    assert "cpa par canal" in commands and "ramp-up" in commands
    for command in commands:
        if "@" in command or "#" in command or command.startswith(("target", "objectif")):
            continue  # mentions need a real workspace; targets are tested above
        reply = all_text(ask(world, command, ADMIN))
        assert "Vouliez-vous dire" not in reply and "Traceback" not in reply, command
