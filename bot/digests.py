"""A subscription's digest as a ``Notification`` (the ``Digest`` view for the subscription's
channel, under the idempotency key ``digest:<subscription>:<local date>``), and its posting
through a ``Dispatcher``; the channel's surface renders it. Unless the subscription says
``chart: false``, its chart (revenue against the pace line, ``bot.charts``) follows in the
digest's thread under ``<digest key>:chart``, through ``post_digest_chart``, the one way a
digest's picture is posted: on Slack a shared file, on Teams a card's picture, on a Workflows
webhook a smaller one or none. The chart shows what the channel may see: teams (the channel's
own team, or a manager's in their direct messages, first), never a rep unless
``visibility.rep_figures`` lets the channel see that rep. A digest that carries the pipeline
waterfall posts its chart the same way, under ``<digest key>:waterfall``. ``bot.charts`` is
imported when a chart is drawn: matplotlib would cost every serving process that imports this
module (through the scheduler's jobs) a fifth of its start-up."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.access import channel_audience, viewer_for
from bot.alerting import unstable_alerts
from bot.delivery.notifier import Delivered, parse_destination
from bot.delivery.surfaces import Dispatcher, Notification, PictureLeftOut
from bot.formatting import Formatter
from bot.rendering import changes_view, visible_digest
from bot.service import DIGEST_KPIS, KpiService
from bot.store.chat_models import AlertMessage, to_db
from bot.store.database import session_factory
from bot.subscriptions import Subscription
from conversation.authorization import (
    Action,
    Channel,
    Decision,
    authorize,
    named_reps,
    visible_changes,
)
from conversation.views import Chart, Digest
from metrics.alerts import Alert
from metrics.pace import PacePath

log = logging.getLogger(__name__)


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


def visible_paths(
    paths: list[PacePath], decision: Decision, first: frozenset[str] = frozenset()
) -> list[PacePath]:
    """The paths the channel may see, the teams named in ``first`` first (the rest in their
    order)."""
    shown = [p for p in paths if decision.shows(p.scope)]
    return sorted(shown, key=lambda p: p.scope.name.casefold() not in first)


def own_teams(service: KpiService, destination: str, audience: Channel) -> frozenset[str]:
    """The teams a chart posted to ``destination`` shows first, case-folded: the channel's own
    team, or, in a manager's direct messages, the teams they manage."""
    _, address = parse_destination(destination)
    reader = viewer_for(service.settings.config.access, address, None, {}, {})
    teams = {*reader.teams, *([audience.team] if audience.team else [])}
    return frozenset(t.casefold() for t in teams)


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
    if subscription.chart:
        # Drawn only now: matplotlib is imported by what draws (see the module's docstring).
        from bot.charts import digest_chart, waterfall_digest_chart

        # The chart is read by the same channel as the digest: the same visibility.
        audience = channel_audience(
            service.settings, subscription.channel, service.snapshot().facts
        )
        decision = authorize(audience, Action.ALERTS)
        first = own_teams(service, subscription.channel, audience)
        paths = visible_paths(service.pace_paths(now, subscription.scope), decision, first)
        if paths:
            post_digest_chart(dispatcher, notification, delivered, digest_chart(paths, fmt))
        changes = notification.view.changes if isinstance(notification.view, Digest) else None
        if changes is not None:
            # The waterfall the digest carries (already cut to what the channel may see).
            title = changes_view(changes, fmt).title
            picture = waterfall_digest_chart(changes, fmt, title)
            post_digest_chart(dispatcher, notification, delivered, picture, "waterfall")
    return delivered


def post_digest_chart(
    dispatcher: Dispatcher,
    digest: Notification,
    delivered: Delivered,
    chart: Chart,
    name: str = "chart",
) -> Delivered | None:
    """``chart`` in the thread of ``digest`` (posted as ``delivered``), through the outbox under
    ``<digest key>:<name>``, drawn by the digest's destination's surface; None when that
    surface leaves the picture out (a terminal, or over a webhook's payload limit)."""
    from bot.charts import chart_key

    notification = Notification(digest.destination, chart, chart_key(digest.idempotency_key, name))
    try:
        return dispatcher.reply(delivered, notification)
    except PictureLeftOut as left_out:
        log.info("%s left out of %s: %s", notification.idempotency_key, digest.destination,
                 left_out.reason)  # fmt: skip
        return None
