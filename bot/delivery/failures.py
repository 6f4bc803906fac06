"""Permanent delivery failures: recorded per (channel, error), reported once per episode to the
admin channel, resolved by the next successful delivery to that channel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from bot.delivery.surfaces import Notification
from bot.store.delivery_models import DeliveryFailure
from bot.store.insert_once import insert_once
from conversation.views import Notice

# Admin notices are never themselves reported when they fail (the admin channel may be the
# broken one): their keys start with this prefix.
ADMIN_PREFIX = "admin:"


@dataclass(frozen=True)
class OpenFailure:
    channel: str
    error: str
    episode: int
    first_key: str
    first_at: datetime
    last_at: datetime
    count: int
    reported: bool


class FailureLog:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def record(self, channel: str, error: str, key: str) -> OpenFailure:
        """Count one more refusal; opens a new episode if the last one was resolved."""
        now = self._clock()
        table = DeliveryFailure.__table__
        with self._engine.begin() as connection:
            fresh = {
                "channel": channel, "error": error, "episode": 1, "first_key": key,
                "first_at": now, "last_at": now, "count": 1,
            }  # fmt: skip
            if not insert_once(connection, table, fresh, ["channel", "error"]):  # type: ignore[arg-type]
                row = connection.execute(
                    select(DeliveryFailure.resolved_at, DeliveryFailure.episode)
                    .where(DeliveryFailure.channel == channel, DeliveryFailure.error == error)
                    .with_for_update()
                ).one()
                if row.resolved_at is not None:
                    changes = {
                        "episode": row.episode + 1, "first_key": key, "first_at": now,
                        "last_at": now, "count": 1, "reported_at": None, "resolved_at": None,
                    }  # fmt: skip
                else:
                    changes = {"last_at": now, "count": DeliveryFailure.count + 1}
                connection.execute(
                    update(DeliveryFailure)
                    .where(DeliveryFailure.channel == channel, DeliveryFailure.error == error)
                    .values(**changes)
                )
        found = [f for f in self.open_failures() if f.channel == channel and f.error == error]
        return found[0]

    def mark_reported(self, failure: OpenFailure) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(DeliveryFailure)
                .where(
                    DeliveryFailure.channel == failure.channel,
                    DeliveryFailure.error == failure.error,
                    DeliveryFailure.episode == failure.episode,
                )
                .values(reported_at=self._clock())
            )

    def resolve(self, channel: str) -> None:
        """A message reached ``channel``: whatever was wrong with it is fixed."""
        with self._engine.begin() as connection:
            connection.execute(
                update(DeliveryFailure)
                .where(DeliveryFailure.channel == channel, DeliveryFailure.resolved_at.is_(None))
                .values(resolved_at=self._clock())
            )

    def open_failures(self) -> list[OpenFailure]:
        with Session(self._engine) as session:
            rows = session.scalars(
                select(DeliveryFailure)
                .where(DeliveryFailure.resolved_at.is_(None))
                .order_by(DeliveryFailure.first_at)
            ).all()
        return [
            OpenFailure(
                channel=r.channel,
                error=r.error,
                episode=r.episode,
                first_key=r.first_key,
                first_at=r.first_at,
                last_at=r.last_at,
                count=r.count,
                reported=r.reported_at is not None,
            )
            for r in rows
        ]


def failure_notice(failure: OpenFailure, admin_channel: str) -> Notification:
    """The one admin message of a failure episode (its key makes it once, across processes);
    the surface words it in the organisation's language, with advice for the error."""
    notice = Notice(
        "notice.delivery_failure",
        {"channel": failure.channel, "error": failure.error, "message": failure.first_key},
    )
    key = f"{ADMIN_PREFIX}delivery-failure:{failure.channel}:{failure.error}:{failure.episode}"
    return Notification(admin_channel, notice, key, {"kind": "delivery_failure"})
