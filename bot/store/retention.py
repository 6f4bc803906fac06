"""Forgetting what no run needs any more: sent and failed messages of the outbox (with the
files they carried), the alert notification log with the alert messages it points to, and job
claims, once older than ``delivery.retention``. The evaluation job prunes before it reads the
log, so that an evaluation reads the recent history, not all of it.

Nothing still in play is deleted: pending messages wait for the drain (and ``give_up_after``),
and the settings make the retention at least as long as the repeat interval, the give-up
delay and the grace time, so that a pruned row can never be needed to decide a
notification, a retry or a re-run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, exists, select

from bot.store.chat_models import AlertMessage, AlertStateRow, NotificationLogEntry, to_db
from bot.store.delivery_models import FAILED, SENT, JobClaim, MessageFile, OutboxEntry


@dataclass(frozen=True)
class Pruned:
    outbox: int
    alert_states: int
    notifications: int
    alert_messages: int
    claims: int

    @property
    def total(self) -> int:
        return (
            self.outbox + self.alert_states + self.notifications + self.alert_messages + self.claims
        )


def prune(engine: Engine, before: datetime) -> Pruned:
    """Delete what was last touched before ``before``; returns how many rows of each kind."""
    cutoff = to_db(before)
    done = (OutboxEntry.status.in_((SENT, FAILED)), OutboxEntry.created_at < cutoff)
    with engine.begin() as connection:
        # A message's file goes with it, in the same transaction (counted with the message).
        connection.execute(
            delete(MessageFile).where(MessageFile.key.in_(select(OutboxEntry.key).where(*done)))
        )
        outbox = connection.execute(delete(OutboxEntry).where(*done)).rowcount
        alert_states = connection.execute(
            delete(AlertStateRow).where(AlertStateRow.evaluated_on < before.date())
        ).rowcount
        # An alert still evaluated keeps its entry however long ago it was notified: without
        # it, the next notification would announce a long-known alert as new.
        still_evaluated = exists(
            select(AlertStateRow.alert_key).where(
                AlertStateRow.alert_key == NotificationLogEntry.alert_key
            )
        )
        notifications = connection.execute(
            delete(NotificationLogEntry).where(
                NotificationLogEntry.last_notified_at < cutoff,
                (NotificationLogEntry.status == "resolved") | ~still_evaluated,
            )
        ).rowcount
        # A message still referenced by the log may yet be edited when its alert resolves.
        referenced = exists(
            select(NotificationLogEntry.id).where(
                NotificationLogEntry.message_id == AlertMessage.id
            )
        )
        alert_messages = connection.execute(
            delete(AlertMessage).where(AlertMessage.sent_at < cutoff, ~referenced)
        ).rowcount
        # Finished or not: a claim this old is far past its grace time and never runs again.
        claims = connection.execute(delete(JobClaim).where(JobClaim.fire_time < cutoff)).rowcount
    return Pruned(outbox, alert_states, notifications, alert_messages, claims)
