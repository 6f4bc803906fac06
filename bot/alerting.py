"""Target alerts, end to end: evaluate → ``metrics.alerts.plan`` (inhibit, silence, group by
route, dedup against the notification log) → render one message per channel → send through a
``Notifier`` → record in the log, only after the send succeeded. A resolution edits the message
that announced the alert and replies in its thread.

Routes: team alerts go to the team's channel, rep alerts to the rep by direct message, company
and region alerts (and teams without a channel) to the leadership channel. Outside business days
and inside quiet hours nothing is sent: the next run after the hold catches up, since the log
was not written.

Messages are surface-neutral views (``AlertGroup``, ``AlertsResolved``) handed to a
``Dispatcher``: each destination's surface renders them. Acknowledge and Snooze (the actions
on alert messages) are recorded here too: who and until when, giving back the message's view
to draw again; ``bot.core`` decides whether the one who acts may.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackClientError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.access import channel_audience
from bot.chat_rendering import alert_snapshot
from bot.delivery.errors import DeliveryError
from bot.delivery.notifier import SLACK, TEAMS, Delivered, destination_of, parse_destination
from bot.delivery.surfaces import Dispatcher, Notification
from bot.formatting import Formatter
from bot.service import KpiService
from bot.settings import Settings
from bot.store.chat_models import (
    AlertMessage,
    AlertStateRow,
    NotificationLogEntry,
    Silence,
    from_db,
    to_db,
)
from bot.store.database import session_factory, transaction
from conversation.authorization import (
    Action,
    RepFigures,
    alert_actions,
    authorize,
    visible_evaluation,
)
from conversation.views import AlertGroup, AlertNote, AlertsResolved
from metrics import alerts as pipeline
from metrics.alerts import AlertKey, AlertState, Damping, Hours, LogEntry, NotifyReason, Planned
from metrics.evaluation import Evaluation, Status
from metrics.scopes import Level, Scope

logger = logging.getLogger(__name__)

# Rep name, CRM email → Slack user id (``SlackUsers.user_for``); None when unknown.
UserLookup = Callable[[str, str | None, datetime], str | None]

SNOOZE_FOR = {"1d": timedelta(days=1), "3d": timedelta(days=3), "1w": timedelta(weeks=1)}


@dataclass
class AlertRun:
    """What one run did, for logs and ``kpibot status``."""

    sent: list[Delivered] = field(default_factory=list)
    resolved: list[Delivered] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "route: error"
    held_until: datetime | None = None
    inhibited: bool = False


def notification_hours(settings: Settings) -> Hours:
    alerts = settings.config.alerts
    zone = ZoneInfo(alerts.timezone or settings.organisation.timezone)
    quiet = alerts.quiet_hours
    return Hours(
        zone=zone,
        business_days=frozenset(alerts.business_days),
        quiet_start=None if quiet is None else time.fromisoformat(quiet.start),
        quiet_end=None if quiet is None else time.fromisoformat(quiet.end),
    )


class Router:
    """Where an alert about a scope goes: its rule's destinations (a channel id, a Teams
    conversation… one rule may name several), or a rep's Slack user id for their DM."""

    def __init__(self, service: KpiService, users: UserLookup | None, now: datetime) -> None:
        self.routes = service.settings.config.slack
        self.service = service
        self.users = users
        self.now = now
        self._reps: dict[str, str | None] = {}

    def __call__(self, scope: Scope) -> tuple[str, ...]:
        leadership = self.routes.leadership_channel
        match scope.level:
            case Level.COMPANY:
                return leadership
            case Level.REGION:
                return self.routes.region_channels.get(scope.name, leadership)
            case Level.TEAM:
                return self.routes.team_channels.get(scope.name, leadership)
            case Level.REP:
                user = self._rep(scope.name)
                return () if user is None else (user,)

    def _rep(self, name: str) -> str | None:
        if name not in self._reps:
            user = self.routes.rep_users.get(name)
            if user is None and self.users is not None:
                reps = self.service.snapshot().facts.reps
                emails = reps.loc[reps["name"] == name, "email"].dropna()
                email = str(emails.iloc[0]) if len(emails) else None
                user = self.users(name, email, self.now)
            if user is None:
                # A rep's numbers are theirs: without their DM they go nowhere, not to a channel.
                logger.warning("rep alert for %s not sent: no Slack user found", name)
            self._reps[name] = user
        return self._reps[name]


