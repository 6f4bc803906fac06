"""Acknowledge and Snooze are the alert view's actions, applied by one core function for every
surface: an alert message posted on another surface (a stand-in for Teams) is acknowledged
and snoozed with that surface's user ids, through the same authorization as Slack's buttons."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.alerting import AlertMessageUpdate, run_alerts
from bot.core import ConversationCore
from bot.delivery.surfaces import Dispatcher, Surface, Surfaces
from bot.formatting import Formatter
from bot.store.chat_models import NotificationLogEntry, Silence
from bot.text_render import TextNotificationRenderer
from conversation.authorization import Action, Refusal, Role, Viewer
from conversation.views import AlertNote, Refused, Reply
from metrics.evaluation import Evaluation, Status
from metrics.scopes import Level
from tests.bot.delivery_support import RecordingNotifier
from tests.bot.slack_world import CHAT_CONFIG, NOW, World, make_world
from tests.fakes.slack_api import FakeSlack

# Teams user ids, as a Teams surface would identify them.
VIEWERS = {
    "teams-admin": Viewer("teams-admin", Role.ADMIN),
    "teams-lyon-manager": Viewer("teams-lyon-manager", Role.MANAGER, teams=frozenset({"Lyon"})),
    "teams-paris-manager": Viewer(
        "teams-paris-manager", Role.MANAGER, teams=frozenset({"Paris Grands Comptes"})
    ),
    "teams-rep": Viewer("teams-rep", Role.REP, rep="Antoine Lefèvre"),
    "teams-stranger": Viewer("teams-stranger", Role.UNKNOWN, sees_company=False),
}


@dataclasses.dataclass
class Posted:
    world: World
    core: ConversationCore
    teams: RecordingNotifier
    key: str
    channel: str
    ts: str


def lyon_at_risk(world: World) -> list[Evaluation]:
    return [
        dataclasses.replace(e, status=Status.AT_RISK)
        for e in world.service.check(NOW)
        if e.kpi == "revenue" and e.scope.level is Level.TEAM and e.scope.name == "Lyon"
    ]


def with_teams(world: World, teams: RecordingNotifier) -> Dispatcher:
    """The world's Slack surface, and a Teams stand-in that prints its cards as text."""
    fmt = Formatter.for_organisation(world.settings.organisation)
    slack = world.dispatcher().surfaces
    surfaces = Surfaces(
        {
            "slack": slack.surface("slack"),
            "teams": Surface(TextNotificationRenderer(fmt), teams),
        }
    )
    return Dispatcher(surfaces, surfaces)


@pytest.fixture
def posted(tmp_path: Path) -> Iterator[Posted]:
    """Lyon's revenue alert, posted to a Teams conversation."""
    with FakeSlack() as fake:
        config = CHAT_CONFIG.replace("Lyon: CLYON", "Lyon: teams:lyon")
        world = make_world(tmp_path, fake, chat_config=config)
        teams = RecordingNotifier()
        run = run_alerts(
            world.service, with_teams(world, teams), NOW, evaluations=lyon_at_risk(world)
        )
        [sent] = teams.sent
        # (the named version also went to the manager's Slack DM: rep figures are private)
        [delivered] = [d for d in run.sent if d.channel.startswith("teams:")]
        core = ConversationCore(world.service, lambda user, _now: VIEWERS[user], world.sessions())
        yield Posted(world, core, teams, sent.idempotency_key, delivered.channel, delivered.ts)
        world.service.engine.dispose()


def act(posted: Posted, user: str, action: Action, value: str) -> Reply | AlertMessageUpdate | None:
    return posted.core.act_on_alerts(user, action, value, NOW, posted.channel, posted.ts)


def test_the_alert_went_to_the_teams_destination_with_its_actions(posted: Posted) -> None:
    assert (posted.channel, posted.ts) == ("teams:lyon", "activity-1")
    [sent] = posted.teams.sent
    assert sent.surface == "teams" and sent.channel == "lyon"
    assert "Chiffre d'affaires" in sent.text and "Équipe Lyon" in sent.text


