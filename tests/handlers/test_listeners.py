"""Listeners called directly, as Bolt would, with Mock(Ack), Mock(Respond), a Mock WebClient and
a recording core: ack() first, the request parsed once, the reply rendered and sent where the
surface says (ephemeral, in the channel, in the DM, in the thread)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import Mock

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from conversation.authorization import Refusal
from conversation.grammar import Kind, Request
from conversation.views import Help, Refused, Reply
from handlers.actions.acknowledge import ack_action
from handlers.actions.share import share_action
from handlers.actions.snooze import snooze_action
from handlers.commands.kpi import kpi_command
from handlers.events.app_home_opened import app_home_opened
from handlers.events.app_mention import app_mention
from handlers.events.direct_message import direct_message, is_direct_message
from handlers.events.thread_reply import is_thread_reply, thread_reply
from handlers.ports import MessageRef, MessageUpdate, SlackMessage

NOW = datetime(2026, 11, 26, 9, tzinfo=UTC)
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
CONTEXT = {"bot_user_id": "UBOT", "bot_id": "BBOT"}


class RecordingCore:
    def __init__(self, *, refuse: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = refuse

    def handle(self, user_id: str, request: Request, now: datetime, *, into: str | None = None):
        self.calls.append((user_id, request, now, into))
        return Reply(Refused(Refusal.SCOPE) if self.refuse else Help())

    def home(self, user_id: str, now: datetime) -> Reply:
        self.calls.append((user_id, now))
        return Reply(Help())


class RecordingRender:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def render(self, reply: Reply, *, share: bool = False, shared_by: str | None = None):
        self.calls.append({"share": share, "shared_by": shared_by})
        return SlackMessage("t", BLOCKS, refused=reply.refused)

    def home(self, reply: Reply) -> dict[str, Any]:
        return {"type": "home", "blocks": BLOCKS}


def test_kpi_command_acks_first_then_responds_ephemeral_with_a_share_button():
    ack, respond, core, render = Mock(Ack), Mock(Respond), RecordingCore(), RecordingRender()
    order: list[str] = []
    ack.side_effect = lambda *a, **k: order.append("ack")
    respond.side_effect = lambda *a, **k: order.append("respond")
    command = {"user_id": "U1", "text": "conversion"}
    kpi_command(ack, command, respond, core=core, render=render, clock=lambda: NOW)
    assert order == ["ack", "respond"]
    assert core.calls == [("U1", Request(Kind.ASK, "conversion"), NOW, None)]
    assert render.calls == [{"share": True, "shared_by": None}]
    # Mock(Respond) matches calls against Respond's constructor, so compare the kwargs.
    assert respond.call_args.kwargs == {"text": "t", "blocks": BLOCKS, "response_type": "ephemeral"}


def button(value: str, *, selected: bool = False) -> dict[str, Any]:
    action = {"selected_option": {"value": value}} if selected else {"value": value}
    return {
        "user": {"id": "U9"},
        "channel": {"id": "C1"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1.0"},
        "actions": [action],
    }


def test_share_recomputes_for_the_sharer_and_the_channel():
    ack, respond, core, render = Mock(Ack), Mock(Respond), RecordingCore(), RecordingRender()
    share_action(ack, button("team Lyon"), respond, core=core, render=render, clock=lambda: NOW)
    ack.assert_called_once_with()
    assert core.calls == [("U9", Request(Kind.TEAM, "Lyon"), NOW, "C1")]
    assert render.calls == [{"share": False, "shared_by": "U9"}]
    assert respond.call_args.kwargs["response_type"] == "in_channel"


def test_a_refused_share_stays_with_the_sharer():
    ack, respond, core, render = (
        Mock(Ack),
        Mock(Respond),
        RecordingCore(refuse=True),
        RecordingRender(),
    )
    share_action(ack, button("rep Camille"), respond, core=core, render=render, clock=lambda: NOW)
    assert respond.call_args.kwargs["response_type"] == "ephemeral"
    assert render.calls == [{"share": False, "shared_by": None}]


def test_share_refuses_to_replay_an_admin_command():
    ack, respond, core, render = Mock(Ack), Mock(Respond), RecordingCore(), RecordingRender()
    body = button("subscribe <#C1> 08:30")
    share_action(ack, body, respond, core=core, render=render, clock=lambda: NOW)
    assert core.calls == [] and not respond.called


class RecordingButtons:
    def __init__(self, outcome: MessageUpdate | SlackMessage) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.outcome = outcome

    def acknowledge(self, user_id: str, key: str, now: datetime, where: MessageRef):
        self.calls.append(("acknowledge", user_id, key, now, where))
        return self.outcome

    def snooze(self, user_id: str, value: str, now: datetime, where: MessageRef):
        self.calls.append(("snooze", user_id, value, now, where))
        return self.outcome


def test_ack_and_snooze_buttons_replace_their_own_message_or_tell_the_clicker():
    update = MessageUpdate("C1", "1.0", "t", BLOCKS)
    refusal = SlackMessage("no", BLOCKS, refused=True)
    for listener, value, selected, method in (
        (ack_action, "alerts:C1:abc", False, "acknowledge"),
        (snooze_action, "alerts:C1:abc|1d", True, "snooze"),
    ):
        ack, client, respond = Mock(Ack), Mock(WebClient), Mock(Respond)
        buttons = RecordingButtons(update)
        body = button(value, selected=selected)
        listener(ack, body, client, respond, buttons=buttons, clock=lambda: NOW)
        ack.assert_called_once_with()
        assert buttons.calls == [(method, "U9", value, NOW, MessageRef("C1", "1.0"))]
        client.chat_update.assert_called_once_with(channel="C1", ts="1.0", text="t", blocks=BLOCKS)
        assert not respond.called
        client, respond = Mock(WebClient), Mock(Respond)
        listener(
            Mock(Ack), body, client, respond, buttons=RecordingButtons(refusal), clock=lambda: NOW
        )
        assert not client.chat_update.called
        assert respond.call_args.kwargs["response_type"] == "ephemeral"


def test_app_home_publishes_the_users_dashboard():
    client, core, render = Mock(WebClient), RecordingCore(), RecordingRender()
    app_home_opened(
        {"user": "U5", "tab": "home"}, client, core=core, render=render, clock=lambda: NOW
    )
    client.views_publish.assert_called_once_with(
        user_id="U5", view={"type": "home", "blocks": BLOCKS}
    )
    client.reset_mock()
    app_home_opened(
        {"user": "U5", "tab": "messages"}, client, core=core, render=render, clock=lambda: NOW
    )
    assert not client.views_publish.called


DM = {
    "type": "message",
    "channel_type": "im",
    "channel": "D1",
    "user": "U1",
    "text": "ca",
    "ts": "5.0",
}


def test_a_direct_message_is_answered_in_the_dm():
    assert is_direct_message(DM)
    assert not is_direct_message({**DM, "bot_id": "BBOT"})  # kpibot's own answer
    assert not is_direct_message({**DM, "subtype": "message_changed"})
    assert not is_direct_message({**DM, "channel_type": "channel"})
    client, core, render = Mock(WebClient), RecordingCore(), RecordingRender()
    direct_message(DM, client, core=core, render=render, clock=lambda: NOW)
    assert core.calls == [("U1", Request(Kind.ASK, "ca"), NOW, None)]
    client.chat_postMessage.assert_called_once_with(
        channel="D1", text="t", blocks=BLOCKS, thread_ts=None, unfurl_links=False
    )


MENTION = {
    "type": "app_mention",
    "channel": "C7",
    "user": "U1",
    "text": "<@UBOT> alertes",
    "ts": "7.0",
}


def test_a_mention_is_answered_in_a_thread_for_the_channel():
    client, core, render = Mock(WebClient), RecordingCore(), RecordingRender()
    app_mention(MENTION, client, core=core, render=render, clock=lambda: NOW)
    assert core.calls == [("U1", Request(Kind.ALERTS, ""), NOW, "C7")]
    client.chat_postMessage.assert_called_once_with(
        channel="C7", thread_ts="7.0", text="t", blocks=BLOCKS, unfurl_links=False
    )


def test_a_refused_mention_is_told_to_the_asker_alone():
    client, core, render = Mock(WebClient), RecordingCore(refuse=True), RecordingRender()
    app_mention(MENTION, client, core=core, render=render, clock=lambda: NOW)
    assert not client.chat_postMessage.called
    client.chat_postEphemeral.assert_called_once_with(
        channel="C7", user="U1", text="t", blocks=BLOCKS, thread_ts="7.0"
    )


FOLLOW_UP = {
    "type": "message", "channel_type": "channel", "channel": "C7", "user": "U1",
    "text": "pipeline", "ts": "8.0", "thread_ts": "7.0",
}  # fmt: skip


def test_thread_follow_ups_are_answered_only_in_threads_kpibot_answered():
    assert is_thread_reply(FOLLOW_UP, CONTEXT)
    assert not is_thread_reply({**FOLLOW_UP, "thread_ts": None}, CONTEXT)  # not in a thread
    assert not is_thread_reply({**FOLLOW_UP, "text": "<@UBOT> pipeline"}, CONTEXT)  # a mention
    assert not is_thread_reply({**FOLLOW_UP, "bot_id": "BBOT"}, CONTEXT)
    client, core, render = Mock(WebClient), RecordingCore(), RecordingRender()
    client.conversations_replies.return_value = {"messages": [{"user": "U1", "ts": "7.0"}]}
    thread_reply(FOLLOW_UP, client, CONTEXT, core=core, render=render, clock=lambda: NOW)
    assert core.calls == [] and not client.chat_postMessage.called
    client.conversations_replies.return_value = {
        "messages": [{"user": "U1", "ts": "7.0"}, {"bot_id": "BBOT", "ts": "7.5"}]
    }
    thread_reply(FOLLOW_UP, client, CONTEXT, core=core, render=render, clock=lambda: NOW)
    assert core.calls == [("U1", Request(Kind.ASK, "pipeline"), NOW, "C7")]
    client.chat_postMessage.assert_called_once_with(
        channel="C7", thread_ts="7.0", text="t", blocks=BLOCKS, unfurl_links=False
    )
