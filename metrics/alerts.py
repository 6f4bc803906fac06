"""Alert decisions, after Prometheus Alertmanager: identity, inhibition, silences, grouping by
route and deduplication against the notification log (``needs_update``).

Pure: evaluations, log entries, silences and ``now`` come in; decisions go out. Sending,
rendering and recording belong to ``bot.alerting``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from metrics.evaluation import Evaluation, Status, headroom
from metrics.scopes import Level, Scope

__all__ = [
    "Alert",
    "AlertKey",
    "AlertState",
    "Damping",
    "Hours",
    "LogEntry",
    "NotifyReason",
    "Planned",
    "Silence",
    "group_by_route",
    "inhibit",
    "moved",
    "needs_update",
    "next_allowed",
    "plan",
    "silence",
    "step",
]

_T = TypeVar("_T")


@dataclass(frozen=True, order=True)
class AlertKey:
    """An alert's identity: the same KPI, scope and period is the same alert, whatever its
    status (an at-risk alert that becomes missed escalates rather than starting anew)."""

    kpi: str
    scope: Scope
    period_key: str

    def __str__(self) -> str:
        return "|".join((self.kpi, self.scope.level.value, self.scope.name, self.period_key))

    @classmethod
    def parse(cls, text: str) -> AlertKey:
        kpi, level, name, period_key = text.split("|")
        return cls(kpi, Scope(Level(level), name), period_key)


@dataclass(frozen=True)
class Alert:
    """A firing alert: an evaluation whose status is at risk or missed."""

    evaluation: Evaluation

    @property
    def key(self) -> AlertKey:
        e = self.evaluation
        return AlertKey(e.kpi, e.scope, e.period.key)

    @property
    def status(self) -> Status:
        return self.evaluation.status


def inhibit(alerts: Iterable[Alert], *, stale: bool = False) -> list[Alert]:
    """Drop alerts that another condition makes pointless: stale CRM data inhibits every KPI
    alert (the numbers cannot be trusted), and ``missed`` inhibits ``at_risk`` of the same
    identity (a target whose period ended below it is past being at risk)."""
    if stale:
        return []
    chosen = list(alerts)
    missed = {a.key for a in chosen if a.status is Status.MISSED}
    return [a for a in chosen if not (a.status is Status.AT_RISK and a.key in missed)]


@dataclass(frozen=True)
class Silence:
    """A snooze until ``ends_at``; a matcher left as None matches any value."""

    ends_at: datetime
    starts_at: datetime | None = None
    kpi: str | None = None
    level: Level | None = None
    name: str | None = None
    period_key: str | None = None
    created_by: str = ""

    def is_active(self, now: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= now
        return started and now < self.ends_at

    def matches(self, key: AlertKey, now: datetime) -> bool:
        return self.is_active(now) and all(
            wanted is None or wanted == actual
            for wanted, actual in (
                (self.kpi, key.kpi),
                (self.level, key.scope.level),
                (self.name, key.scope.name),
                (self.period_key, key.period_key),
            )
        )


def silence(
    alerts: Iterable[Alert], silences: Iterable[Silence], now: datetime
) -> tuple[list[Alert], list[Alert]]:
    """Split ``alerts`` into (to notify, muted by an active silence)."""
    active = [s for s in silences if s.is_active(now)]
    kept: list[Alert] = []
    muted: list[Alert] = []
    for alert in alerts:
        (muted if any(s.matches(alert.key, now) for s in active) else kept).append(alert)
    return kept, muted


def group_by_route(
    items: Iterable[_T], route: Callable[[_T], Iterable[str]]
) -> dict[str, list[_T]]:
    """One group per destination, in first-seen order; an item goes to each of its routes
    (one rule may name destinations on several surfaces), items without a route are dropped."""
    groups: dict[str, list[_T]] = {}
    for item in items:
        for where in dict.fromkeys(route(item)):
            groups.setdefault(where, []).append(item)
    return groups


@dataclass(frozen=True)
class Damping:
    """How an alert's raw condition becomes a firing alert, after Prometheus' ``for``: it
    fires once the condition has held for ``fire_after`` evaluations and ``fire_for``, and
    resolves once it has cleared for ``resolve_after`` evaluations and ``resolve_for``, or at
    once when the deciding figure is back beyond the at-risk threshold by ``resolve_margin``
    of its reference. An alert whose firing state changed ``flap_limit`` times within
    ``flap_window`` is unstable: it is shown as such, not announced again."""

    fire_after: int = 1
    fire_for: timedelta = timedelta(0)
    resolve_after: int = 1
    resolve_for: timedelta = timedelta(0)
    resolve_margin: Decimal | None = None
    tolerance: Decimal = Decimal("0.05")  # the evaluation policy's: where the threshold is
    flap_window: timedelta = timedelta(days=14)
    flap_limit: int = 3


@dataclass(frozen=True)
class AlertState:
    """What the evaluations so far say about one alert identity, kept between runs."""

    firing: Status | None  # the damped status: None while the alert does not fire
    alerting: bool  # the raw condition at the last evaluation
    streak: int  # consecutive evaluations with that condition
    since: datetime  # when that condition began
    changes: tuple[datetime, ...] = ()  # when ``firing`` started or stopped, most recent last
    # The as-of date of the last evaluation: a second run on the same day (a retry, a manual
    # check) is not one more evaluation in a row.
    evaluated_on: date | None = None

    def unstable(self, damping: Damping, now: datetime) -> bool:
        recent = [c for c in self.changes if now - c < damping.flap_window]
        return len(recent) >= damping.flap_limit


def step(
    state: AlertState | None, evaluation: Evaluation, damping: Damping, now: datetime
) -> AlertState | None:
    """The alert's state after one more evaluation. "No data" (too early, too few) is no
    news: it neither holds nor clears a condition. A missed target fires at once: the period
    is over, it cannot flap."""
    status = evaluation.status
    if status is Status.NO_DATA:
        return state
    alerting = status.is_alert
    if state is None:
        if not alerting:
            return None  # nothing has ever fired: nothing to remember
        state = AlertState(None, True, 0, now)
    held = alerting == state.alerting
    again = state.evaluated_on == evaluation.as_of
    streak = (state.streak if again else state.streak + 1) if held else 1
    since = state.since if held else now
    firing = state.firing
    if alerting:
        due = streak >= damping.fire_after and now - since >= damping.fire_for
        if firing is not None or due or status is Status.MISSED:
            firing = status
    elif firing is not None:
        cleared = streak >= damping.resolve_after and now - since >= damping.resolve_for
        room = headroom(evaluation, damping.tolerance)
        margin = damping.resolve_margin
        if cleared or (margin is not None and room is not None and room >= margin):
            firing = None
    changes = state.changes
    if (firing is None) != (state.firing is None):
        changes = (*(c for c in changes if now - c < damping.flap_window), now)
    return AlertState(firing, alerting, streak, since, changes, evaluation.as_of)


class NotifyReason(StrEnum):
    NONE = "none"
    FIRST = "first"  # never notified, or notified resolved and firing again
    ESCALATION = "escalation"  # at risk → missed
    CHANGED = "changed"  # missed → at risk (the data was corrected)
    REPEAT = "repeat"  # still firing, unacknowledged, interval elapsed, the gap has moved
    RESOLVED = "resolved"

    @property
    def notifies(self) -> bool:
        return self is not NotifyReason.NONE


@dataclass(frozen=True)
class LogEntry:
    """What was last notified for one alert on one route."""

    status: Status | None  # the notified firing status; None once resolved was notified
    notified_at: datetime
    acknowledged: bool = False
    gap: Decimal | None = None  # the gap as last notified (None: not recorded)


def needs_update(
    entry: LogEntry | None,
    firing: Status | None,
    resolved: bool,
    repeat_interval: timedelta,
    now: datetime,
    *,
    moved: bool = True,
    unstable: bool = False,
) -> NotifyReason:
    """Whether to notify about one alert on one route, given the notification log.

    ``firing`` is the alert's status in this run (None when not firing); ``resolved`` says the
    target was evaluated and is no longer alerting. An alert that is neither (its target was
    removed, its period left the reporting window) fades out silently: nobody needs a
    "resolved" for a quarter that closed weeks ago. ``moved`` says the gap changed materially
    since the last notification: a reminder of the same figures is noise (the digest carries
    them). An ``unstable`` alert that fires again after its resolution was announced is not
    announced again.
    """
    if firing is None:
        if resolved and entry is not None and entry.status is not None:
            return NotifyReason.RESOLVED
        return NotifyReason.NONE
    if entry is None or entry.status is None:
        return NotifyReason.NONE if unstable and entry is not None else NotifyReason.FIRST
    if firing is not entry.status:
        if firing is Status.MISSED:
            return NotifyReason.ESCALATION
        return NotifyReason.CHANGED
    if entry.acknowledged or unstable or not moved:
        return NotifyReason.NONE
    if now - entry.notified_at >= repeat_interval:
        return NotifyReason.REPEAT
    return NotifyReason.NONE


@dataclass(frozen=True)
class Planned:
    """One decision of a run: notify ``route`` about ``key`` for ``reason``."""

    route: str
    key: AlertKey
    reason: NotifyReason
    evaluation: Evaluation
    previous: LogEntry | None = None  # what was last notified: a repeat says what changed


def moved(entry: LogEntry | None, evaluation: Evaluation, tolerance: Decimal) -> bool:
    """Whether the gap moved materially (by ``tolerance`` of the target) since ``entry``."""
    gap = evaluation.gap
    if entry is None or entry.gap is None or gap is None:
        return True
    return abs(gap - entry.gap) >= tolerance * abs(evaluation.target)


def plan(
    evaluations: Iterable[Evaluation],
    log: Mapping[tuple[str, str], LogEntry],
    silences: Iterable[Silence],
    route: Callable[[Scope], Iterable[str]],
    *,
    repeat_interval: timedelta,
    now: datetime,
    stale: bool = False,
    states: Mapping[AlertKey, AlertState] | None = None,
    damping: Damping = Damping(),
) -> dict[str, list[Planned]]:
    """The whole pipeline for one run: inhibit → silence → group by route → needs_update.

    ``log`` is keyed by (``str(AlertKey)``, route). ``states`` are the alerts' states after
    this run's evaluations (``step``): an alert fires once its state does, and resolves once
    its state stopped firing. Without them (``None``) every raw status counts at once.
    Returns, per route, the alerts to notify (firing ones and resolutions), in evaluation
    order; routes with nothing to say are absent.
    """

    def state(e: Evaluation) -> AlertState | None:
        return None if states is None else states.get(AlertKey(e.kpi, e.scope, e.period.key))

    def fires(e: Evaluation) -> bool:
        found = state(e)
        return e.status.is_alert and (states is None or (found is not None and bool(found.firing)))

    def clear(e: Evaluation) -> bool:
        found = state(e)
        return e.status in (Status.ACHIEVED, Status.ON_TRACK) and (
            found is None or found.firing is None
        )

    evaluated = list(evaluations)
    firing = inhibit((Alert(e) for e in evaluated if fires(e)), stale=stale)
    notify, _muted = silence(firing, silences, now)
    firing_status = {a.key: a.status for a in notify}
    # A resolution is news about an alert already notified; stale data resolves nothing.
    resolved = (
        {} if stale else {AlertKey(e.kpi, e.scope, e.period.key): e for e in evaluated if clear(e)}
    )
    out: dict[str, list[Planned]] = {}
    candidates = [a.evaluation for a in notify] + list(resolved.values())
    for where, group in group_by_route(candidates, lambda e: route(e.scope)).items():
        for evaluation in group:
            key = AlertKey(evaluation.kpi, evaluation.scope, evaluation.period.key)
            entry = log.get((str(key), where))
            found = state(evaluation)
            reason = needs_update(
                entry,
                firing_status.get(key),
                key in resolved,
                repeat_interval,
                now,
                moved=moved(entry, evaluation, damping.tolerance),
                unstable=found is not None and found.unstable(damping, now),
            )
            if reason.notifies:
                out.setdefault(where, []).append(Planned(where, key, reason, evaluation, entry))
    return out


@dataclass(frozen=True)
class Hours:
    """When notifications may go out: business days (Mon=0) and quiet hours, in ``zone``."""

    zone: tzinfo
    business_days: frozenset[int] = frozenset(range(5))
    quiet_start: time | None = None  # e.g. 20:00
    quiet_end: time | None = None  # e.g. 08:00 (may be on the next day)

    def _quiet(self, moment: time) -> bool:
        if self.quiet_start is None or self.quiet_end is None:
            return False
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= moment < self.quiet_end
        return moment >= self.quiet_start or moment < self.quiet_end


def next_allowed(now: datetime, hours: Hours) -> datetime:
    """``now`` if notifications may go out now, else the next moment they may (a business day,
    outside quiet hours), as an aware datetime in ``hours.zone``."""
    local = now.astimezone(hours.zone)
    if not hours.business_days:
        raise ValueError("no business day: notifications could never go out")
    for _ in range(8 * 2):
        if local.weekday() in hours.business_days and not hours._quiet(local.time()):
            return local
        if local.weekday() not in hours.business_days:
            start = hours.quiet_end if hours.quiet_end is not None else time(0)
            next_day = local.date() + timedelta(days=1)
            local = datetime.combine(next_day, start, hours.zone)
            continue
        assert hours.quiet_end is not None  # _quiet() was true
        end_day = local.date()
        if local.time() >= hours.quiet_end:
            end_day += timedelta(days=1)
        local = datetime.combine(end_day, hours.quiet_end, hours.zone)
    raise AssertionError("unreachable: a business day comes within a week")
