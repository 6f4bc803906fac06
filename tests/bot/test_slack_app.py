"""The real Bolt app, driven with ``BoltRequest``s through ``app.dispatch``, against the fake
Slack Web API: answers and their numbers, refusals by role, sharing, App Home, CRM text that
tries to ping everyone, and the manifest. Signatures are checked in front of Bolt
(``tests/bot/test_slack_http.py``)."""

from __future__ import annotations

import json
import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

import handlers
from bot.formatting import Formatter
from bot.rendering import validate_blocks
from bot.store.database import bump_data_version, transaction
from bot.store.models import Rep, Team
from tests.bot.slack_world import (
    ADMIN,
    MANAGER,
    NOW,
    OTHER_NAME,
    OTHER_REP,
    REP,
    REP_NAME,
    STRANGER,
    World,
    action_body,
    command_body,
    dispatch,
    event_body,
    wait_for,
    world_fixture,
)
from tests.fakes.slack_api import TOKEN

world = pytest.fixture(world_fixture)
ROOT = Path(__file__).resolve().parents[2]


def ask(world: World, text: str, user: str) -> dict[str, Any]:
    before = len(world.fake.responses)
    response = dispatch(world, command_body(world.fake, text, user))
    assert response.status == 200
    wait_for(lambda: len(world.fake.responses) > before)
    reply = world.fake.responses[before]
    blocks = reply["blocks"]
    validate_blocks(blocks)
    return reply


def all_text(reply: dict[str, Any]) -> str:
    return json.dumps(reply, ensure_ascii=False)


def fmt() -> Formatter:
    from zoneinfo import ZoneInfo

    return Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))


def won_revenue(world: World, start: date, end: date, **where: str) -> Decimal:
    """Computed from the facts with plain pandas, not with the KPI code."""
    opps = world.service.snapshot().facts.opportunities
    rows = opps[
        (opps["status"] == "won") & (opps["close"] >= str(start)) & (opps["close"] <= str(end))
    ]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return Decimal(int(rows["amount"].sum())).scaleb(-2)


def test_revenue_answer_has_the_numbers_from_the_facts(world):
    reply = ask(world, "revenue", ADMIN)
    assert reply["response_type"] == "ephemeral"
    total = won_revenue(world, date(2026, 10, 1), date(2026, 11, 26))
    lyon = won_revenue(world, date(2026, 10, 1), date(2026, 11, 26), team="Lyon")
    text = all_text(reply)
    assert fmt().money(total) in text
    assert f"Lyon — *{fmt().money(lyon)}*" in text
    share = reply["blocks"][-1]
    assert share["elements"][0]["action_id"] == "kpi.share"
    assert share["elements"][0]["value"] == "revenue"


def test_french_words_and_questions(world):
    team = ask(world, "équipe Lyon", MANAGER)
    assert "Équipe Lyon" in all_text(team)
    targets = ask(world, "objectifs", ADMIN)
    assert "Objectifs" in all_text(targets)
    assert "alertes" in all_text(ask(world, "alertes", ADMIN))
    q = ask(world, "ca équipe Lyon trimestre dernier", MANAGER)
    lyon_q3 = won_revenue(world, date(2026, 7, 1), date(2026, 9, 30), team="Lyon")
    assert fmt().money(lyon_q3) in all_text(q)


def test_unknown_input_gets_did_you_mean_help_not_a_trace(world):
    reply = ask(world, "revnue", ADMIN)
    text = all_text(reply)
    assert "`revenue`" in text and "Traceback" not in text
    assert "/kpi conversion" in text


def test_help(world):
    assert "/kpi revenue team EMEA last quarter" in all_text(ask(world, "", STRANGER))
    assert "/kpi leaderboard" in all_text(ask(world, "aide", STRANGER))


def test_a_rep_sees_their_own_numbers_but_not_another_reps(world):
    own = ask(world, f"rep <@{REP}|antoine>", REP)
    assert REP_NAME in all_text(own) and "Désolé" not in all_text(own)
    other = ask(world, f"rep <@{OTHER_REP}|camille>", REP)
    assert "Désolé" in all_text(other) and OTHER_NAME in all_text(other)
    assert "kpi.share" not in all_text(other)


def test_a_reps_view_of_a_team_hides_the_other_reps(world):
    reply = ask(world, "revenue team Paris Grands Comptes", REP)
    text = all_text(reply)
    assert REP_NAME in text
    assert OTHER_NAME not in text


def test_a_manager_sees_their_reps_but_not_another_teams(world):
    assert "Pierre Bonnet" in all_text(ask(world, "revenue team Lyon", MANAGER))
    refused = ask(world, f"rep {REP_NAME}", MANAGER)
    assert "Désolé" in all_text(refused)


