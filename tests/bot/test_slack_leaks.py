"""Who sees what, through the real app and the fake Slack: each leak found in review has its
regression here (issue 7). Names are checked against the demo company's roster: a rep's
answers name no other rep, a manager's no rep of another team, a stranger's no team."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update

from bot.alerting import run_alerts
from bot.digests import post_digest
from bot.formatting import Formatter
from bot.slack_users import SlackUsers
from bot.store.chat_models import AlertMessage
from bot.store.database import bump_data_version, transaction
from bot.store.models import Team
from bot.subscriptions import load_subscriptions
from tests.bot.slack_world import (
    ADMIN,
    MANAGER,
    NOW,
    OTHER_NAME,
    REP,
    REP_NAME,
    STRANGER,
    World,
    action_body,
    command_body,
    dispatch,
    event_body,
    make_world,
    wait_for,
    world_fixture,
)
from tests.fakes.slack_api import TOKEN, FakeSlack, Fault

world = pytest.fixture(world_fixture)


def ask(world: World, text: str, user: str) -> str:
    before = len(world.fake.responses)
    assert dispatch(world, command_body(world.fake, text, user)).status == 200
    wait_for(lambda: len(world.fake.responses) > before)
    return json.dumps(world.fake.responses[before], ensure_ascii=False)


def roster(world: World) -> dict[str, str]:
    """Rep name → team, from the CRM facts."""
    reps = world.service.snapshot().facts.reps
    return dict(zip(reps["name"], reps["team"], strict=True))


def named(text: str, names: Any) -> set[str]:
    return {n for n in names if n in text}


def home(world: World, user: str) -> str:
    before = len(world.fake.views)
    body = event_body({"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"})
    assert dispatch(world, body).status == 200
    wait_for(lambda: len(world.fake.views) > before)
    return json.dumps(world.fake.views[before], ensure_ascii=False)


def send_alerts(world: World) -> None:
    client = WebClient(token=TOKEN, base_url=world.fake.url)
    users = SlackUsers(client, world.sessions())
    run = run_alerts(world.service, world.dispatcher(), NOW, users=users.user_for)
    assert not run.failed


def test_a_rep_reads_no_other_reps_figures(world):
    others = set(roster(world)) - {REP_NAME}
    for question in ("team Paris Grands Comptes", "alerts", "revenue team Lyon", "classement",
                     "objectifs", "revenue by rep"):  # fmt: skip
        assert named(ask(world, question, REP), others) == set(), question
    assert named(home(world, REP), others) == set()
    # Their own figures are theirs to see.
    assert REP_NAME in ask(world, "revenue team Paris Grands Comptes", REP)


def test_a_manager_reads_no_other_teams_reps(world):
    teams = roster(world)
    lyon = {n for n, t in teams.items() if t == "Lyon"}
    elsewhere = set(teams) - lyon
    alerts = ask(world, "alerts", MANAGER)
    assert named(alerts, elsewhere) == set()
    assert named(alerts, lyon), "the furthest-behind reps of their own team are named"
    by_rep = ask(world, "revenue by rep", MANAGER)
    assert named(by_rep, elsewhere) == set() and named(by_rep, lyon) == lyon
    assert named(home(world, MANAGER), elsewhere) == set()


def test_unknown_users_with_company_read_company_figures_only(world):
    teams = set(world.service.snapshot().directory.teams)
    for question in ("revenue", "alerts", "objectifs"):
        text = ask(world, question, STRANGER)
        assert named(text, teams) == set() and named(text, roster(world)) == set(), question
    assert "Chiffre d'affaires" in ask(world, "revenue", STRANGER)


def test_channel_alerts_name_no_rep_and_the_manager_gets_the_names_by_dm(world):
    lyon = {n for n, t in roster(world).items() if t == "Lyon"}
    send_alerts(world)
    channel = " ".join(json.dumps(p.blocks, ensure_ascii=False) for p in world.fake.posts("CLYON"))
    assert named(channel, roster(world)) == set()
    assert "commerciaux en retard" in channel or "commercial en retard" in channel
    leadership = " ".join(json.dumps(p.blocks) for p in world.fake.posts("CLEAD"))
    assert named(leadership, roster(world)) == set()
    dm = " ".join(json.dumps(p.blocks, ensure_ascii=False) for p in world.fake.posts(MANAGER))
    assert named(dm, lyon) and named(dm, set(roster(world)) - lyon) == set()


def test_rep_figures_team_shows_a_teams_reps_in_its_own_channel_only(tmp_path):
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake, "visibility:\n  rep_figures: team\n")
        lyon = {n for n, t in roster(world).items() if t == "Lyon"}
        send_alerts(world)
        channel = " ".join(json.dumps(p.blocks, ensure_ascii=False) for p in fake.posts("CLYON"))
        assert named(channel, lyon)
        leadership = " ".join(json.dumps(p.blocks, ensure_ascii=False) for p in fake.posts("CLEAD"))
        assert named(leadership, roster(world)) == set()
        assert fake.posts(MANAGER) == []  # the channel already names them
        world.service.engine.dispose()


def test_a_channel_digest_names_no_rep(world):
    with world.sessions()() as session:
        [subscription] = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)
    post_digest(world.service, world.dispatcher(), subscription, NOW, fmt)
    [posted, chart] = world.fake.posts("CLEAD")
    assert named(json.dumps(posted.blocks, ensure_ascii=False), roster(world)) == set()
    # its chart draws teams, never reps
    assert chart.files and named(json.dumps(chart.files), roster(world)) == set()


def lyon_message(world: World) -> tuple[str, str]:
    send_alerts(world)
    posted = next(p for p in world.fake.posts("CLYON") if p.thread_ts is None)
    return posted.metadata["event_payload"]["idempotency_key"], posted.ts


def last_response(world: World, before: int) -> dict[str, Any]:
    wait_for(lambda: len(world.fake.responses) > before)
    return world.fake.responses[before]


def test_a_rep_cannot_acknowledge_their_teams_alerts(world):
    key, ts = lyon_message(world)
    before = len(world.fake.responses)
    body = action_body(world.fake, "kpi.ack", key, REP, channel="CLYON", ts=ts)
    assert dispatch(world, body).status == 200
    refusal = last_response(world, before)
    assert refusal["response_type"] == "ephemeral" and "Désolé" in refusal["text"]
    with world.sessions()() as session:
        record = session.scalars(select(AlertMessage).where(AlertMessage.idempotency_key == key))
        assert record.one().acked_by is None
    assert all(not p.edits for p in world.fake.posts("CLYON"))


def test_a_button_acts_only_on_its_own_message(world):
    key, _ = lyon_message(world)
    before = len(world.fake.responses)
    # The manager's snooze value, replayed from another message.
    body = action_body(
        world.fake, "kpi.snooze", f"{key}|1w", MANAGER, channel="CGENERAL", ts="9.9",
        selected=True,
    )  # fmt: skip
    assert dispatch(world, body).status == 200
    assert "n'appartient pas" in last_response(world, before)["text"]
    with world.sessions()() as session:
        record = session.scalars(select(AlertMessage).where(AlertMessage.idempotency_key == key))
        assert record.one().snoozed_by is None


def test_a_refused_share_posts_nothing_in_the_channel(world):
    before = len(world.fake.responses)
    body = action_body(world.fake, "kpi.share", f"rep {OTHER_NAME}", REP)
    assert dispatch(world, body).status == 200
    response = last_response(world, before)
    assert response["response_type"] == "ephemeral"
    assert all(r.get("response_type") != "in_channel" for r in world.fake.responses)


def test_did_you_mean_names_only_what_the_asker_may_see(world):
    text = ask(world, "revenue rep Camile Laurant", REP)
    assert OTHER_NAME not in text and "camile" in text.lower()
    assert OTHER_NAME in ask(world, "revenue rep Camile Laurant", ADMIN)


def test_did_you_mean_names_are_escaped_and_few(world):
    with transaction(world.sessions()) as session:
        session.execute(update(Team).where(Team.name == "Lyon").values(name="<!channel>"))
        bump_data_version(session)
    text = ask(world, "revenue team Xyzzy", ADMIN)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    known = text.split("Connus")[1].split(".")[0]
    teams = world.service.snapshot().directory.teams
    assert len(teams) > 5 and known.count(",") == 4


def test_the_snooze_list_shows_only_silences_the_viewer_may_see(world):
    assert "😴" in ask(world, f"snooze revenue rep {OTHER_NAME} 2d", ADMIN)
    assert "😴" in ask(world, "snooze revenue team Lyon 2d", ADMIN)
    listed = ask(world, "snooze", REP)
    assert "Lyon" in listed and OTHER_NAME not in listed


def test_a_failed_users_info_is_explained_not_treated_as_a_stranger(world):
    world.fake.fail("users.info", Fault.api_error("missing_scope"))
    text = ask(world, "revenue", REP)
    assert "users.info" in text and "missing_scope" in text
    assert "Chiffre d'affaires ·" not in text
    # Not remembered: once Slack answers, the rep is recognised.
    assert REP_NAME in ask(world, "revenue team Paris Grands Comptes", REP)


def test_a_snooze_in_french_words_lasts_what_it_says(world):
    text = ask(world, "sourdine ca équipe Lyon 1 sem", MANAGER)
    assert "😴" in text and "3 déc. 2026" in text  # a week after 26 Nov, 10:00
