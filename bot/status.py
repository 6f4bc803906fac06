"""``kpibot status``: what an operator paged at night wants on one screen — the last sync and
whether data is stale, the next runs, unfinished jobs (running, or left by a crashed process)
and when another process may take them over, the outbox backlog, failed deliveries, active
alerts and silences. Read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.delivery.failures import FailureLog, OpenFailure
from bot.delivery.outbox import Backlog, Outbox
from bot.scheduling.plan import PlannedJob
from bot.scheduling.staleness import stale_since
from bot.scheduling.sync import SyncRuns, SyncRunState
from bot.settings import Settings
from bot.store.delivery_models import JobClaim
from bot.store.sync_models import SyncState


@dataclass(frozen=True)
class NextRun:
    job_id: str
    at: datetime | None
    description: str


@dataclass(frozen=True)
class Unfinished:
    """A claimed job that has not finished: running, or left behind by a process that died
    (or gave the claim up after an error). ``takeover_at``: when its claim lease lets another
    process take it over — its last heartbeat plus ``scheduling.claim_lease``."""

    job_id: str
    fire_time: datetime
    owner: str
    heartbeat_at: datetime
    takeover_at: datetime
    error: str | None  # why it was given up, when it raised


@dataclass(frozen=True)
class ActiveAlert:
    key: str
    route: str
    status: str
    since: datetime


@dataclass(frozen=True)
class ActiveSilence:
    matcher: str
    until: datetime
    by: str


@dataclass(frozen=True)
class ObjectSync:
    """One object of one source as ``sync_state`` remembers it."""

    source: str
    object: str
    synced_at: datetime | None
    high_water_mark: datetime | None
    api_used: int | None
    api_limit: int | None
    last_error: str | None
    error_at: datetime | None


@dataclass(frozen=True)
class Status:
    now: datetime
    last_sync: SyncRunState | None
    last_success: datetime | None
    stale_since: datetime | None
    next_runs: list[NextRun]
    unfinished: list[Unfinished]
    backlog: Backlog
    failures: list[OpenFailure]
    alerts: list[ActiveAlert] = field(default_factory=list)
    silences: list[ActiveSilence] = field(default_factory=list)
    sources: list[ObjectSync] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def collect_status(
    settings: Settings, engine: Engine, plan: list[PlannedJob], now: datetime
) -> Status:
    runs = SyncRuns(engine)
    last_success = runs.last_success()
    next_runs = [
        NextRun(job.id, job.trigger.get_next_fire_time(None, now), job.description) for job in plan
    ]
    lease = settings.config.scheduling.claim_lease
    with Session(engine) as session:
        unfinished = [
            Unfinished(
                c.job_id,
                _utc(c.fire_time),
                c.owner,
                _utc(c.heartbeat_at),
                _utc(c.heartbeat_at) + lease,
                c.detail if c.outcome == "error" else None,
            )
            for c in session.scalars(
                select(JobClaim)
                .where(JobClaim.finished_at.is_(None))
                .order_by(JobClaim.fire_time, JobClaim.job_id)
            )
        ]
        alerts, silences = _chat_state(session, now)
        sources = [
            ObjectSync(
                row.source,
                row.object,
                _aware(row.synced_at),
                _aware(row.high_water_mark),
                row.api_used,
                row.api_limit,
                row.last_error,
                _aware(row.error_at),
            )
            for row in session.scalars(select(SyncState).order_by(SyncState.source))
        ]
    return Status(
        now=now,
        last_sync=runs.last_run(),
        last_success=last_success,
        stale_since=stale_since(last_success, now, settings.config.scheduling.stale_after),
        next_runs=next_runs,
        unfinished=unfinished,
        backlog=Outbox(engine, "status", lambda: now, lease).backlog(),
        failures=FailureLog(engine, lambda: now).open_failures(),
        alerts=alerts,
        silences=silences,
        sources=sources,
    )


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _chat_state(session: Session, now: datetime) -> tuple[list[ActiveAlert], list[ActiveSilence]]:
    """The alert pipeline's notification log and silences (issue 3's tables)."""
    from bot.store.chat_models import NotificationLogEntry, Silence

    alerts = [
        ActiveAlert(row.alert_key, row.route, row.status, _utc(row.first_notified_at))
        for row in session.scalars(
            select(NotificationLogEntry)
            .where(NotificationLogEntry.status != "resolved")
            .order_by(NotificationLogEntry.first_notified_at)
        )
    ]
    silences = []
    for row in session.scalars(select(Silence).order_by(Silence.ends_at)):
        if _utc(row.ends_at) <= now:
            continue
        parts = [row.kpi or "any KPI", f"{row.scope_level or ''} {row.scope_name or ''}".strip()]
        if row.period_key:
            parts.append(row.period_key)
        matcher = " ".join(p for p in parts if p)
        silences.append(ActiveSilence(matcher, _utc(row.ends_at), row.created_by))
    return alerts, silences


def render_status(status: Status, zone: tzinfo) -> str:
    def when(moment: datetime | None) -> str:
        return "—" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"

    lines = [f"kpibot status at {when(status.now)}", ""]
    sync = status.last_sync
    if sync is None:
        lines.append("Last sync:         never")
    else:
        outcome = sync.status + (
            f", {sync.rows_changed} row(s) changed" if sync.rows_changed is not None else ""
        )
        lines.append(f"Last sync:         {when(sync.started_at)} {sync.source}: {outcome}")
        if sync.status == "failed" and sync.detail:
            lines.append(f"                   error: {sync.detail.splitlines()[0][:160]}")
    lines.append(f"Last success:      {when(status.last_success)}")
    lines += _source_lines(status.sources, when)
    if status.stale_since is not None:
        lines.append(f"DATA IS STALE since {when(status.stale_since)}: KPI alerts are held")
    lines += ["", "Next runs:"]
    for run in sorted(status.next_runs, key=lambda r: (r.at is None, r.at or status.now)):
        lines.append(f"  {when(run.at):<22} {run.job_id:<28} {run.description}")
    if status.unfinished:
        lines += ["", "Unfinished jobs:"]
    for job in status.unfinished:
        lines.append(f"  {job.job_id} for {when(job.fire_time)}, claimed by {job.owner}")
        if job.error is not None:
            error = job.error.splitlines()[0][:120]
            state = f"gave up after an error ({error}): another process may run it again now"
        elif job.takeover_at > status.now:
            state = (
                f"running (heartbeat {when(job.heartbeat_at)}); if it stops, another process "
                f"may take it over from {when(job.takeover_at)}"
            )
        else:
            state = (
                f"claimant silent since {when(job.heartbeat_at)}, presumed dead: another "
                f"process may take it over since {when(job.takeover_at)}"
            )
        lines.append(f"    {state}")
    backlog = status.backlog
    lines += [
        "",
        f"Outbox:            {backlog.pending} pending"
        + (f" (oldest {when(backlog.oldest_pending)})" if backlog.oldest_pending else "")
        + f", {backlog.failed} failed, {backlog.sent} sent",
    ]
    lines.append(f"Failed deliveries: {len(status.failures) or 'none'}")
    for failure in status.failures:
        reported = "reported to admin" if failure.reported else "NOT reported"
        lines.append(
            f"  {failure.channel:<14} {failure.error:<20} since {when(failure.first_at)}, "
            f"{failure.count} message(s), last {when(failure.last_at)}; {reported}"
        )
    lines.append(f"Active alerts:     {len(status.alerts) or 'none'}")
    for alert in status.alerts:
        lines.append(f"  {alert.status:<8} {alert.key} → {alert.route} since {when(alert.since)}")
    lines.append(f"Silences:          {len(status.silences) or 'none'}")
    for silence in status.silences:
        lines.append(f"  {silence.matcher} until {when(silence.until)} (by {silence.by})")
    return "\n".join(lines)


def _source_lines(sources: list[ObjectSync], when: Callable[[datetime | None], str]) -> list[str]:
    """Per source: its objects' last sync and high-water mark, the API budget, the last error."""
    lines: list[str] = []
    by_source: dict[str, list[ObjectSync]] = {}
    for row in sources:
        by_source.setdefault(row.source, []).append(row)
    for source, rows in by_source.items():
        lines.append(f"Source {source}:")
        for row in rows:
            if row.synced_at is not None or row.high_water_mark is not None:
                lines.append(
                    f"  {row.object:<18} synced {when(row.synced_at)}, "
                    f"high-water mark {when(row.high_water_mark)}"
                )
        budget = next((r for r in rows if r.api_limit is not None), None)
        if budget is not None and budget.api_used is not None and budget.api_limit is not None:
            left = budget.api_limit - budget.api_used
            lines.append(f"  API budget: {budget.api_used} of {budget.api_limit} used, {left} left")
        errors = [r for r in rows if r.last_error]
        for row in sorted(errors, key=lambda r: r.error_at or datetime.min.replace(tzinfo=UTC)):
            first = (row.last_error or "").splitlines()[0][:160]
            lines.append(f"  last error ({row.object}, {when(row.error_at)}): {first}")
    return lines
