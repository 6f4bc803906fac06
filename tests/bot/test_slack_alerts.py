"""Alerts and digests end to end against the fake Slack: firing → repeat → resolve (message
edited, reply in its thread), Acknowledge and Snooze through the real app, quiet hours, and a
digest with its idempotency key in message metadata."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.alerting import advance_states, run_alerts
from bot.digests import digest_notification, post_digest
from bot.formatting import Formatter
from bot.rendering import validate_blocks
from bot.slack_users import SlackUsers
from bot.store.chat_models import AlertMessage, NotificationLogEntry, Silence
from bot.subscriptions import load_subscriptions
from metrics.alerts import Damping
from metrics.evaluation import Status
from tests.bot.slack_world import (
    MANAGER,
    NOW,
    World,
    action_body,
    dispatch,
    wait_for,
    world_fixture,
)
from tests.fakes.slack_api import TOKEN

world = pytest.fixture(world_fixture)


def users(world: World) -> SlackUsers:
    return SlackUsers(WebClient(token=TOKEN, base_url=world.fake.url), world.sessions())


def run(world: World, now, evaluations):  # type: ignore[no-untyped-def]
    return run_alerts(
        world.service, world.dispatcher(), now, users=users(world).user_for, evaluations=evaluations
    )


def lyon_posts(world: World):  # type: ignore[no-untyped-def]
    return [p for p in world.fake.posts("CLYON") if p.thread_ts is None]


def test_alert_lifecycle_first_repeat_resolve(world):
    evaluations = world.service.check(NOW)
    lyon = [e for e in evaluations if e.scope.name == "Lyon" and e.status.is_alert]
    assert lyon, "the demo's Lyon team is behind plan"
    first = run(world, NOW, evaluations)
    assert not first.failed and first.sent
    [posted] = lyon_posts(world)
    validate_blocks(posted.blocks)
    assert posted.metadata["event_payload"]["idempotency_key"].startswith("alerts:CLYON:")
    actions = next(b for b in posted.blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["kpi.ack", "kpi.snooze"]

    # An hour later, nothing changed: nothing is sent.
    assert run(world, NOW + timedelta(hours=1), evaluations).sent == []
    assert len(lyon_posts(world)) == 1

    # A day later, still firing with the same figures: no reminder (the digest carries it).
    run(world, NOW + timedelta(days=1), evaluations)
    assert len(lyon_posts(world)) == 1

    # On Monday the gap has grown by a tenth of the target: one reminder, saying so.
    later = NOW + timedelta(days=4)
    worse = [
        dataclasses.replace(
            e,
            actual=dataclasses.replace(e.actual, value=(e.actual.value or 0) - e.target / 10),
        )
        if e in lyon
        else e
        for e in evaluations
    ]
    run(world, later, worse)
    assert len(lyon_posts(world)) == 2
    assert "Depuis le" in json.dumps(lyon_posts(world)[1].blocks, ensure_ascii=False)

    # Lyon recovers: the reminder message is edited and a reply goes in its thread.
    recovered = [
        dataclasses.replace(e, status=Status.ON_TRACK) if e in lyon else e for e in evaluations
    ]
    result = run(world, later + timedelta(hours=1), recovered)
    assert result.resolved
    reminder = lyon_posts(world)[1]
    assert reminder.edits, "the original message was edited"
    assert "Résolu" in json.dumps(reminder.blocks, ensure_ascii=False)
    replies = [p for p in world.fake.posts("CLYON") if p.thread_ts == reminder.ts]
    assert len(replies) == 1 and "Résolu" in replies[0].text
    # The reply and the edited message give today's figures and status, not the stale ones.
    assert "désormais en bonne voie" in replies[0].text
    edited = json.dumps(reminder.blocks, ensure_ascii=False)
    assert "à risque" not in edited and "en bonne voie" in edited
    with world.sessions()() as session:
        statuses = {
            r.status
            for r in session.scalars(
                select(NotificationLogEntry).where(NotificationLogEntry.route == "CLYON")
            )
        }
    assert statuses == {"resolved"}


def test_company_alerts_go_to_leadership_and_rep_alerts_by_dm(world):
    evaluations = world.service.check(NOW)
    run(world, NOW, evaluations)
    company = [e for e in evaluations if e.status.is_alert and e.scope.level.value == "company"]
    if company:
        assert world.fake.posts("CLEAD")
    assert not world.fake.posts("CGENERAL")


def test_a_failed_channel_does_not_stop_the_others_and_is_not_logged(world):
    world.fake.archived.add("CLYON")
    result = run(world, NOW, world.service.check(NOW))
    assert any(f.startswith("CLYON") for f in result.failed)
    assert world.fake.posts("CPARIS") or world.fake.posts("CLEAD")
    with world.sessions()() as session:
        assert not session.scalars(
            select(NotificationLogEntry).where(NotificationLogEntry.route == "CLYON")
        ).all()


def test_quiet_hours_hold_notifications(world):
    evening = NOW.replace(hour=21)
    result = run(world, evening, world.service.check(NOW))
    assert result.sent == [] and world.fake.posts() == []
    assert result.held_until == (NOW + timedelta(days=1)).replace(hour=8)


def test_stale_data_inhibits_alerts(world):
    result = run_alerts(world.service, world.dispatcher(), NOW, stale_since=NOW - timedelta(days=3))
    assert result.inhibited and result.sent == [] and world.fake.posts() == []


def test_acknowledge_and_snooze_buttons(world):
    evaluations = world.service.check(NOW)
    run(world, NOW, evaluations)
    [posted] = lyon_posts(world)
    key = posted.metadata["event_payload"]["idempotency_key"]

    body = action_body(world.fake, "kpi.ack", key, MANAGER, channel="CLYON", ts=posted.ts)
    assert dispatch(world, body).status == 200
    wait_for(lambda: len(posted.edits) == 1)
    assert f"<@{MANAGER}>" in json.dumps(posted.blocks) and "Pris en charge" in json.dumps(
        posted.blocks, ensure_ascii=False
    )
    validate_blocks(posted.blocks)
    # Acknowledged: no reminder a day later.
    run(world, NOW + timedelta(days=1), evaluations)
    assert len(lyon_posts(world)) == 1

    body = action_body(
        world.fake, "kpi.snooze", f"{key}|1w", MANAGER, channel="CLYON", ts=posted.ts,
        selected=True,
    )  # fmt: skip
    assert dispatch(world, body).status == 200
    wait_for(lambda: len(posted.edits) == 2)
    assert "sourdine" in json.dumps(posted.blocks, ensure_ascii=False)
    with world.sessions()() as session:
        record = session.scalars(
            select(AlertMessage).where(AlertMessage.idempotency_key == key)
        ).first()
        assert record is not None and record.acked_by == MANAGER
        silences = session.scalars(select(Silence)).all()
    assert silences and {s.created_by for s in silences} == {MANAGER}
    # Escalated while snoozed: still silent.
    escalated = [
        dataclasses.replace(e, status=Status.MISSED) if e.scope.name == "Lyon" else e
        for e in evaluations
    ]
    run(world, NOW + timedelta(days=2), escalated)
    assert len(lyon_posts(world)) == 1


def test_digest_is_posted_with_its_idempotency_key(world):
    with world.sessions()() as session:
        [subscription] = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)
    delivered = post_digest(world.service, world.dispatcher(), subscription, NOW, fmt)
    # the digest, then its chart in its thread (tests/bot/test_slack_files.py)
    [posted, chart] = world.fake.posts("CLEAD")
    assert delivered.ts == posted.ts and chart.thread_ts == posted.ts and chart.files
    assert posted.metadata == {
        "event_type": "kpibot_message",
        "event_payload": {
            "kind": "digest",
            "subscription": "leadership",
            "idempotency_key": "digest:leadership:2026-11-26",
        },
    }
    validate_blocks(posted.blocks)
    assert posted.text and "Chiffre d'affaires" in posted.text


def test_digest_does_not_repeat_alerts_posted_this_morning(world):
    with world.sessions()() as session:
        [subscription] = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)
    surfaces = world.dispatcher().surfaces

    def digest_text(now: datetime) -> str:
        return surfaces.render(digest_notification(world.service, subscription, now, fmt)).text

    before = digest_text(NOW)
    run(world, NOW, world.service.check(NOW))
    posted = [p for p in world.fake.posts("CLEAD") if p.thread_ts is None]
    assert posted, "leadership got the company and region alerts"
    listed = sum(len(m.alerts) for m in _messages(world, "CLEAD"))
    after = digest_text(NOW + timedelta(minutes=30))
    # every alert posted in the channel is left out of the digest, counted, with a pointer
    word = "alerte déjà publiée" if listed == 1 else "alertes déjà publiées"
    assert f"{listed} autre{'s' if listed > 1 else ''} {word} aujourd'hui dans ce canal" in after
    assert "/kpi alertes" in after
    assert len(after) < len(before)


def _messages(world: World, route: str) -> list[AlertMessage]:
    with world.sessions()() as session:
        return list(session.scalars(select(AlertMessage).where(AlertMessage.route == route)))


def test_alert_states_persist_between_runs(world):
    # With ``for: 2`` an alert is pending after one evaluation and fires on the next day's,
    # the state read back from the database in between.
    evaluations = [e for e in world.service.check(NOW) if e.status.is_alert]
    damping = Damping(fire_after=2)
    first = advance_states(world.sessions(), evaluations, damping, NOW)
    assert first and all(s.firing is None and s.streak == 1 for s in first.values())
    tomorrow = [dataclasses.replace(e, as_of=e.as_of + timedelta(days=1)) for e in evaluations]
    second = advance_states(world.sessions(), tomorrow, damping, NOW + timedelta(days=1))
    assert {s.firing for s in second.values()} <= {Status.AT_RISK, Status.MISSED}
    assert all(s.streak == 2 and s.changes for s in second.values())
