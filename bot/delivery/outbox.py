"""The outbox: every outgoing message is written (``pending``) under its idempotency key before
it is sent and marked ``sent`` with Slack's ts after, so that nothing is lost and nothing is
sent twice, through retries, crashes and several processes.

``OutboxNotifier`` wraps the registered surfaces (``bot.delivery.surfaces``) and is a
``Notifier`` itself, so the digest and alert code does not know it is there. It stores each
message as rendered (surface, address, text and payload) so that whoever sends it later sends
exactly that. When a message is found ``pending`` with nobody working on it (a crash between
send and mark, or an ambiguous failure such as a dropped connection), the notifier asks the
message's surface whether it already landed (``find``, by the key carried in the Slack message
metadata; a thread reply is looked for in its thread) before sending it again.

The bytes a message carries (``Message.file``: the digest's chart) are written once, in the
transaction that reserves the message, to ``message_files`` under the same key, and read back
by whoever sends it; the retention deletes them with the entry (``bot.store.retention``).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.orm import Session

from bot.delivery.errors import (
    DeliveryInProgress,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from bot.delivery.failures import ADMIN_PREFIX, FailureLog, failure_notice
from bot.delivery.notifier import Delivered, Message, parse_destination
from bot.delivery.retry import CALL_ERRORS, Backoff, CallFailure, FailureKind, classify
from bot.delivery.surfaces import Surfaces
from bot.settings import DeliveryPolicy
from bot.store.delivery_models import FAILED, PENDING, SENT, MessageFile, OutboxEntry
from bot.store.insert_once import insert_once

log = logging.getLogger(__name__)

SEND = "send"
REPLY = "reply"


@runtime_checkable
class MessageFinder(Protocol):
    """A surface's notifier that can look a message up by its idempotency key (Slack:
    metadata). ``channel`` is the address on that surface."""

    def find(
        self,
        channel: str,
        idempotency_key: str,
        oldest: float | None,
        thread_ts: str | None = None,
    ) -> Delivered | None:
        """The message with this key posted in ``channel`` since ``oldest``, if any; with
        ``thread_ts``, the reply with this key in that thread."""


class Reservation(Enum):
    NEW = "new"  # we wrote the entry: send it
    RECOVER = "recover"  # pending and abandoned: look before sending
    SENT = "sent"
    FAILED = "failed"
    BUSY = "busy"  # a live peer is sending it


@dataclass(frozen=True)
class Reserved:
    state: Reservation
    created_at: datetime
    delivered: Delivered | None = None
    error: str | None = None


@dataclass(frozen=True)
class Drained:
    """What one pass over the pending messages nobody was working on did."""

    delivered: int = 0
    still_pending: int = 0  # retries ran out again, or a peer is sending it: next pass
    given_up: int = 0  # older than give_up_after, or refused for good (recorded, reported)

    @property
    def seen(self) -> int:
        return self.delivered + self.still_pending + self.given_up

    def summary(self) -> str:
        return (
            f"{self.seen} pending message(s): {self.delivered} delivered, "
            f"{self.still_pending} still pending, {self.given_up} given up"
        )


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_pending: datetime | None
    failed: int
    sent: int


def _payload(message: Message) -> dict[str, Any]:
    return {"text": message.text, "body": message.body, "metadata": message.metadata}


PNG = "image/png"


def message_of(entry: OutboxEntry, file: bytes | None = None) -> Message:
    """The message as it was reserved, with the ``file`` stored beside it; ``entry.channel`` is
    its destination."""
    payload = entry.payload
    surface, address = parse_destination(entry.channel)
    # Entries reserved before surfaces existed carry Slack blocks under "blocks".
    body = payload["body"] if "body" in payload else payload.get("blocks")
    shared = body.get("file") if isinstance(body, dict) else None
    if file is None and isinstance(body, dict) and isinstance(shared, dict) and "png" in shared:
        # Reserved before message_files (migration 0010): the chart's PNG inside the payload.
        file = base64.b64decode(shared["png"])
        body = {**body, "file": {k: v for k, v in shared.items() if k != "png"}}
    return Message(
        channel=address,
        text=str(payload.get("text", "")),
        idempotency_key=entry.key,
        surface=surface,
        body=body,
        metadata=dict(payload.get("metadata") or {}),
        file=file,
    )


class Outbox:
    """The ``outbox`` table. ``owner`` names this process; ``lease`` is how long an attempt
    by another owner is trusted to be alive."""

    def __init__(
        self, engine: Engine, owner: str, clock: Callable[[], datetime], lease: timedelta
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.lease = lease

    def reserve(self, kind: str, message: Message, thread_ts: str | None = None) -> Reserved:
        now = self.clock()
        entry = {
            "key": message.idempotency_key, "kind": kind, "channel": message.destination,
            "thread_ts": thread_ts, "payload": _payload(message), "status": PENDING,
            "attempts": 0, "owner": self.owner, "attempt_started_at": now, "created_at": now,
        }  # fmt: skip
        with self.engine.begin() as connection:
            if insert_once(connection, OutboxEntry.__table__, entry, ["key"]):  # type: ignore[arg-type]
                if message.file is not None:
                    file = {"key": message.idempotency_key, "media_type": PNG,
                            "content": message.file}  # fmt: skip
                    insert_once(connection, MessageFile.__table__, file, ["key"])  # type: ignore[arg-type]
                return Reserved(Reservation.NEW, now)
        return self.take_over(message.idempotency_key, now)

    def file(self, key: str) -> bytes | None:
        """The bytes stored with the message ``key``, if it carries any."""
        with self.engine.connect() as connection:
            return connection.scalar(select(MessageFile.content).where(MessageFile.key == key))

    def take_over(self, key: str, now: datetime) -> Reserved:
        for _ in range(3):  # a lost compare-and-set means a peer moved first: look again
            with self.engine.connect() as connection:
                row = connection.execute(select(OutboxEntry).where(OutboxEntry.key == key)).one()
            if row.status == SENT:
                delivered = Delivered(row.delivered_channel or row.channel, row.ts or "")
                return Reserved(Reservation.SENT, row.created_at, delivered)
            if row.status == FAILED:
                return Reserved(Reservation.FAILED, row.created_at, error=row.error)
            started = row.attempt_started_at
            alive = started is not None and _aware(started) > now - self.lease
            if row.owner not in (None, self.owner) and alive:
                return Reserved(Reservation.BUSY, row.created_at)
            with self.engine.begin() as connection:
                taken = connection.execute(
                    update(OutboxEntry)
                    .where(
                        OutboxEntry.key == key,
                        OutboxEntry.status == PENDING,
                        OutboxEntry.attempts == row.attempts,
                        OutboxEntry.owner.is_not_distinct_from(row.owner),
                    )
                    .values(owner=self.owner, attempt_started_at=now, attempts=row.attempts + 1)
                )
                if taken.rowcount == 1:
                    return Reserved(Reservation.RECOVER, _aware(row.created_at))
        return Reserved(Reservation.BUSY, now)

    def attempt(self, key: str) -> None:
        """Another attempt starts now (renews this owner's lease on the entry)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(OutboxEntry)
                .where(OutboxEntry.key == key, OutboxEntry.owner == self.owner)
                .values(attempt_started_at=self.clock(), attempts=OutboxEntry.attempts + 1)
            )

    def mark_sent(self, key: str, delivered: Delivered) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(OutboxEntry)
                .where(OutboxEntry.key == key)
                .values(
                    status=SENT,
                    sent_at=self.clock(),
                    delivered_channel=delivered.channel,
                    ts=delivered.ts,
                    owner=None,
                    attempt_started_at=None,
                    error=None,
                )
            )

    def mark_failed(self, key: str, error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(OutboxEntry)
                .where(OutboxEntry.key == key, OutboxEntry.status == PENDING)
                .values(status=FAILED, error=error[:200], owner=None, attempt_started_at=None)
            )

    def release(self, key: str, error: str) -> None:
        """Retries ran out for now: leave the entry pending for the next drain."""
        with self.engine.begin() as connection:
            connection.execute(
                update(OutboxEntry)
                .where(OutboxEntry.key == key, OutboxEntry.owner == self.owner)
                .values(owner=None, attempt_started_at=None, error=error[:200])
            )

    def abandoned(self) -> list[OutboxEntry]:
        """Pending entries nobody is working on, oldest first."""
        stale = self.clock() - self.lease
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.scalars(
                select(OutboxEntry)
                .where(
                    OutboxEntry.status == PENDING,
                    or_(OutboxEntry.owner.is_(None), OutboxEntry.attempt_started_at < stale),
                )
                .order_by(OutboxEntry.created_at)
            ).all()
            session.expunge_all()
            return list(rows)

    def backlog(self) -> Backlog:
        with self.engine.connect() as connection:
            counts = dict(
                connection.execute(
                    select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
                ).all()
            )
            oldest = connection.scalar(
                select(func.min(OutboxEntry.created_at)).where(OutboxEntry.status == PENDING)
            )
        return Backlog(
            pending=int(counts.get(PENDING, 0)),
            oldest_pending=_aware(oldest) if oldest else None,
            failed=int(counts.get(FAILED, 0)),
            sent=int(counts.get(SENT, 0)),
        )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class OutboxNotifier:
    """A ``Notifier`` that sends through the outbox to each message's surface, with retries,
    and records failures.

    ``admin_channel`` (a destination) receives one notice per permanent-failure episode."""

    surfaces: Surfaces
    outbox: Outbox
    policy: DeliveryPolicy
    failures: FailureLog
    admin_channel: str | None = None
    sleep: Callable[[float], None] = time.sleep
    backoff: Backoff = field(init=False)

    def __post_init__(self) -> None:
        self.backoff = Backoff.of(self.policy)

    # -- Notifier ------------------------------------------------------------------------
    def send(self, message: Message) -> Delivered:
        return self._deliver(SEND, message, None)

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        return self._deliver(REPLY, message, delivered)

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        """Edits are idempotent, so they are retried without the outbox's bookkeeping."""
        for attempt in range(self.policy.max_retries + 1):
            try:
                return self.surfaces.update(delivered, message)
            except CALL_ERRORS as error:
                failure = classify(error)
                if failure.kind is FailureKind.PERMANENT:
                    self._permanent(message, failure, record_entry=False)
                if attempt == self.policy.max_retries:
                    raise TransientDeliveryError(
                        message.idempotency_key, message.destination, failure.code
                    ) from error
                self.sleep(self._wait(failure, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the outbox drain ----------------------------------------------------------------
    def drain(self) -> Drained:
        """Send the pending messages nobody is working on (a crashed process's, or those whose
        retries ran out); give up on those older than ``give_up_after``."""
        delivered = still_pending = given_up = 0
        now = self.outbox.clock()
        for entry in self.outbox.abandoned():
            message = message_of(entry, self.outbox.file(entry.key))
            if _aware(entry.created_at) < now - self.policy.give_up_after:
                self.outbox.mark_failed(entry.key, "expired")
                log.error("gave up on %s to %s: unsent since %s", entry.key, entry.channel,
                          entry.created_at)  # fmt: skip
                given_up += 1
                continue
            parent = Delivered(message.destination, entry.thread_ts) if entry.thread_ts else None
            try:
                self._deliver(entry.kind, message, parent)
            except PermanentDeliveryError as error:
                log.warning("outbox drain: %s", error)
                given_up += 1
                continue
            except (TransientDeliveryError, DeliveryInProgress) as error:
                log.warning("outbox drain: %s", error)
                still_pending += 1
                continue
            delivered += 1
        return Drained(delivered, still_pending, given_up)

    # -- internals -----------------------------------------------------------------------
    def _deliver(self, kind: str, message: Message, parent: Delivered | None) -> Delivered:
        key = message.idempotency_key
        thread_ts = parent.ts if parent else None
        reserved = self.outbox.reserve(kind, message, thread_ts)
        waited = 0.0
        while reserved.state is Reservation.BUSY:
            # A peer is sending it right now; wait for its outcome (or for its lease to end).
            if waited > 2 * self.outbox.lease.total_seconds():
                raise DeliveryInProgress(key, message.destination, "in_progress")
            step = min(0.2, self.outbox.lease.total_seconds() / 10)
            self.sleep(step)
            waited += step
            reserved = self.outbox.take_over(key, self.outbox.clock())
        if reserved.state is Reservation.SENT:
            assert reserved.delivered is not None
            return reserved.delivered
        if reserved.state is Reservation.FAILED:
            raise PermanentDeliveryError(key, message.destination, reserved.error or "failed")

        notifier = self.surfaces.notifier(message)
        look_first = reserved.state is Reservation.RECOVER
        oldest = reserved.created_at.timestamp() - 60  # clocks of peers may disagree a little
        failure: CallFailure | None = None
        for attempt in range(self.policy.max_retries + 1):
            if attempt:
                assert failure is not None
                self.sleep(self._wait(failure, attempt - 1))
                self.outbox.attempt(key)
            try:
                if look_first and isinstance(notifier, MessageFinder):
                    # A reply is looked for in its thread (where it was posted: the parent's
                    # channel), as thread replies are not in the channel's history.
                    if kind == REPLY:
                        assert parent is not None
                        _, where = parse_destination(parent.channel)
                        found = notifier.find(where, key, oldest, parent.ts)
                    else:
                        found = notifier.find(message.channel, key, oldest)
                    if found is not None:
                        log.info("%s was already delivered (found in %s)", key, found.channel)
                        return self._sent(message, found)
                if kind == REPLY:
                    assert parent is not None
                    delivered = notifier.reply(parent, message)
                else:
                    delivered = notifier.send(message)
            except CALL_ERRORS as error:
                failure = classify(error)
                if failure.kind is FailureKind.PERMANENT:
                    self._permanent(message, failure, record_entry=True)
                # Only an ambiguous failure can have posted the message.
                look_first = look_first or failure.kind is FailureKind.AMBIGUOUS
                log.warning("%s to %s: %s (attempt %d)", key, message.destination, failure.code,
                            attempt + 1)  # fmt: skip
                continue
            return self._sent(message, delivered)
        assert failure is not None
        self.outbox.release(key, failure.code)
        raise TransientDeliveryError(key, message.destination, failure.code)

    def _sent(self, message: Message, delivered: Delivered) -> Delivered:
        self.outbox.mark_sent(message.idempotency_key, delivered)
        self.failures.resolve(message.destination)
        return delivered

    def _wait(self, failure: CallFailure, attempt: int) -> float:
        if failure.kind is FailureKind.RATE_LIMITED and failure.retry_after is not None:
            # Slack's Retry-After is a floor; a little jitter spreads the peers that waited too.
            return failure.retry_after + self.backoff.calculate_sleep_duration(0)
        return self.backoff.calculate_sleep_duration(attempt)

    def _permanent(self, message: Message, failure: CallFailure, *, record_entry: bool) -> None:
        key = message.idempotency_key
        if record_entry:
            self.outbox.mark_failed(key, failure.code)
        open_failure = self.failures.record(message.destination, failure.code, key)
        log.error("cannot deliver %s to %s: %s", key, message.destination, failure.code)
        if (
            self.admin_channel
            and not key.startswith(ADMIN_PREFIX)
            and message.destination != self.admin_channel
            and not open_failure.reported
        ):
            notice = failure_notice(open_failure, self.admin_channel)
            try:
                self.send(self.surfaces.render(notice))
            except (PermanentDeliveryError, TransientDeliveryError, DeliveryInProgress) as error:
                log.error("could not tell the admin channel: %s", error)
            else:
                self.failures.mark_reported(open_failure)
        raise PermanentDeliveryError(key, message.destination, failure.code)
