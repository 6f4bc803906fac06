"""What the listeners need from the rest of kpibot, as protocols: the desk that answers (built
in ``bot.desk``) and a clock. Replies are already rendered Block Kit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Clock = Callable[[], datetime]
Blocks = list[dict[str, Any]]


@dataclass(frozen=True)
class Reply:
    text: str  # the plain-text fallback, mrkdwn-escaped
    blocks: Blocks
    refused: bool = False  # a refusal: for the asker's eyes only, never shared in a channel


@dataclass(frozen=True)
class MessageRef:
    """The message a button was clicked on."""

    channel: str
    ts: str


@dataclass(frozen=True)
class MessageUpdate:
    """An alert message re-rendered after a button: replaces the one at (channel, ts)."""

    channel: str
    ts: str
    text: str
    blocks: Blocks


class KpiDesk(Protocol):
    """One method per ``/kpi`` sub-command. ``into`` (a channel id) answers for that channel:
    no share button, a "shared by" line, and only what both ``user_id`` and the channel may
    see."""

    def help(self, user_id: str, now: datetime, *, problem: str | None = None) -> Reply: ...

    def ask(
        self, user_id: str, question: str, now: datetime, *, into: str | None = None
    ) -> Reply: ...

    def team(self, user_id: str, name: str, now: datetime, *, into: str | None = None) -> Reply: ...

    def rep(self, user_id: str, who: str, now: datetime, *, into: str | None = None) -> Reply: ...

    def leaderboard(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply: ...

    def targets(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply: ...

    def alerts(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply: ...

    def snooze(self, user_id: str, args: str, now: datetime) -> Reply: ...

    def subscribe(self, user_id: str, args: str, now: datetime) -> Reply: ...

    def unsubscribe(self, user_id: str, args: str, now: datetime) -> Reply: ...

    def set_target(self, user_id: str, args: str, now: datetime) -> Reply:
        """``target revenue team Lyon 2026-Q4 800k`` (or ``off``); admins only."""
        ...

    def sync(self, user_id: str, now: datetime) -> Reply:
        """Runs the configured CRM sync now; admins only."""
        ...

    def acknowledge_alerts(
        self, user_id: str, key: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | Reply | None: ...

    def snooze_alerts(
        self, user_id: str, value: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | Reply | None: ...

    def home(self, user_id: str, now: datetime) -> dict[str, Any]: ...

    def apology(self, now: datetime) -> Reply: ...