class TeamsRouter:
    """Where an alert about a scope goes in Teams, beside Slack: the stored conversation that
    ``teams.team_channels`` names for a team, else ``teams.leadership_channel``. Rep alerts
    stay in Slack's direct messages."""

    def __init__(self, settings: Settings) -> None:
        self.routes = settings.config.teams

    def __call__(self, scope: Scope) -> tuple[str, ...]:
        if scope.level is Level.REP:
            return ()
        name = self.routes.leadership_channel
        if scope.level is Level.TEAM:
            name = self.routes.team_channels.get(scope.name, name)
        return () if name is None else (destination_of(TEAMS, name),)


def _is_user(route: str) -> bool:
    """Whether a route is a Slack user id (a direct message) rather than a channel."""
    surface, address = parse_destination(route)
    return surface == SLACK and address[:1] in ("U", "W")


class ManagerRouter:
    """Where the named version of a team alert goes when the team's channel may not show rep
    figures: the direct messages of the team's manager (the first listed in
    ``access.managers``, by user id, or by email through ``users.lookupByEmail``)."""

    def __init__(
        self, service: KpiService, users: UserLookup | None, now: datetime, channels: Router
    ) -> None:
        self.settings = service.settings
        self.users = users
        self.now = now
        self.channels = channels

    def __call__(self, scope: Scope) -> tuple[str, ...]:
        if scope.level is not Level.TEAM:
            return ()
        figures = self.settings.config.visibility.rep_figures
        channels = self.channels(scope)
        own = self.settings.config.slack.team_channels.get(scope.name, ())
        if figures is RepFigures.COMPANY or (figures is RepFigures.TEAM and channels == own):
            return ()
        managers = self.settings.config.access.managers
        manager = next((who for who, teams in managers.items() if scope.name in teams), None)
        if manager is not None and not _is_user(manager):
            manager = None if self.users is None else self.users(manager, manager, self.now)
        return () if manager is None else (manager,)


def _log(session: Session) -> dict[tuple[str, str], LogEntry]:
    acked = {
        m.id
        for m in session.scalars(select(AlertMessage).where(AlertMessage.acked_by.is_not(None)))
    }
    out = {}
    for row in session.scalars(select(NotificationLogEntry)):
        status = None if row.status == "resolved" else Status(row.status)
        out[(row.alert_key, row.route)] = LogEntry(
            status,
            from_db(row.last_notified_at),
            acknowledged=row.message_id in acked,
            gap=row.gap,
        )
    return out


def _states(session: Session) -> dict[AlertKey, AlertState]:
    return {
        AlertKey.parse(row.alert_key): AlertState(
            firing=None if row.firing is None else Status(row.firing),
            alerting=row.alerting,
            streak=row.streak,
            since=from_db(row.since),
            changes=tuple(datetime.fromisoformat(c) for c in row.changes),
            evaluated_on=row.evaluated_on,
        )
        for row in session.scalars(select(AlertStateRow))
    }


def unstable_alerts(
    sessions: sessionmaker[Session], damping: Damping, now: datetime
) -> frozenset[str]:
    """Keys of the alerts that keep starting and stopping, to show them as unstable."""
    with sessions() as session:
        states = _states(session)
    return frozenset(str(k) for k, s in states.items() if s.unstable(damping, now))


def advance_states(
    sessions: sessionmaker[Session],
    evaluations: Iterable[Evaluation],
    damping: Damping,
    now: datetime,
) -> dict[AlertKey, AlertState]:
    """Step every evaluated alert's state (``metrics.alerts.step``) and store the result, once
    per evaluation run, whatever is sent afterwards."""
    with transaction(sessions) as session:
        states = _states(session)
        for evaluation in evaluations:
            key = AlertKey(evaluation.kpi, evaluation.scope, evaluation.period.key)
            before = states.get(key)
            after = pipeline.step(before, evaluation, damping, now)
            if after == before:
                continue
            row = session.get(AlertStateRow, str(key))
            if after is None:
                if row is not None:
                    session.delete(row)
                states.pop(key, None)
                continue
            if row is None:
                row = AlertStateRow(alert_key=str(key))
                session.add(row)
            row.firing = None if after.firing is None else after.firing.value
            row.alerting, row.streak = after.alerting, after.streak
            row.since = to_db(after.since)
            row.changes = [c.isoformat() for c in after.changes]
            row.evaluated_on = after.evaluated_on
            states[key] = after
    return states


