"""Stale CRM data: when the last successful sync is older than ``scheduling.stale_after``, KPI
alerts are held (the alert pipeline inhibits them) and sales-ops get ONE notice in the admin
channel; when a sync succeeds the notice is marked resolved and answered in its thread. The
notice and its resolution say when the data became stale and when the last successful sync
was, in the organisation's time zone and language."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from bot.delivery.errors import DeliveryError
from bot.delivery.failures import ADMIN_PREFIX
from bot.delivery.notifier import Delivered
from bot.delivery.surfaces import Dispatcher, Notification
from bot.store.delivery_models import SENT, OutboxEntry, StaleNotice
from bot.store.insert_once import insert_once
from conversation.views import Notice, Param

log = logging.getLogger(__name__)


def stale_since(
    last_success: datetime | None, now: datetime, stale_after: timedelta
) -> datetime | None:
    """When the data was last refreshed, if that is too long ago; None while fresh. Without
    any successful sync on record there is no evidence either way, and nothing is held."""
    if last_success is None or now - last_success <= stale_after:
        return None
    return last_success


def notice_key(since: datetime) -> str:
    return f"{ADMIN_PREFIX}stale:{since.astimezone(UTC).isoformat()}"


def _moments(since: datetime, stale_after: timedelta, zone: str) -> dict[str, Param]:
    """The episode's moments, which the surface words in the organisation's zone and language:
    the last successful sync (``since``) and when the data became stale (``stale_after``
    later)."""
    return {"last_sync": since, "stale_at": since + stale_after, "zone": zone}


class Staleness:
    def __init__(
        self, engine: Engine, dispatcher: Dispatcher, admin_channel: str | None, zone: str
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.admin_channel = admin_channel
        self.zone = zone  # the organisation's time zone, named in the notices

    def notice(self, since: datetime, now: datetime, stale_after: timedelta) -> None:
        """Post the stale-data notice of this episode, once (the outbox dedups by key)."""
        with self.engine.begin() as connection:
            row = {"since": since.astimezone(UTC), "noticed_at": now.astimezone(UTC)}
            insert_once(connection, StaleNotice.__table__, row, ["since"])  # type: ignore[arg-type]
        if self.admin_channel is None:
            log.warning("CRM data stale since %s; no slack.admin_channel to tell", since)
            return
        notice = Notice("stale.notice", _moments(since, stale_after, self.zone))
        try:
            self.dispatcher.send(
                Notification(self.admin_channel, notice, notice_key(since), {"kind": "stale"})
            )
        except DeliveryError as error:
            log.error("stale-data notice not delivered: %s", error)

    def resolve(self, now: datetime, stale_after: timedelta) -> int:
        """A sync succeeded: close every open episode and say so under its notice."""
        with Session(self.engine) as session:
            open_since = [
                n.since for n in session.scalars(
                    select(StaleNotice).where(StaleNotice.resolved_at.is_(None))
                )
            ]  # fmt: skip
        for since in open_since:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            delivered = self._delivered(notice_key(since))
            if delivered is not None:
                self._announce(delivered, since, now, stale_after)
            with self.engine.begin() as connection:
                connection.execute(
                    update(StaleNotice)
                    .where(StaleNotice.since == since.astimezone(UTC))
                    .values(resolved_at=now.astimezone(UTC))
                )
        return len(open_since)

    def _delivered(self, key: str) -> Delivered | None:
        with Session(self.engine) as session:
            entry = session.get(OutboxEntry, key)
            if entry is None or entry.status != SENT or entry.ts is None:
                return None
            return Delivered(entry.delivered_channel or entry.channel, entry.ts)

    def _announce(
        self,
        delivered: Delivered,
        since: datetime,
        now: datetime,
        stale_after: timedelta,
    ) -> None:
        moments = {**_moments(since, stale_after, self.zone), "synced": now}
        key = notice_key(since)
        where = delivered.channel
        try:
            resolved = Notice("stale.resolved", moments)
            self.dispatcher.update(delivered, Notification(where, resolved, key, {"kind": "stale"}))
            fresh = Notice("stale.fresh", moments)
            self.dispatcher.reply(
                delivered, Notification(where, fresh, f"{key}:resolved", {"kind": "stale"})
            )
        except DeliveryError as error:
            log.error("stale-data resolution not delivered: %s", error)
