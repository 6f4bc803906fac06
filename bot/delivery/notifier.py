"""One interface for every chat surface: the core hands over a ``Message`` and never knows
whether Slack, Teams or the terminal receives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    channel: str  # a channel id, or a user id for a direct message
    text: str  # plain-text fallback (notifications, screen readers, the console)
    idempotency_key: str  # e.g. digest:<subscription>:<date>, alert:<identity>:<status>
    blocks: list[dict[str, Any]] | None = None  # Slack Block Kit
    card: dict[str, Any] | None = None  # Teams Adaptive Card
    metadata: dict[str, Any] = field(default_factory=dict)  # extra metadata payload


@dataclass(frozen=True)
class Delivered:
    """Where a message landed: enough to edit it or reply in its thread later."""

    channel: str
    ts: str


class Notifier(Protocol):
    def send(self, message: Message) -> Delivered: ...

    def update(self, delivered: Delivered, message: Message) -> Delivered: ...

    def reply(self, delivered: Delivered, message: Message) -> Delivered: ...