def _silences(session: Session, now: datetime) -> list[pipeline.Silence]:
    rows = session.scalars(select(Silence).where(Silence.ends_at > to_db(now)))
    return [
        pipeline.Silence(
            ends_at=from_db(row.ends_at),
            starts_at=from_db(row.starts_at),
            kpi=row.kpi,
            level=None if row.scope_level is None else Level(row.scope_level),
            name=row.scope_name,
            period_key=row.period_key,
            created_by=row.created_by,
        )
        for row in rows
    ]


def _message_key(route: str, planned: list[Planned], log: dict[tuple[str, str], LogEntry]) -> str:
    """Deterministic for one run's content and the log state it was decided on: a run retried
    after a crash gets the same key (so the outbox can find the message), a later reminder
    gets a new one."""
    digest = hashlib.sha256()
    for p in planned:
        before = log.get((str(p.key), route))
        previous = "new" if before is None else before.notified_at.isoformat()
        digest.update(f"{p.key}|{p.evaluation.status}|{previous};".encode())
    return f"alerts:{route}:{digest.hexdigest()[:16]}"


def run_alerts(
    service: KpiService,
    dispatcher: Dispatcher,
    now: datetime,
    *,
    stale_since: datetime | None = None,
    users: UserLookup | None = None,
    fmt: Formatter | None = None,
    sessions: sessionmaker[Session] | None = None,
    evaluations: Iterable[Evaluation] | None = None,
) -> AlertRun:
    """Evaluate every target at ``now`` and notify what changed. ``stale_since`` set means the
    CRM data is stale: every KPI alert is inhibited (the caller posts the stale-data notice).
    ``evaluations`` replaces ``service.check(now)`` (tests, replays)."""
    settings = service.settings
    fmt = fmt or Formatter.for_organisation(settings.organisation)
    sessions = sessions or session_factory(service.engine)
    run = AlertRun(inhibited=stale_since is not None)
    allowed = pipeline.next_allowed(now, notification_hours(settings))
    if allowed > now:
        run.held_until = allowed
        return run
    evaluated = list(service.check(now) if evaluations is None else evaluations)
    damping = settings.config.alerts.damping(settings.config.evaluation.tolerance)
    states = advance_states(sessions, evaluated, damping, now)
    with sessions() as session:
        log = _log(session)
        silences = _silences(session, now)
    router = Router(service, users, now)
    planned: dict[str, list[Planned]] = {}
    # Channels first, then the managers' DMs for the team alerts whose rep names a channel
    # may not carry (``visibility.rep_figures``), then the Teams channels. Each route has its
    # own log entries.
    routers = (router, ManagerRouter(service, users, now, router), TeamsRouter(settings))
    for route_of in routers:
        routed = pipeline.plan(
            evaluated,
            log,
            silences,
            route_of,
            repeat_interval=settings.config.alerts.repeat_interval,
            now=now,
            stale=stale_since is not None,
            states=states,
            damping=damping,
        )
        for route, items in routed.items():
            planned.setdefault(route, []).extend(items)
    facts = service.snapshot().facts
    for route, items in planned.items():
        if not _is_user(route):
            # What a channel reads: only the rep figures visibility.rep_figures allows there.
            decision = authorize(channel_audience(settings, route, facts), Action.ALERTS)
            items = [
                dataclasses.replace(p, evaluation=visible_evaluation(p.evaluation, decision))
                for p in items
            ]
        firing = [p for p in items if p.reason is not NotifyReason.RESOLVED]
        resolved = [p for p in items if p.reason is NotifyReason.RESOLVED]
        try:
            if firing:
                run.sent.append(_notify(dispatcher, sessions, route, firing, log, fmt, now))
            if resolved:
                run.resolved.extend(_resolve(dispatcher, sessions, route, resolved, fmt, now))
        except (DeliveryError, SlackClientError, OSError) as error:
            # One channel's failure (archived, bot removed, network) must not stop the others;
            # nothing was logged for it, so the next run tries again.
            logger.warning("alert delivery to %s failed: %s", route, error)
            run.failed.append(f"{route}: {error}")
    return run