@pytest.mark.parametrize(
    ("user", "action", "allowed", "reason"),
    [
        ("teams-admin", Action.ACKNOWLEDGE, True, None),
        ("teams-lyon-manager", Action.ACKNOWLEDGE, True, None),  # the scope's manager
        ("teams-lyon-manager", Action.SNOOZE, True, None),
        ("teams-paris-manager", Action.ACKNOWLEDGE, False, Refusal.NOT_YOURS),  # another team
        ("teams-paris-manager", Action.SNOOZE, False, Refusal.NOT_YOURS),
        ("teams-rep", Action.ACKNOWLEDGE, False, Refusal.NOT_YOURS),  # a team alert: not theirs
        ("teams-stranger", Action.SNOOZE, False, Refusal.UNKNOWN_USER),
    ],
)
def test_who_may_act_on_the_message(
    posted: Posted, user: str, action: Action, allowed: bool, reason: Refusal | None
) -> None:
    value = posted.key if action is Action.ACKNOWLEDGE else f"{posted.key}|3d"
    outcome = act(posted, user, action, value)
    if not allowed:
        assert isinstance(outcome, Reply) and outcome.view == Refused(reason, outcome.view.what)
        with posted.world.sessions()() as session:
            assert session.scalars(select(Silence)).all() == []
        return
    assert isinstance(outcome, AlertMessageUpdate)
    assert (outcome.channel, outcome.ts) == ("teams:lyon", "activity-1")
    [note] = outcome.group.notes
    until = NOW if action is Action.ACKNOWLEDGE else NOW + timedelta(days=3)
    assert note == AlertNote(action, user, until)
    # Still firing: the actions stay on the message.
    assert outcome.group.actions == (Action.ACKNOWLEDGE, Action.SNOOZE)


def test_a_snooze_silences_the_message_alerts(posted: Posted) -> None:
    act(posted, "teams-lyon-manager", Action.SNOOZE, f"{posted.key}|1w")
    with posted.world.sessions()() as session:
        [silence] = session.scalars(select(Silence)).all()
    assert (silence.kpi, silence.scope_level, silence.scope_name) == ("revenue", "team", "Lyon")
    assert silence.created_by == "teams-lyon-manager"


def test_an_action_acts_only_on_its_own_message(posted: Posted) -> None:
    elsewhere = posted.core.act_on_alerts(
        "teams-admin", Action.ACKNOWLEDGE, posted.key, NOW, "teams:paris", posted.ts
    )
    assert isinstance(elsewhere, Reply)
    assert elsewhere.view == Refused(Refusal.OTHER_MESSAGE)
    unknown = act(posted, "teams-admin", Action.ACKNOWLEDGE, "alerts:teams:lyon:nope")
    assert isinstance(unknown, Reply) and unknown.view == Refused(Refusal.OTHER_MESSAGE)


def test_a_snooze_for_a_duration_not_offered_does_nothing(posted: Posted) -> None:
    assert act(posted, "teams-admin", Action.SNOOZE, f"{posted.key}|10y") is None
    with posted.world.sessions()() as session:
        assert session.scalars(select(Silence)).all() == []


def test_one_rule_may_name_destinations_on_several_surfaces(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        config = CHAT_CONFIG.replace("Lyon: CLYON", "Lyon: [CLYON, 'teams:lyon']")
        world = make_world(tmp_path, fake, chat_config=config)
        assert world.settings.config.slack.team_channels["Lyon"] == ("CLYON", "teams:lyon")
        teams = RecordingNotifier()
        run = run_alerts(
            world.service, with_teams(world, teams), NOW, evaluations=lyon_at_risk(world)
        )
        world.service.engine.dispose()
    # The same alert on both surfaces, each drawn its own way, each with its own log entry.
    [slack] = fake.posts("CLYON")
    [card] = teams.sent
    assert "Équipe Lyon" in json.dumps(slack.blocks, ensure_ascii=False)
    assert "Équipe Lyon" in card.text and card.body is None
    assert {"CLYON", "teams:lyon"} <= {d.channel for d in run.sent}
    with world.sessions()() as session:
        routes = {e.route for e in session.scalars(select(NotificationLogEntry))}
    assert {"CLYON", "teams:lyon"} <= routes
