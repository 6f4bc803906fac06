"""Socket Mode end to end: the real app under slack_bolt's SocketModeHandler, connected to a
local server that speaks Slack's Socket Mode protocol (``apps.connections.open`` on the fake
Web API → WebSocket → ``hello`` → envelopes → acknowledgements). A slash command, a direct
message and an @mention arrive as envelopes; each is acknowledged by its envelope id and
answered through the Web API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from tests.bot.slack_world import ADMIN, REP, World, command_body, make_world, wait_for
from tests.fakes.slack_api import APP_TOKEN, BOT_USER, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode


@pytest.fixture
def connected(tmp_path: Path) -> Iterator[tuple[World, FakeSocketMode]]:
    with FakeSlack() as fake, FakeSocketMode() as socket:
        fake.socket_url = socket.url
        world = make_world(tmp_path, fake)
        handler = SocketModeHandler(world.app, APP_TOKEN)
        handler.connect()  # type: ignore[no-untyped-call]
        socket.wait_connected()
        yield world, socket
        handler.close()  # type: ignore[no-untyped-call]
        world.service.engine.dispose()


def event_payload(event: dict[str, str]) -> dict[str, object]:
    return {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": f"Ev{event['ts']}", "event_time": 1, "event": event}  # fmt: skip


def test_the_app_connects_with_its_app_token_and_is_greeted(connected):
    world, socket = connected
    [opened] = world.fake.calls_to("apps.connections.open")
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
    assert socket.hellos == 1


def test_a_slash_command_envelope_is_acknowledged_then_answered(connected):
    world, socket = connected
    payload = {k: v[0] for k, v in parse_qs(command_body(world.fake, "revenue", ADMIN)).items()}
    envelope = socket.send("slash_commands", payload)
    ack = socket.wait_ack(envelope)
    assert ack["envelope_id"] == envelope
    wait_for(lambda: world.fake.responses)
    reply = world.fake.responses[0]
    assert reply["response_type"] == "ephemeral" and "Chiffre d'affaires" in reply["text"]


def test_a_direct_message_and_a_mention_arrive_as_events(connected):
    world, socket = connected
    dm = {"type": "message", "channel_type": "im", "channel": "DREP1", "user": REP,
          "text": "conversion", "ts": "200.000001"}  # fmt: skip
    socket.wait_ack(socket.send("events_api", event_payload(dm)))
    wait_for(lambda: world.fake.posts("DREP1"))
    assert "Taux de conversion" in json.dumps(
        world.fake.posts("DREP1")[0].blocks, ensure_ascii=False
    )

    ts = world.fake.user_says("CGENERAL", ADMIN, f"<@{BOT_USER}> alertes")
    mention = {"type": "app_mention", "channel": "CGENERAL", "user": ADMIN,
               "text": f"<@{BOT_USER}> alertes", "ts": ts}  # fmt: skip
    socket.wait_ack(socket.send("events_api", event_payload(mention)))
    wait_for(lambda: [p for p in world.fake.posts("CGENERAL") if p.thread_ts == ts])
    [answer] = [p for p in world.fake.posts("CGENERAL") if p.thread_ts == ts]
    assert "alerte" in json.dumps(answer.blocks, ensure_ascii=False)