def _group(
    key: str, snapshots: list[dict[str, Any]], notes: tuple[AlertNote, ...] = ()
) -> AlertGroup:
    """The message's view: its alerts, who took it in hand, the actions still offered."""
    firing = any(a["resolved_at"] is None for a in snapshots)
    return AlertGroup(key, tuple(snapshots), notes, alert_actions(firing), tuple(SNOOZE_FOR))


def _notify(
    dispatcher: Dispatcher,
    sessions: sessionmaker[Session],
    route: str,
    firing: list[Planned],
    log: dict[tuple[str, str], LogEntry],
    fmt: Formatter,
    now: datetime,
) -> Delivered:
    key = _message_key(route, firing, log)
    snapshots = [alert_snapshot(p.evaluation, fmt, str(p.key), p.previous) for p in firing]
    group = _group(key, snapshots)
    delivered = dispatcher.send(Notification(route, group, key, {"kind": "alerts"}))
    with transaction(sessions) as session:
        record = AlertMessage(
            idempotency_key=key,
            route=route,
            channel=delivered.channel,
            ts=delivered.ts,
            sent_at=to_db(now),
            alerts=snapshots,
        )
        session.add(record)
        session.flush()
        for p in firing:
            status = p.evaluation.status.value
            _upsert_log(session, str(p.key), route, status, record.id, now, p.evaluation.gap)
    return delivered


def _upsert_log(
    session: Session,
    key: str,
    route: str,
    status: str,
    message_id: int | None,
    now: datetime,
    gap: Decimal | None = None,
) -> None:
    row = session.scalars(
        select(NotificationLogEntry).where(
            NotificationLogEntry.alert_key == key, NotificationLogEntry.route == route
        )
    ).first()
    if row is None:
        row = NotificationLogEntry(alert_key=key, route=route, first_notified_at=to_db(now))
        session.add(row)
    elif row.status == "resolved":
        row.first_notified_at = to_db(now)
    row.status = status
    row.last_notified_at = to_db(now)
    row.resolved_at = to_db(now) if status == "resolved" else None
    row.gap = gap
    if message_id is not None:
        row.message_id = message_id


def _resolve(
    dispatcher: Dispatcher,
    sessions: sessionmaker[Session],
    route: str,
    resolved: list[Planned],
    fmt: Formatter,
    now: datetime,
) -> list[Delivered]:
    """Edit each message that announced a now-resolved alert, its section now showing the
    current figures, and reply in its thread with those figures and why it resolved."""
    current = {str(p.key): p.evaluation for p in resolved}
    keys = set(current)
    with sessions() as session:
        rows = session.scalars(
            select(NotificationLogEntry).where(
                NotificationLogEntry.route == route, NotificationLogEntry.alert_key.in_(keys)
            )
        ).all()
        by_message: dict[int | None, list[str]] = {}
        for row in rows:
            by_message.setdefault(row.message_id, []).append(row.alert_key)
        messages = {
            m.id: m
            for m in session.scalars(
                select(AlertMessage).where(AlertMessage.id.in_([i for i in by_message if i]))
            )
        }
    out = []
    when = fmt.datetime(now)
    for message_id, alert_keys in by_message.items():
        record = messages.get(message_id) if message_id is not None else None
        if record is None:
            continue
        # The stale at-risk figures give way to today's, so that nobody reads them as current.
        snapshots = [
            {**alert_snapshot(current[a["key"]], fmt, a["key"]), "resolved_at": when}
            if a["key"] in alert_keys
            else a
            for a in record.alerts
        ]
        original = Delivered(record.channel, record.ts)
        key = record.idempotency_key
        edited = _group(key, snapshots, _notes(record))
        dispatcher.update(original, Notification(record.channel, edited, key, {"kind": "alerts"}))
        reply = Notification(
            record.channel,
            AlertsResolved(tuple(current[a] for a in alert_keys)),
            f"{key}:resolved:{','.join(sorted(alert_keys))}",
            {"kind": "alerts.resolved"},
        )
        out.append(dispatcher.reply(original, reply))
        with transaction(sessions) as session:
            stored = session.get(AlertMessage, record.id)
            assert stored is not None
            stored.alerts = snapshots
            for key in alert_keys:
                _upsert_log(session, key, route, "resolved", None, now)
    return out


