"""Surfaces: where a view becomes a chat message. Producers (alerts, digests, admin notices)
hand the ``Dispatcher`` a ``Notification`` — a destination and a surface-neutral view — and
never know which chat platform receives it.

A destination names its surface with a prefix: ``slack:C0123`` (a bare id such as ``C0123`` or
``U0123`` still means Slack), ``teams:<name of a stored Teams conversation reference>``,
``webhook:<name of a configured Teams Workflows webhook>``, ``console:<anything>``. Each
surface is registered under its prefix as a ``Surface``:

- a ``Renderer``: ``render(view) -> Rendered(text, body)``, the view
  (``conversation.views.Outbound``: ``AlertGroup``, ``AlertsResolved``, ``Digest``,
  ``Notice``, ``Chart``) as the surface's JSON payload (Slack blocks, a Teams Adaptive Card)
  plus a plain-text fallback, in the organisation's words (the renderer holds its
  ``Formatter``), and the picture it carries (``file``); a surface that takes no picture
  raises ``PictureLeftOut`` for a ``Chart``;
- a ``Notifier`` (``bot.delivery.notifier``): ``send``, ``update`` and ``reply`` of a rendered
  ``Message`` (``surface``, ``channel`` = the address without its prefix, ``text``, ``body``),
  returning ``Delivered(channel=<destination>, ts=<the surface's message id>)``. A notifier
  that can look a message up by its idempotency key also implements
  ``bot.delivery.outbox.MessageFinder`` (``find``): the outbox then checks, after a crash,
  whether the message landed before sending it again. A failed call raises
  ``bot.delivery.retry.SurfaceCallError`` carrying its ``CallFailure`` (rate limited with its
  Retry-After, ambiguous — it may have landed —, or permanent with the error code that the
  admin notice shows); dropped connections may stay ``OSError``.

The outbox (``bot.delivery.outbox``) stores the rendered message — surface, address, text and
payload — before sending, so a take-over after a crash re-sends exactly what was reserved,
whatever has changed in the templates since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.delivery.errors import PermanentDeliveryError
from bot.delivery.notifier import Delivered, Message, Notifier, parse_destination
from conversation.views import Outbound


@dataclass(frozen=True)
class Notification:
    """What a producer sends: a view for a destination, under its idempotency key."""

    destination: str  # "C0123", "slack:C0123", "teams:sales", "webhook:leadership"…
    view: Outbound
    idempotency_key: str
    metadata: dict[str, Any] = field(
        default_factory=dict
    )  # kept with the message (Slack: metadata)


@dataclass(frozen=True)
class Rendered:
    text: str  # plain-text fallback, in the surface's light markup
    body: Any = None  # the surface's JSON payload; None for text only
    file: bytes | None = field(default=None, repr=False)  # the picture it carries, if any


class PictureLeftOut(Exception):
    """A renderer's answer to a ``Chart`` its surface does not take (the console) or cannot
    carry (over a Workflows webhook's payload limit): nothing is sent, ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Renderer(Protocol):
    def render(self, view: Outbound) -> Rendered: ...


@dataclass(frozen=True)
class Surface:
    renderer: Renderer
    notifier: Notifier


class Surfaces:
    """The registry of surfaces by prefix. It is a ``Notifier`` itself, handing each rendered
    message to its surface's notifier (the outbox wraps it)."""

    def __init__(self, surfaces: Mapping[str, Surface]) -> None:
        self._surfaces = dict(surfaces)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._surfaces)

    def surface(self, name: str, key: str = "", destination: str = "") -> Surface:
        try:
            return self._surfaces[name]
        except KeyError:
            # A route naming a surface this process was not set up for: refused for good.
            raise PermanentDeliveryError(key, destination or name, "unknown_surface") from None

    def render(self, notification: Notification) -> Message:
        name, address = parse_destination(notification.destination)
        key = notification.idempotency_key
        rendered = self.surface(name, key, notification.destination).renderer.render(
            notification.view
        )
        return Message(
            channel=address,
            text=rendered.text,
            idempotency_key=key,
            surface=name,
            body=rendered.body,
            metadata=notification.metadata,
            file=rendered.file,
        )

    def notifier(self, message: Message) -> Notifier:
        return self.surface(message.surface, message.idempotency_key, message.destination).notifier

    def send(self, message: Message) -> Delivered:
        return self.notifier(message).send(message)

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        return self.notifier(message).update(delivered, message)

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        return self.notifier(message).reply(delivered, message)


@dataclass(frozen=True)
class Dispatcher:
    """What producers send through: renders each notification for its destination's surface
    and hands it to ``notifier`` — the outbox in a running bot, the surfaces themselves where
    exactly-once does not matter (tests, ``kpibot demo``)."""

    surfaces: Surfaces
    notifier: Notifier

    def send(self, notification: Notification) -> Delivered:
        return self.notifier.send(self.surfaces.render(notification))

    def update(self, delivered: Delivered, notification: Notification) -> Delivered:
        return self.notifier.update(delivered, self.surfaces.render(notification))

    def reply(self, delivered: Delivered, notification: Notification) -> Delivered:
        return self.notifier.reply(delivered, self.surfaces.render(notification))
