"""What ``OutboxNotifier`` raises when a message could not be delivered. Callers that send
several messages (the alert pipeline, a digest fan-out) catch ``DeliveryError`` per message so
that one bad channel never stops the others; the outbox has already recorded the failure."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message was not delivered (and is recorded as such in the outbox)."""

    def __init__(self, key: str, channel: str, code: str) -> None:
        self.key = key
        self.channel = channel
        self.code = code
        super().__init__(f"{key} to {channel}: {code}")


class PermanentDeliveryError(DeliveryError):
    """Slack refuses the message for good (``channel_not_found``, ``not_in_channel``…)."""


class TransientDeliveryError(DeliveryError):
    """Retries ran out (Slack down, rate limited for too long); the message stays pending and
    the clock's outbox drain tries it again later."""


class DeliveryInProgress(DeliveryError):
    """Another live process is sending this very message right now."""
