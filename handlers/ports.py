"""What the listeners need from the rest of kpibot, as protocols: the conversation core
(``bot.core``), the Slack renderer of its views (``bot.slack_render``), the alert buttons and a
clock. Requests and views are ``conversation``'s; Slack messages are rendered Block Kit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from conversation.grammar import Request
from conversation.views import Reply

Clock = Callable[[], datetime]
Blocks = list[dict[str, Any]]


@dataclass(frozen=True)
class SlackMessage:
    text: str  # the plain-text fallback, mrkdwn-escaped
    blocks: Blocks
    refused: bool = False  # for the asker's eyes only: never shared, never in a channel


@dataclass(frozen=True)
class MessageRef:
    """A message in a channel: the one a button was clicked on."""

    channel: str
    ts: str


@dataclass(frozen=True)
class MessageUpdate:
    """An alert message re-rendered after a button: replaces the one at (channel, ts)."""

    channel: str
    ts: str
    text: str
    blocks: Blocks


class Core(Protocol):
    """The surface-neutral conversation core. ``into``: the channel the answer is read in."""

    def handle(
        self, user_id: str, request: Request, now: datetime, *, into: str | None = None
    ) -> Reply: ...

    def home(self, user_id: str, now: datetime) -> Reply: ...


class Render(Protocol):
    """Views as Slack messages. ``share`` adds a "Share in channel" button to data views;
    ``shared_by`` marks a shared one."""

    def render(
        self, reply: Reply, *, share: bool = False, shared_by: str | None = None
    ) -> SlackMessage: ...

    def home(self, reply: Reply) -> dict[str, Any]: ...


class AlertButtons(Protocol):
    """Acknowledge and Snooze on an alert message: the message re-rendered, a refusal for the
    clicker, or None when the message is unknown."""

    def acknowledge(
        self, user_id: str, key: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | SlackMessage | None: ...

    def snooze(
        self, user_id: str, value: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | SlackMessage | None: ...