def _notes(record: AlertMessage) -> tuple[AlertNote, ...]:
    notes = []
    if record.acked_by and record.acked_at:
        notes.append(AlertNote(Action.ACKNOWLEDGE, record.acked_by, from_db(record.acked_at)))
    if record.snoozed_by and record.snoozed_until:
        until = from_db(record.snoozed_until)
        notes.append(AlertNote(Action.SNOOZE, record.snoozed_by, until))
    return tuple(notes)


# --- the buttons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertMessageUpdate:
    """An alert message after an action, to draw in place of the original (``channel``: its
    destination, ``ts``: the surface's message id)."""

    channel: str
    ts: str
    group: AlertGroup


def _updated(record: AlertMessage) -> AlertMessageUpdate:
    group = _group(record.idempotency_key, record.alerts, _notes(record))
    return AlertMessageUpdate(record.channel, record.ts, group)


def _find(session: Session, key: str) -> AlertMessage | None:
    return session.scalars(select(AlertMessage).where(AlertMessage.idempotency_key == key)).first()


@dataclass(frozen=True)
class PostedAlerts:
    """An alert message as posted: where, and the scopes of its alerts still firing."""

    channel: str
    ts: str
    scopes: tuple[Scope, ...]


def posted_alerts(sessions: sessionmaker[Session], key: str) -> PostedAlerts | None:
    """The alert message with idempotency key ``key``; None if there is none."""
    with sessions() as session:
        record = _find(session, key)
        if record is None:
            return None
        firing = [a for a in record.alerts if a["resolved_at"] is None]
        scopes = tuple(dict.fromkeys(AlertKey.parse(a["key"]).scope for a in firing))
        return PostedAlerts(record.channel, record.ts, scopes)


def acknowledge(
    sessions: sessionmaker[Session], key: str, user_id: str, now: datetime
) -> AlertMessageUpdate | None:
    """Record that ``user_id`` took the alerts of message ``key`` in hand: no more reminders
    for them (an escalation still goes out). None if the message is unknown."""
    with transaction(sessions) as session:
        record = _find(session, key)
        if record is None:
            return None
        record.acked_by, record.acked_at = user_id, to_db(now)
        return _updated(record)


def snooze(
    sessions: sessionmaker[Session], key: str, duration: str, user_id: str, now: datetime
) -> AlertMessageUpdate | None:
    """Silence every still-firing alert of message ``key`` for ``duration`` (a key of
    ``SNOOZE_FOR``). None if the message or the duration is unknown."""
    if duration not in SNOOZE_FOR:
        return None
    until = now + SNOOZE_FOR[duration]
    with transaction(sessions) as session:
        record = _find(session, key)
        if record is None:
            return None
        for alert in record.alerts:
            if alert["resolved_at"] is None:
                add_silence(session, AlertKey.parse(alert["key"]), until, user_id, now)
        record.snoozed_by, record.snoozed_until = user_id, to_db(until)
        return _updated(record)


def add_silence(
    session: Session,
    key: AlertKey | None,
    until: datetime,
    user_id: str,
    now: datetime,
    *,
    kpi: str | None = None,
    scope: Scope | None = None,
) -> Silence:
    """A silence matching exactly ``key``, or else the given ``kpi`` and/or ``scope``."""
    if key is not None:
        kpi, scope = key.kpi, key.scope
    row = Silence(
        kpi=kpi,
        scope_level=None if scope is None else scope.level.value,
        scope_name=None if scope is None else scope.name,
        period_key=None if key is None else key.period_key,
        starts_at=to_db(now),
        ends_at=to_db(until),
        created_by=user_id,
    )
    session.add(row)
    session.flush()
    return row


def active_silences(sessions: sessionmaker[Session], now: datetime) -> list[pipeline.Silence]:
    with sessions() as session:
        return _silences(session, now)


def active_alerts(service: KpiService, now: datetime) -> list[Evaluation]:
    return [e for e in service.check(now) if e.status.is_alert]
