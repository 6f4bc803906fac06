"""Listeners called directly, as Bolt would, with Mock(Ack) and Mock(Respond) and a recording
desk: ack() comes first, the right desk method is asked, the reply goes back ephemeral."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import Mock

import pytest
from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from handlers.actions import ack_action, share_action, snooze_action
from handlers.commands import kpi_command
from handlers.home import app_home_opened
from handlers.kpi_text import Kind, mentioned_user, parse_command
from handlers.ports import MessageRef, MessageUpdate, Reply

NOW = datetime(2026, 11, 26, 9, tzinfo=UTC)
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]


class RecordingDesk:
    def __init__(self, *, refuse: bool = False) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.refuse = refuse

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name in ("acknowledge_alerts", "snooze_alerts"):
                return MessageUpdate("C1", "1.0", "t", BLOCKS)
            if name == "home":
                return {"type": "home", "blocks": BLOCKS}
            return Reply(name, BLOCKS, refused=self.refuse)

        return method


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("", Kind.HELP, ""),
        ("aide", Kind.HELP, ""),
        ("conversion", Kind.ASK, "conversion"),
        ("revenue team EMEA last quarter", Kind.ASK, "revenue team EMEA last quarter"),
        ("team Lyon", Kind.TEAM, "Lyon"),
        ("équipe  Lyon", Kind.TEAM, "Lyon"),
        ("rep <@U123|alice>", Kind.REP, "<@U123|alice>"),
        ("classement", Kind.LEADERBOARD, ""),
        ("objectifs", Kind.TARGETS, ""),
        ("alertes", Kind.ALERTS, ""),
        ("snooze revenue 2d", Kind.SNOOZE, "revenue 2d"),
        ("subscribe <#C1|sales> 08:30", Kind.SUBSCRIBE, "<#C1|sales> 08:30"),
        ("ca ce trimestre", Kind.ASK, "ca ce trimestre"),
    ],
)
def test_parse_command(text, kind, argument):
    assert parse_command(text) == parse_command(text)  # pure
    command = parse_command(text)
    assert (command.kind, command.argument) == (kind, argument)


def test_mentioned_user():
    assert mentioned_user("<@U123ABC|alice>") == "U123ABC"
    assert mentioned_user("<@W99>") == "W99"
    assert mentioned_user("alice") is None


def test_kpi_command_acks_first_then_responds_ephemeral():
    ack, respond, desk = Mock(Ack), Mock(Respond), RecordingDesk()
    order: list[str] = []
    ack.side_effect = lambda *a, **k: order.append("ack")
    respond.side_effect = lambda *a, **k: order.append("respond")
    kpi_command(ack, {"user_id": "U1", "text": "conversion"}, respond, desk=desk, clock=lambda: NOW)
    assert order == ["ack", "respond"]
    assert desk.calls == [("ask", ("U1", "conversion", NOW), {"into": None})]
    # Mock(Respond) matches calls against Respond's constructor, so compare the kwargs.
    assert respond.call_count == 1
    assert respond.call_args.kwargs == {
        "text": "ask",
        "blocks": BLOCKS,
        "response_type": "ephemeral",
    }


def test_kpi_command_without_text_gives_help():
    ack, respond, desk = Mock(Ack), Mock(Respond), RecordingDesk()
    kpi_command(ack, {"user_id": "U1", "text": ""}, respond, desk=desk, clock=lambda: NOW)
    assert desk.calls[0][0] == "help"
    ack.assert_called_once_with()


def button(value: str, *, selected: bool = False) -> dict[str, Any]:
    action = {"selected_option": {"value": value}} if selected else {"value": value}
    return {
        "user": {"id": "U9"},
        "channel": {"id": "C1"},
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1.0"},
        "actions": [action],
    }


def test_share_recomputes_for_the_sharer_and_posts_in_channel():
    ack, respond, desk = Mock(Ack), Mock(Respond), RecordingDesk()
    share_action(ack, button("team Lyon"), respond, desk=desk, clock=lambda: NOW)
    ack.assert_called_once_with()
    assert desk.calls == [("team", ("U9", "Lyon", NOW), {"into": "C1"})]
    assert respond.call_count == 1
    assert respond.call_args.kwargs == {
        "text": "team",
        "blocks": BLOCKS,
        "response_type": "in_channel",
    }


def test_a_refused_share_stays_with_the_sharer():
    ack, respond = Mock(Ack), Mock(Respond)
    desk = RecordingDesk(refuse=True)
    share_action(ack, button("rep Camille"), respond, desk=desk, clock=lambda: NOW)
    assert respond.call_args.kwargs["response_type"] == "ephemeral"


def test_share_refuses_to_replay_an_admin_command():
    ack, respond, desk = Mock(Ack), Mock(Respond), RecordingDesk()
    share_action(ack, button("subscribe <#C1> 08:30"), respond, desk=desk, clock=lambda: NOW)
    assert desk.calls == [] and not respond.called


def test_ack_and_snooze_buttons_replace_the_message():
    for listener, value, selected, method in (
        (ack_action, "alerts:C1:abc", False, "acknowledge_alerts"),
        (snooze_action, "alerts:C1:abc|1d", True, "snooze_alerts"),
    ):
        ack, client, desk = Mock(Ack), Mock(WebClient), RecordingDesk()
        respond = Mock(Respond)
        body = button(value, selected=selected)
        listener(ack, body, client, respond, desk=desk, clock=lambda: NOW)
        ack.assert_called_once_with()
        assert desk.calls == [(method, ("U9", value, NOW, MessageRef("C1", "1.0")), {})]
        assert not respond.called
        client.chat_update.assert_called_once_with(channel="C1", ts="1.0", text="t", blocks=BLOCKS)


def test_app_home_publishes_the_users_dashboard():
    client, desk = Mock(WebClient), RecordingDesk()
    app_home_opened({"user": "U5", "tab": "home"}, client, desk=desk, clock=lambda: NOW)
    client.views_publish.assert_called_once_with(
        user_id="U5", view={"type": "home", "blocks": BLOCKS}
    )
    client.reset_mock()
    app_home_opened({"user": "U5", "tab": "messages"}, client, desk=desk, clock=lambda: NOW)
    assert not client.views_publish.called
