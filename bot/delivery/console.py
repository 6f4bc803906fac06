"""The console ``Notifier``: prints the plain-text version of each message (``console:``
destinations, and every destination when no Slack token is set), for ``kpibot demo`` and for
trying schedules without a Slack workspace."""

from __future__ import annotations

import itertools
import sys
from typing import TextIO

from bot.delivery.notifier import Delivered, Message


class ConsoleNotifier:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._ts = itertools.count(1)

    def _print(self, heading: str, message: Message) -> Delivered:
        delivered = Delivered(message.destination, f"console.{next(self._ts)}")
        print(f"── {heading} {message.destination} ({message.idempotency_key})", file=self.out)
        print(message.text, file=self.out)
        return delivered

    def send(self, message: Message) -> Delivered:
        return self._print("to", message)

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        self._print(f"edit of {delivered.ts} in", message)
        return delivered

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        return self._print(f"reply to {delivered.ts} in", message)