def test_strangers_see_company_figures_only(world):
    assert "Désolé" not in all_text(ask(world, "revenue", STRANGER))
    assert "Désolé" in all_text(ask(world, "revenue team Lyon", STRANGER))


def test_admin_commands_are_refused_to_others(world):
    for user in (REP, MANAGER, STRANGER):
        reply = ask(world, "subscribe <#CNEW|ventes> 08:30", user)
        assert "réservé aux administrateurs" in all_text(reply)
    ok = ask(world, "subscribe <#CNEW|ventes> 08:30 team Lyon", ADMIN)
    assert "<#CNEW>" in all_text(ok)
    from bot.subscriptions import load_subscriptions

    with world.sessions()() as session:
        subs = load_subscriptions(world.settings, session)
    assert [s.id for s in subs] == ["leadership", "chat-1"]
    assert subs[1].channel == "CNEW" and subs[1].scope.name == "Lyon"


def test_share_reposts_in_channel_only_what_the_sharer_may_see(world):
    before = len(world.fake.responses)
    body = action_body(world.fake, "kpi.share", "revenue team Paris Grands Comptes", REP)
    assert dispatch(world, body).status == 200
    wait_for(lambda: len(world.fake.responses) > before)
    shared = world.fake.responses[before]
    assert shared["response_type"] == "in_channel"
    text = all_text(shared)
    # visibility.rep_figures is private by default: not even the sharer's own row.
    assert REP_NAME not in text and OTHER_NAME not in text
    assert "Paris Grands Comptes" in text
    assert f"<@{REP}>" in text  # "shared by"
    assert "kpi.share" not in text
    validate_blocks(shared["blocks"])


def test_app_home_publishes_the_users_own_dashboard(world):
    body = event_body({"type": "app_home_opened", "user": MANAGER, "tab": "home", "channel": "D1"})
    assert dispatch(world, body).status == 200
    wait_for(lambda: len(world.fake.views) == 1)
    published = world.fake.views[0]
    assert published["user_id"] == MANAGER
    view = published["view"]
    assert view["type"] == "home"
    assert "Équipe Lyon" in json.dumps(view, ensure_ascii=False)
    validate_blocks(view["blocks"])


def test_crm_text_that_tries_to_ping_everyone_arrives_inert(world):
    with transaction(world.sessions()) as session:
        session.execute(update(Team).where(Team.name == "Lyon").values(name="<!channel>"))
        session.execute(
            update(Rep).where(Rep.name == OTHER_NAME).values(name="<https://evil|click>")
        )
        bump_data_version(session)
    company = all_text(ask(world, "revenue", ADMIN))
    by_rep = all_text(ask(world, "revenue by rep", ADMIN))
    for text in (company, by_rep):
        assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in company
    assert "&lt;https://evil|click&gt;" in by_rep


def test_tokens_never_reach_logs_or_messages(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.fake.fail("users.info", *[])  # nothing scripted: a normal run, fully logged
    reply = ask(world, "revenue", ADMIN)
    assert TOKEN not in caplog.text and TOKEN not in all_text(reply)


def test_errors_are_logged_once_and_answered_politely(world, caplog, monkeypatch):
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"database exploded with {TOKEN}")

    monkeypatch.setattr(world.service, "parse", broken)
    caplog.set_level(logging.ERROR)
    reply = ask(world, "revenue", ADMIN)
    assert "Désolé" in all_text(reply) and "exploded" not in all_text(reply)
    assert "RuntimeError" in caplog.text and TOKEN not in caplog.text


class RecordingApp:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.actions: list[str] = []
        self.events: list[str] = []

    def _record(self, kind: list[str], name: str) -> Any:
        kind.append(name)
        return lambda listener: listener

    def command(self, name: str) -> Any:
        return self._record(self.commands, name)

    def action(self, name: str) -> Any:
        return self._record(self.actions, name)

    def event(self, name: str, matchers: Any = None) -> Any:
        return self._record(self.events, name)


def test_manifest_declares_what_the_app_registers():
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    app = RecordingApp()
    handlers.register(app, core=object(), render=object(), buttons=object(), clock=lambda: NOW)  # type: ignore[arg-type]
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(declared) == sorted(app.commands) == ["/kpi"]
    # A "message" listener hears direct messages and the channels' threads.
    messages = {"message.im", "message.channels", "message.groups"}
    events = {e for name in app.events for e in (messages if name == "message" else {name})}
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == events
    assert {"app_mentions:read", "im:history", "channels:history"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
    assert manifest["features"]["app_home"]["messages_tab_read_only_enabled"] is False
    assert manifest["settings"]["interactivity"]["is_enabled"] is bool(app.actions)
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "users:read.email" in manifest["oauth_config"]["scopes"]["bot"]
