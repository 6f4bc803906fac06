"""A subscription's digest as a ``Notification`` (the ``Digest`` view for the subscription's
channel, under the idempotency key ``digest:<subscription>:<local date>``), and its posting
through a ``Dispatcher``; the channel's surface renders it. On Slack its chart (revenue against
the pace line, ``bot.charts``) follows in the digest's thread, under ``<digest key>:chart``,
and so does the waterfall's when the digest carries one, under ``<digest key>:waterfall``.
``bot.charts`` is imported when a chart is drawn: matplotlib would cost every serving process
that imports this module (through the scheduler's jobs) a fifth of its start-up."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.access import channel_audience
from bot.alerting import unstable_alerts
from bot.delivery.notifier import SLACK, Delivered, parse_destination
from bot.delivery.surfaces import Dispatcher, Notification
from bot.formatting import Formatter
from bot.rendering import changes_view, visible_digest
from bot.service import DIGEST_KPIS, KpiService
from bot.store.chat_models import AlertMessage, to_db
from bot.store.database import session_factory
from bot.subscriptions import Subscription
from conversation.authorization import Action, authorize, named_reps, visible_changes
from conversation.views import Digest
from metrics.alerts import Alert


def digest_key(subscription: Subscription, now: datetime) -> str:
    local = now.astimezone(ZoneInfo(subscription.timezone)).date()
    return f"digest:{subscription.id}:{local.isoformat()}"


def posted_today(service: KpiService, channel: str, now: datetime, zone: ZoneInfo) -> set[str]:
    """Keys of the alerts posted in ``channel`` since midnight (``zone``) and not resolved."""
    midnight = datetime.combine(now.astimezone(zone).date(), time(0), zone)
    with session_factory(service.engine)() as session:
        messages = session.scalars(
            select(AlertMessage).where(
                AlertMessage.route == channel, AlertMessage.sent_at >= to_db(midnight)
            )
        )
        return {a["key"] for m in messages for a in m.alerts if a["resolved_at"] is None}


def digest_notification(
    service: KpiService, subscription: Subscription, now: datetime, fmt: Formatter
) -> Notification:
    digest = service.digest(
        now,
        scope=subscription.scope,
        kpis=subscription.kpis or DIGEST_KPIS,
        title=subscription.title or fmt.t("daily_digest"),
    )
    # Everyone in the channel reads it: only the rep figures visibility.rep_figures allows.
    audience = channel_audience(service.settings, subscription.channel, service.snapshot().facts)
    decision = authorize(audience, Action.ALERTS)
    digest = visible_digest(digest, decision)
    if subscription.waterfall is not None:
        changes = service.week_of_changes(
            now, subscription.scope, subscription.waterfall, named_reps(decision)
        )
        digest = dataclasses.replace(digest, changes=visible_changes(changes, decision))
    # Alerts already posted here this morning are not repeated: counted, with a pointer.
    posted = posted_today(service, subscription.channel, now, ZoneInfo(subscription.timezone))
    fresh = tuple(e for e in digest.alerts if str(Alert(e).key) not in posted)
    config = service.settings.config
    damping = config.alerts.damping(config.evaluation.tolerance)
    digest = dataclasses.replace(
        digest,
        alerts=fresh,
        posted=len(digest.alerts) - len(fresh),
        unstable=unstable_alerts(session_factory(service.engine), damping, now),
    )
    return Notification(
        subscription.channel,
        digest,
        digest_key(subscription, now),
        {"kind": "digest", "subscription": subscription.id},
    )


def post_digest(
    service: KpiService,
    dispatcher: Dispatcher,
    subscription: Subscription,
    now: datetime,
    fmt: Formatter,
) -> Delivered:
    notification = digest_notification(service, subscription, now, fmt)
    delivered = dispatcher.send(notification)
    surface, _ = parse_destination(subscription.channel)
    if surface != SLACK:
        return delivered
    # A Slack capability: the charts go through the same outbox, as replies that are files.
    from bot.charts import chart_key, digest_chart, waterfall_digest_chart

    paths = service.pace_paths(now, subscription.scope)
    if paths:
        key = chart_key(notification.idempotency_key)
        dispatcher.notifier.reply(delivered, digest_chart(paths, fmt, delivered.channel, key))
    changes = notification.view.changes if isinstance(notification.view, Digest) else None
    if changes is not None:
        # The waterfall the digest carries (already cut to what the channel may see), drawn.
        key = chart_key(notification.idempotency_key, "waterfall")
        title = changes_view(changes, fmt).title
        picture = waterfall_digest_chart(changes, fmt, title, delivered.channel, key)
        dispatcher.notifier.reply(delivered, picture)
    return delivered
