"""Digest subscriptions: the config's ``subscriptions`` section plus the ones admins create
from chat (``/kpi subscribe #channel 08:30 [with pipeline changes]``), as one list of
``Subscription`` for the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.settings import Settings, SubscriptionSpec, parse_scope
from bot.store.chat_models import ChatSubscription
from metrics.periods import Grain
from metrics.scopes import Scope

WEEKDAYS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Subscription:
    id: str  # stable: part of the digest's idempotency key
    channel: str
    time: time  # local time of day in ``timezone``
    timezone: str
    days: tuple[int, ...]  # weekday numbers, Monday = 0
    scope: Scope
    kpis: tuple[str, ...]  # empty: the standard digest KPIs
    title: str | None = None
    # The grain of the period whose pipeline waterfall (the last seven days) the digest carries.
    waterfall: Grain | None = None
    chart: bool = True  # the digest's chart follows it in its thread


def _from_spec(spec: SubscriptionSpec, default_zone: str) -> Subscription:
    hour, minute = (int(part) for part in spec.time.split(":"))
    return Subscription(
        id=spec.key,
        channel=spec.channel,
        time=time(hour, minute),
        timezone=spec.timezone or default_zone,
        days=spec.days,
        scope=spec.scope,
        kpis=spec.kpis,
        title=spec.title,
        waterfall=None if spec.waterfall is None else Grain(spec.waterfall),
        chart=spec.chart,
    )


def _from_row(row: ChatSubscription) -> Subscription:
    hour, minute = (int(part) for part in row.time.split(":"))
    return Subscription(
        id=f"chat-{row.id}",
        channel=row.channel,
        time=time(hour, minute),
        timezone=row.timezone,
        days=tuple(int(d) for d in row.days.split(",") if d),
        scope=parse_scope(f"{row.scope_level} {row.scope_name}".strip()),
        kpis=tuple(k for k in row.kpis.split(",") if k),
        waterfall=None if row.waterfall is None else Grain(row.waterfall),
        chart=row.chart,
    )


def load_subscriptions(settings: Settings, session: Session) -> list[Subscription]:
    """Every active subscription: the config's first, then the chat's in creation order."""
    zone = settings.organisation.timezone
    configured = [_from_spec(spec, zone) for spec in settings.config.subscriptions]
    rows = session.scalars(
        select(ChatSubscription).where(ChatSubscription.active).order_by(ChatSubscription.id)
    )
    return configured + [_from_row(row) for row in rows]


def add_subscription(
    session: Session,
    *,
    channel: str,
    at: time,
    timezone: str,
    created_by: str,
    now: datetime,
    scope: Scope | None = None,
    kpis: tuple[str, ...] = (),
    days: tuple[int, ...] = WEEKDAYS,
    waterfall: Grain | None = None,
    chart: bool = True,
) -> Subscription:
    scope = scope or Scope.company()
    row = ChatSubscription(
        channel=channel,
        time=at.strftime("%H:%M"),
        timezone=timezone,
        days=",".join(str(d) for d in days),
        scope_level=scope.level.value,
        scope_name=scope.name,
        kpis=",".join(kpis),
        created_by=created_by,
        created_at=now,
        active=True,
        waterfall=None if waterfall is None else waterfall.value,
        chart=chart,
    )
    session.add(row)
    session.flush()
    return _from_row(row)


def remove_subscriptions(session: Session, channel: str) -> int:
    """Deactivate the chat subscriptions of ``channel``; returns how many there were."""
    rows = session.scalars(
        select(ChatSubscription).where(ChatSubscription.active, ChatSubscription.channel == channel)
    ).all()
    for row in rows:
        row.active = False
    return len(rows)
