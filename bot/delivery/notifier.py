"""The surface end of delivery: a ``Message`` already rendered for one chat surface, and the
``Notifier`` that posts it there (Slack, the console; Teams next). Producers never build a
``Message``: they hand a view to ``bot.delivery.surfaces.Dispatcher``, which renders it for the
destination's surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

SLACK = "slack"
TEAMS = "teams"  # the Teams bot (bot.teams.notifier)
# The surfaces a destination may name; a process serves those it is set up for.
SURFACES = frozenset({SLACK, TEAMS, "webhook", "console"})


@dataclass(frozen=True)
class Message:
    """A message rendered for ``surface``: what the outbox stores and a notifier sends."""

    channel: str  # the address on the surface: a Slack channel or user id, a Teams name…
    text: str  # plain-text fallback (notifications, screen readers, the console)
    idempotency_key: str  # e.g. digest:<subscription>:<date>, alert:<identity>:<status>
    surface: str = SLACK
    body: Any = None  # the surface's JSON payload (Slack blocks, a Teams card); None: text only
    metadata: dict[str, Any] = field(default_factory=dict)  # extra metadata payload
    # The bytes the message carries (a chart's PNG): the outbox keeps them apart from the
    # payload (``message_files``), and each surface sends them its own way.
    file: bytes | None = field(default=None, repr=False)

    @property
    def destination(self) -> str:
        """Where it goes, as routes name it: a bare id on Slack, ``<surface>:<address>`` else."""
        return destination_of(self.surface, self.channel)


def destination_of(surface: str, address: str) -> str:
    return address if surface == SLACK else f"{surface}:{address}"


def parse_destination(destination: str) -> tuple[str, str]:
    """``slack:C1``, ``teams:sales``, ``webhook:leadership`` → (surface, address); a bare id
    (``C1``, ``U1``) is Slack's, as routes were written before there was another surface."""
    surface, colon, address = destination.partition(":")
    if not colon:
        return SLACK, destination
    return surface, address


@dataclass(frozen=True)
class Delivered:
    """Where a message landed: enough to edit it or reply in its thread later. ``channel`` is
    a destination (``teams:sales``; a bare id on Slack), so an edit finds its surface."""

    channel: str
    ts: str


class Notifier(Protocol):
    def send(self, message: Message) -> Delivered: ...

    def update(self, delivered: Delivered, message: Message) -> Delivered: ...

    def reply(self, delivered: Delivered, message: Message) -> Delivered: ...
