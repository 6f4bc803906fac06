"""The chat surface's own state: which alerts were notified where (the notification log), the
alert messages with their Acknowledge/Snooze state, silences, digest subscriptions created from
chat, and the Slack users matched to reps. Created by migration 0002; targets set from chat by
migration 0004; alert states (damping, flapping) and the notified gap by migration 0006; the
subscriptions' chart switch by migration 0010."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.models import DESTINATION, Base


class AlertMessage(Base):
    """One grouped alert message as posted: where it is, what it listed (so that it can be
    re-rendered when an alert resolves or someone acknowledges), and who acted on it."""

    __tablename__ = "alert_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    route: Mapped[str] = mapped_column(String(200))  # the configured destination (channel/rep)
    channel: Mapped[str] = mapped_column(String(DESTINATION))  # where it landed (a D… id for DMs)
    ts: Mapped[str] = mapped_column(String(40))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    alerts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    acked_by: Mapped[str | None] = mapped_column(String(40))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snoozed_by: Mapped[str | None] = mapped_column(String(40))
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationLogEntry(Base):
    """What was last notified for one alert identity on one route (Alertmanager's nflog)."""

    __tablename__ = "notification_log"
    __table_args__ = (UniqueConstraint("alert_key", "route"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_key: Mapped[str] = mapped_column(String(300), index=True)
    route: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # at_risk | missed | resolved
    first_notified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("alert_messages.id"))
    # The gap as notified, in the KPI's unit: a reminder goes out only once it has moved.
    gap: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))


class AlertStateRow(Base):
    """One alert identity's damped state between evaluations (``metrics.alerts.AlertState``):
    whether it fires, how long its raw condition has held, when its firing state changed."""

    __tablename__ = "alert_states"
    alert_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    firing: Mapped[str | None] = mapped_column(String(20))  # at_risk | missed | None
    alerting: Mapped[bool] = mapped_column(Boolean)
    streak: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changes: Mapped[list[str]] = mapped_column(JSON)  # ISO moments, most recent last
    evaluated_on: Mapped[date | None] = mapped_column(Date)


class Silence(Base):
    """A snooze: alerts matching (kpi, scope, period) are not notified until ``ends_at``.
    An empty matcher field matches anything."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(primary_key=True)
    kpi: Mapped[str | None] = mapped_column(String(40))
    scope_level: Mapped[str | None] = mapped_column(String(20))
    scope_name: Mapped[str | None] = mapped_column(String(200))
    period_key: Mapped[str | None] = mapped_column(String(20))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_by: Mapped[str] = mapped_column(String(40))
    comment: Mapped[str | None] = mapped_column(Text)


class ChatSubscription(Base):
    """A digest subscription created from chat (``/kpi subscribe #channel 08:30``)."""

    __tablename__ = "chat_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(DESTINATION))
    time: Mapped[str] = mapped_column(String(5))  # HH:MM local
    timezone: Mapped[str] = mapped_column(String(64))
    days: Mapped[str] = mapped_column(String(20))  # weekday numbers, Mon=0: "0,1,2,3,4"
    scope_level: Mapped[str] = mapped_column(String(20))
    scope_name: Mapped[str] = mapped_column(String(200))
    kpis: Mapped[str] = mapped_column(String(400))  # comma-separated KPI ids; empty = default
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(default=True)
    # Whether the digest's chart follows it (migration 0010; rows before it: yes).
    chart: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The grain of the period whose pipeline waterfall the digest carries, or none (0011).
    waterfall: Mapped[str | None] = mapped_column(String(10))


class ChatUser(Base):
    """A Slack user matched to an email (``users.info``/``users.lookupByEmail``), cached so that
    a question does not call Slack every time."""

    __tablename__ = "chat_users"
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    looked_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChatTarget(Base):
    """A target set (or removed) from chat by an admin (``/kpi target revenue team Lyon
    2026-Q4 800k``). Rows are never updated: each change is a new row, so the table is the
    history of who set what and when, and its largest id tells every process (web, clock) that
    the targets changed. The latest row for a (kpi, scope, grain, period) wins; a row without a
    value removes that target, the config's included."""

    __tablename__ = "chat_targets"
    id: Mapped[int] = mapped_column(primary_key=True)
    kpi: Mapped[str] = mapped_column(String(40))
    grain: Mapped[str] = mapped_column(String(10))
    scope_level: Mapped[str] = mapped_column(String(20))
    scope_name: Mapped[str] = mapped_column(String(200))  # "" for the company
    period_key: Mapped[str] = mapped_column(String(20))
    value: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))  # None: removed
    set_by: Mapped[str] = mapped_column(String(40))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def to_db(moment: datetime) -> datetime:
    """Times are stored in UTC: SQLite keeps no offset, so a local time would read back wrong."""
    return moment.astimezone(UTC)


def from_db(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
