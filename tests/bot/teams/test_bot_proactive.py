"""Proactive messages through the Teams bot, end to end: the bot is installed (the reference is
stored) → a scheduled digest and an alert go through the outbox to the stored conversation
(``teams:<name>``) at the fake Bot Connector, with its retries (429 + Retry-After, 5xx) and its
permanent errors; an alert card's Acknowledge (an ``adaptiveCard/action`` invoke) updates the
card in place. French and English."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.alerting import run_alerts
from bot.delivery.errors import PermanentDeliveryError
from bot.digests import post_digest
from bot.formatting import Formatter
from bot.scheduling.runtime import Runtime, build_runtime
from bot.store.chat_models import AlertMessage, from_db
from bot.store.delivery_models import OutboxEntry
from bot.subscriptions import load_subscriptions
from tests.bot.slack_world import NOW
from tests.bot.teams.world import (
    ADMIN,
    LEADERSHIP_TEAM_ID,
    LYON_TEAM_ID,
    MANAGER,
    STRANGER,
    TeamsWorld,
    card_action,
    card_text,
    installation,
    teams_world,
)
from tests.fakes.bot_framework import ADAPTIVE_CARD, Member
from tests.fakes.http_fake import Fault

DIGEST = """
subscriptions:
  - id: leadership-teams
    channel: "teams:Direction commerciale"
    time: "08:30"
    kpis: [revenue, pipeline]
    chart: false  # one card per digest here; the chart's own tests: test_digest_chart.py
alerts:
  for: 1
  resolve_after: 1
"""
LEADERSHIP_ACTIVITIES = f"/v3/conversations/{LEADERSHIP_TEAM_ID}/activities"
LYON_ACTIVITIES = f"/v3/conversations/{LYON_TEAM_ID}/activities"


def installed(world: TeamsWorld) -> Runtime:
    """kpibot installed in the leadership team and in Lyon's; the scheduler's runtime."""
    for name, team_id in (("Direction commerciale", LEADERSHIP_TEAM_ID),
                          ("Équipe Lyon", LYON_TEAM_ID)):  # fmt: skip
        status, _ = world.post(installation(world.fake, ADMIN, team=name, team_id=team_id))
        assert status == 200
    world.fake.requests.clear()
    return build_runtime(world.settings, engine=world.service.engine, sleep=lambda _: None)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[TeamsWorld]:
    with teams_world(tmp_path, extra=DIGEST) as world:
        yield world


def digest(world: TeamsWorld, runtime: Runtime):  # type: ignore[no-untyped-def]
    with world.sessions()() as session:
        (subscription,) = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)
    return post_digest(world.service, runtime.dispatcher, subscription, NOW, fmt)


def posted_text(body: dict[str, Any]) -> str:
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    return card_text(attachment["content"])


def act(
    world: TeamsWorld, member: Member, verb: str, data: dict[str, Any], card_id: str
) -> tuple[int, Any]:
    """``member`` clicks an ``Action.Execute`` on card ``card_id`` in Lyon's channel."""
    action = card_action(world.fake, member, verb, data, conversation_id=LYON_TEAM_ID,
                         reply_to=card_id)  # fmt: skip
    return world.post(action)


def outbox(world: TeamsWorld) -> list[OutboxEntry]:
    with world.sessions()() as session:
        return list(session.scalars(select(OutboxEntry)))


def test_a_scheduled_digest_is_posted_to_the_stored_conversation(world: TeamsWorld) -> None:
    delivered = digest(world, installed(world))
    (post,) = world.fake.posted()
    assert post.path == LEADERSHIP_ACTIVITIES
    text = posted_text(post.json())
    assert "Chiffre d'affaires" in text and "€" in text
    # The activity id Teams gave is kept: the outbox knows where the card is.
    (entry,) = outbox(world)
    assert entry.status == "sent"
    assert (entry.delivered_channel, entry.ts) == ("teams:Direction commerciale", delivered.ts)
    assert (LEADERSHIP_TEAM_ID, delivered.ts) in world.fake.activities


def test_the_digest_in_english(tmp_path: Path) -> None:
    with teams_world(tmp_path, locale="en_US", extra=DIGEST) as world:
        digest(world, installed(world))
        (post,) = world.fake.posted()
    text = posted_text(post.json())
    assert "Revenue" in text and "Chiffre" not in text


def test_a_rate_limit_waits_and_sends_once(world: TeamsWorld) -> None:
    runtime = installed(world)
    world.fake.fail(Fault(429, {"error": {"code": "TooManyRequests"}},
                          {"Retry-After": "0"}, path=LEADERSHIP_ACTIVITIES))  # fmt: skip
    delivered = digest(world, runtime)
    posts = world.fake.posted()
    assert len(posts) == 2  # refused, then accepted
    assert [a for a in world.fake.activities if a[0] == LEADERSHIP_TEAM_ID] == [
        (LEADERSHIP_TEAM_ID, delivered.ts)
    ]


