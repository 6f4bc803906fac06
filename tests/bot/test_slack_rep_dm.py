"""A rep's alert reaches the rep, and only the rep: their CRM email is matched to a Slack user
with ``users.lookupByEmail`` and the alert is posted to that user (Slack delivers a message
whose channel is a user id in the app's DM with them), never in a team channel."""

from __future__ import annotations

import dataclasses
import json

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.alerting import run_alerts
from bot.formatting import Formatter
from bot.rendering import validate_blocks
from bot.slack_users import SlackUsers
from bot.store.chat_models import AlertMessage, NotificationLogEntry
from metrics.evaluation import Status
from metrics.kpis import KPIS
from metrics.scopes import Level
from tests.bot.slack_world import NOW, REP, REP_EMAIL, REP_NAME, World, world_fixture
from tests.fakes.slack_api import TOKEN

world = pytest.fixture(world_fixture)


def test_a_rep_alert_is_sent_to_the_reps_dm(world: World) -> None:
    evaluations = world.service.check(NOW)
    [own] = [
        e
        for e in evaluations
        if e.kpi == "revenue" and e.scope.level is Level.REP and e.scope.name == REP_NAME
    ]
    # Only the rep's alert is evaluated, so that every post and lookup can be accounted for.
    firing = dataclasses.replace(own, status=Status.AT_RISK)
    assert world.fake.users_by_email[REP_EMAIL] == REP
    client = WebClient(token=TOKEN, base_url=world.fake.url)
    users = SlackUsers(client, world.sessions())  # no slack.rep_users: found by email

    result = run_alerts(
        world.service, world.dispatcher(), NOW, users=users.user_for,
        evaluations=[firing],
    )  # fmt: skip

    assert not result.failed and len(result.sent) == 1
    lookups = world.fake.calls_to("users.lookupByEmail")
    assert [c.body["email"] for c in lookups] == [REP_EMAIL]
    [posted] = world.fake.posts()  # one message in the whole workspace...
    assert posted.channel == REP  # ...to the rep
    fmt = Formatter.for_organisation(world.settings.organisation)
    label = fmt.kpi_label(KPIS["revenue"])
    assert REP_NAME in posted.text and label in posted.text
    assert fmt.status(Status.AT_RISK) in posted.text
    blocks = posted.blocks or []
    validate_blocks(blocks)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert REP_NAME in shown and fmt.value(KPIS["revenue"], firing.target) in shown
    assert posted.metadata is not None
    assert posted.metadata["event_payload"]["idempotency_key"].startswith(f"alerts:{REP}:")
    with world.sessions()() as session:
        [message] = session.scalars(select(AlertMessage)).all()
        assert (message.route, message.channel) == (REP, REP)
        [entry] = session.scalars(select(NotificationLogEntry)).all()
        assert entry.route == REP and entry.status == "at_risk"

    # The lookup is cached: the next run does not ask Slack again.
    run_alerts(
        world.service, world.dispatcher(), NOW, users=users.user_for,
        evaluations=[firing],
    )  # fmt: skip
    assert len(world.fake.calls_to("users.lookupByEmail")) == 1
