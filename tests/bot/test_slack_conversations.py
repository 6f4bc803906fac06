"""Talking to kpibot beyond ``/kpi``, end to end over HTTP (uvicorn on port 0, requests signed
with the signing secret, the fake Slack Web API recording the answers): a direct message, an
@mention answered in a thread for the channel (or refused to the asker alone), a follow-up in
that thread, and the first-run hint of a fresh install."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.demo import write_demo_config
from bot.http_app import EVENTS_PATH
from tests.bot.http_support import post, serving, sign
from tests.bot.slack_world import (
    ADMIN,
    CHAT_CONFIG,
    OTHER_NAME,
    REP,
    REP_NAME,
    STRANGER,
    TODAY,
    World,
    command_body,
    event_body,
    wait_for,
)
from tests.fakes.slack_api import BOT_USER

NO_ACCESS = CHAT_CONFIG.split("access:")[0] + "alerts:" + CHAT_CONFIG.split("alerts:")[1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[World, str]]:
    with serving(tmp_path) as served:
        yield served


def send_event(base: str, event: dict[str, Any]) -> None:
    body = event_body(event).encode()
    assert post(base + EVENTS_PATH, body, sign(body, "application/json"))[0] == 200


def posts_in(world: World, channel: str, thread: str | None = None) -> list[Any]:
    return [p for p in world.fake.posts(channel) if p.user == BOT_USER and p.thread_ts == thread]


def text_of(post: Any) -> str:
    return json.dumps(post.blocks, ensure_ascii=False)


def test_a_direct_message_is_answered_in_the_dm(running):
    world, base = running
    dm = {"type": "message", "channel_type": "im", "channel": "DREP1", "user": REP,
          "text": "ca équipe Paris Grands Comptes", "ts": "100.000001"}  # fmt: skip
    send_event(base, dm)
    wait_for(lambda: posts_in(world, "DREP1"))
    [answer] = posts_in(world, "DREP1")
    # A DM is read by the asker alone: their own figures, no one else's.
    assert "Équipe Paris Grands Comptes" in text_of(answer)
    assert REP_NAME in text_of(answer) and OTHER_NAME not in text_of(answer)
    assert "kpi.share" not in text_of(answer)

    send_event(base, {**dm, "text": "aide", "ts": "101.000001"})
    wait_for(lambda: len(posts_in(world, "DREP1")) == 2)
    assert "/kpi classement" in text_of(posts_in(world, "DREP1")[1])


def test_a_mention_is_answered_in_its_thread_for_the_whole_channel(running):
    world, base = running
    ts = world.fake.user_says("CGENERAL", ADMIN, f"<@{BOT_USER}> revenue team Lyon")
    send_event(base, {"type": "app_mention", "channel": "CGENERAL", "user": ADMIN,
                      "text": f"<@{BOT_USER}> revenue team Lyon", "ts": ts})  # fmt: skip
    wait_for(lambda: posts_in(world, "CGENERAL", ts))
    [answer] = posts_in(world, "CGENERAL", ts)
    assert "Équipe Lyon" in text_of(answer)
    # The channel reads it: no rep figures (visibility.rep_figures: private), even for an admin.
    lyon = {
        n for n, t in world.service.snapshot().facts.reps[["name", "team"]].values if t == "Lyon"
    }
    assert not [n for n in lyon if n in text_of(answer)]
    assert posts_in(world, "CGENERAL") == []  # nothing outside the thread


def test_a_refused_mention_is_told_to_the_asker_alone(running):
    world, base = running
    ts = world.fake.user_says("CGENERAL", STRANGER, f"<@{BOT_USER}> revenue team Lyon")
    send_event(base, {"type": "app_mention", "channel": "CGENERAL", "user": STRANGER,
                      "text": f"<@{BOT_USER}> revenue team Lyon", "ts": ts})  # fmt: skip
    wait_for(lambda: world.fake.ephemerals)
    [refusal] = world.fake.ephemerals
    assert refusal["user"] == STRANGER and refusal["thread_ts"] == ts
    assert "Désolé" in refusal["text"]
    assert posts_in(world, "CGENERAL", ts) == []


def test_a_follow_up_in_the_thread_is_answered_in_the_thread(running):
    world, base = running
    ts = world.fake.user_says("CGENERAL", ADMIN, f"<@{BOT_USER}> revenue")
    send_event(base, {"type": "app_mention", "channel": "CGENERAL", "user": ADMIN,
                      "text": f"<@{BOT_USER}> revenue", "ts": ts})  # fmt: skip
    wait_for(lambda: posts_in(world, "CGENERAL", ts))
    follow_ts = world.fake.user_says("CGENERAL", ADMIN, "pipeline", thread_ts=ts)
    send_event(base, {"type": "message", "channel_type": "channel", "channel": "CGENERAL",
                      "user": ADMIN, "text": "pipeline", "ts": follow_ts,
                      "thread_ts": ts})  # fmt: skip
    wait_for(lambda: len(posts_in(world, "CGENERAL", ts)) == 2)
    assert "Pipeline" in text_of(posts_in(world, "CGENERAL", ts)[1])

    # A thread kpibot never answered in is none of its business.
    other = world.fake.user_says("CGENERAL", ADMIN, "lunch?")
    reply_ts = world.fake.user_says("CGENERAL", REP, "revenue", thread_ts=other)
    calls = len(world.fake.calls_to("conversations.replies"))
    send_event(base, {"type": "message", "channel_type": "channel", "channel": "CGENERAL",
                      "user": REP, "text": "revenue", "ts": reply_ts,
                      "thread_ts": other})  # fmt: skip
    wait_for(lambda: len(world.fake.calls_to("conversations.replies")) > calls)
    time.sleep(0.2)
    assert posts_in(world, "CGENERAL", other) == []


def test_a_fresh_install_tells_the_first_user_how_to_become_admin(tmp_path):
    hint = "access:\\n  admins: [USTRANGER]"
    with serving(tmp_path, chat_config=NO_ACCESS) as (world, base):
        for n, question in enumerate(("revenue", "pipeline", "aide"), start=1):
            body = command_body(world.fake, question, STRANGER).encode()
            assert post(base + EVENTS_PATH, body, sign(body))[0] == 200
            wait_for(lambda n=n: len(world.fake.responses) == n)
    first, second, help = (json.dumps(r, ensure_ascii=False) for r in world.fake.responses)
    assert hint in first
    # Once told, answers come without it; help still says it.
    assert hint not in second and "Pipeline" in second
    assert hint in help


def test_the_demo_config_says_how_to_become_admin(tmp_path):
    write_demo_config(tmp_path / "kpibot.yaml", today=TODAY)
    text = (tmp_path / "kpibot.yaml").read_text(encoding="utf-8")
    assert "# access:\n#   admins: [U0123ABCD]" in text
    assert "rep_figures: private" in text