def test_a_server_error_is_retried_and_may_post_twice(world: TeamsWorld) -> None:
    """The bot path is at least once: after a 5xx nothing can be looked up, so it sends
    again (here the 500 posted nothing, so the card is there once)."""
    runtime = installed(world)
    world.fake.fail(Fault(503, path=LEADERSHIP_ACTIVITIES))
    digest(world, runtime)
    assert len(world.fake.posted()) == 2
    (entry,) = outbox(world)
    assert entry.status == "sent"


@pytest.mark.parametrize(
    ("how", "code"),
    [
        # (what is wrong, the error recorded for sales-ops)
        ("removed", "teams_bot_removed"),  # 403 BotNotInConversationRoster
        ("unknown", "teams_unknown_conversation"),  # 404 ConversationNotFound
    ],
)
def test_permanent_errors_are_recorded_not_retried(world: TeamsWorld, how: str, code: str) -> None:
    runtime = installed(world)
    if how == "removed":
        world.fake.removed.add(LEADERSHIP_TEAM_ID)
    else:
        world.fake.conversations.add(LYON_TEAM_ID)  # only Lyon exists any more
    with pytest.raises(PermanentDeliveryError):
        digest(world, runtime)
    assert len(world.fake.posted()) == 1
    (entry,) = outbox(world)
    assert (entry.status, entry.error) == ("failed", code)


def test_a_route_naming_no_stored_conversation_is_permanent(tmp_path: Path) -> None:
    with teams_world(tmp_path, extra=DIGEST) as world:
        runtime = build_runtime(world.settings, engine=world.service.engine, sleep=lambda _: None)
        with pytest.raises(PermanentDeliveryError, match="teams_unknown_conversation"):
            digest(world, runtime)
        assert world.fake.posted() == []


def test_an_alert_card_is_acknowledged_in_place(world: TeamsWorld) -> None:
    runtime = installed(world)
    run = run_alerts(world.service, runtime.dispatcher, NOW)
    assert not run.failed, run.failed
    lyon = world.fake.posted(LYON_TEAM_ID)
    assert len(lyon) == 1, "one alert card for Lyon's team channel"
    assert "Lyon" in posted_text(lyon[0].json())
    with world.sessions()() as session:
        message = session.scalars(
            select(AlertMessage).where(AlertMessage.channel == "teams:Équipe Lyon")
        ).one()
    key, card_id = message.idempotency_key, message.ts
    assert (LYON_TEAM_ID, card_id) in world.fake.activities

    # A stranger may not: told so, the card stays as it is.
    ack = {"kpibot": "kpi.ack", "key": key}
    status, answer = act(world, STRANGER, "kpi.ack", ack, card_id)
    assert status == 200
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert world.fake.updated() == []

    # Lyon's manager acknowledges: the card is drawn again, for the clicker and for everyone.
    status, answer = act(world, MANAGER, "kpi.ack", ack, card_id)
    assert status == 200
    assert answer["statusCode"] == 200 and answer["type"] == ADAPTIVE_CARD
    (put,) = world.fake.updated()
    assert put.path == f"{LYON_ACTIVITIES}/{card_id}"
    assert put.json()["attachments"][0]["content"] == answer["value"]
    with world.sessions()() as session:
        acked = session.get(AlertMessage, message.id)
        assert acked is not None and acked.acked_by == MANAGER.aad_object_id

    # The same action replayed on another card is refused.
    status, answer = act(world, MANAGER, "kpi.ack", ack, "1999")
    assert answer["type"] == "application/vnd.microsoft.activity.message"


def test_an_unknown_card_action_is_a_400_invoke_response(world: TeamsWorld) -> None:
    status, answer = act(world, MANAGER, "other", {"x": 1}, "1")
    assert status == 200
    assert answer["statusCode"] == 400 and answer["type"] == "application/vnd.microsoft.error"


def test_an_alert_card_is_snoozed_in_place(world: TeamsWorld) -> None:
    run_alerts(world.service, installed(world).dispatcher, NOW)
    with world.sessions()() as session:
        message = session.scalars(
            select(AlertMessage).where(AlertMessage.channel == "teams:Équipe Lyon")
        ).one()
    snooze = {"kpibot": "kpi.snooze", "key": message.idempotency_key, "duration": "1d"}
    status, answer = act(world, ADMIN, "kpi.snooze", snooze, message.ts)
    assert status == 200 and answer["type"] == ADAPTIVE_CARD
    (put,) = world.fake.updated()
    assert put.json()["attachments"][0]["content"] == answer["value"]
    with world.sessions()() as session:
        snoozed = session.get(AlertMessage, message.id)
        assert snoozed is not None and snoozed.snoozed_by == ADMIN.aad_object_id
        assert from_db(snoozed.snoozed_until) == NOW + timedelta(days=1)  # stored in UTC
