"""``kpibot status``: what an operator paged at night wants on one screen — the last sync and
whether data is stale, the next runs, unfinished jobs (running, or left by a crashed process)
and when another process may take them over, the outbox backlog, failed deliveries, active
alerts and silences. Read-only. Worded in the organisation's language (the catalogs'
``report.*`` messages); times stay ``2026-12-01 08:30 CET``, sortable and unambiguous."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.delivery.failures import FailureLog, OpenFailure
from bot.delivery.outbox import Backlog, Outbox
from bot.formatting import Formatter
from bot.scheduling.plan import PlannedJob
from bot.scheduling.staleness import stale_since
from bot.scheduling.sync import SyncRuns, SyncRunState
from bot.settings import Settings
from bot.sources.service import DELETION_CHECKS
from bot.store.chat_models import NotificationLogEntry, Silence
from bot.store.delivery_models import JobClaim
from bot.store.moments import as_utc
from bot.store.sync_models import SyncState
from metrics.evaluation import Status as EvaluationStatus
from metrics.kpis import KPIS
from metrics.scopes import Level, Scope


@dataclass(frozen=True)
class NextRun:
    job_id: str
    kind: str
    at: datetime | None
    details: Mapping[str, str]  # what the job's words name: its source, cron, channel...


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
    kpi: str | None  # None: every KPI
    scope: Scope | None  # None: every scope
    period_key: str | None
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


def collect_status(
    settings: Settings, engine: Engine, plan: list[PlannedJob], now: datetime
) -> Status:
    runs = SyncRuns(engine)
    last_success = runs.last_success()
    next_runs = [
        NextRun(job.id, job.kind, job.trigger.get_next_fire_time(None, now), job.details)
        for job in plan
    ]
    lease = settings.config.scheduling.claim_lease
    with Session(engine) as session:
        unfinished = [
            Unfinished(
                c.job_id,
                as_utc(c.fire_time),
                c.owner,
                as_utc(c.heartbeat_at),
                as_utc(c.heartbeat_at) + lease,
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
                as_utc(row.synced_at),
                as_utc(row.high_water_mark),
                row.api_used,
                row.api_limit,
                row.last_error,
                as_utc(row.error_at),
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


def _chat_state(session: Session, now: datetime) -> tuple[list[ActiveAlert], list[ActiveSilence]]:
    """The alert pipeline's notification log and silences (issue 3's tables)."""
    alerts = [
        ActiveAlert(row.alert_key, row.route, row.status, as_utc(row.first_notified_at))
        for row in session.scalars(
            select(NotificationLogEntry)
            .where(NotificationLogEntry.status != "resolved")
            .order_by(NotificationLogEntry.first_notified_at)
        )
    ]
    silences = []
    for row in session.scalars(select(Silence).order_by(Silence.ends_at)):
        if as_utc(row.ends_at) <= now:
            continue
        scope = (
            None if row.scope_level is None else Scope(Level(row.scope_level), row.scope_name or "")
        )
        silences.append(
            ActiveSilence(row.kpi, scope, row.period_key, as_utc(row.ends_at), row.created_by)
        )
    return alerts, silences


def render_status(status: Status, fmt: Formatter) -> str:
    """The status as an operator reads it: what needs them first (stale data), then the syncs,
    the schedule, unfinished jobs, delivery and the alert pipeline."""

    def when(moment: datetime | None) -> str:
        return (
            fmt.t("dash") if moment is None else f"{moment.astimezone(fmt.zone):%Y-%m-%d %H:%M %Z}"
        )

    labels = {
        key: fmt.t(f"report.{key}")
        for key in ("last_success", "last_sync", "outbox", "failures", "alerts", "silences")
    }
    width = max(len(label) for label in labels.values()) + 1

    def row(key: str, value: str) -> str:
        return f"{labels[key]:<{width}}{value}"

    lines = [fmt.t("report.title", time=when(status.now)), ""]
    if status.stale_since is not None:
        lines += [fmt.t("report.stale", time=when(status.stale_since)), ""]
    lines.append(
        row(
            "last_success",
            when(status.last_success) if status.last_success else fmt.t("report.never"),
        )
    )
    sync = status.last_sync
    if sync is None:
        lines.append(row("last_sync", fmt.t("report.never")))
    else:
        outcome = fmt.t(f"report.sync.{sync.status}")
        if sync.rows_changed is not None:
            outcome = fmt.t(
                "report.sync.with_rows",
                outcome=outcome,
                rows=fmt.tn("report.rows_changed", sync.rows_changed),
            )
        last = fmt.t("report.sync", time=when(sync.started_at), source=sync.source, outcome=outcome)
        lines.append(row("last_sync", last))
        if sync.status == "failed" and sync.detail:
            error = fmt.t("report.error", error=_first_line(sync.detail, 160))
            lines.append(" " * width + error)
    lines += _source_lines(status.sources, when, fmt)
    lines += ["", fmt.t("report.next_runs")]
    for run in sorted(status.next_runs, key=lambda r: (r.at is None, r.at or status.now)):
        # A sync without a source only records a run (installs that import by other means).
        kind = run.kind if run.details.get("source", "-") else "sync_recorded"
        what = fmt.t(f"report.job.{kind}", **run.details)
        lines.append(f"  {when(run.at):<22} {run.job_id:<28} {what}")
    if status.unfinished:
        lines += ["", fmt.t("report.unfinished")]
    for job in status.unfinished:
        lines.append(
            "  "
            + fmt.t("report.claimed", job=job.job_id, time=when(job.fire_time), owner=job.owner)
        )
        if job.error is not None:
            state = fmt.t("report.claim.gave_up", error=_first_line(job.error, 120))
        elif job.takeover_at > status.now:
            state = fmt.t(
                "report.claim.running",
                heartbeat=when(job.heartbeat_at),
                takeover=when(job.takeover_at),
            )
        else:
            state = fmt.t(
                "report.claim.silent",
                heartbeat=when(job.heartbeat_at),
                takeover=when(job.takeover_at),
            )
        lines.append(f"    {state}")
    backlog = status.backlog
    counts = {"pending": backlog.pending, "failed": backlog.failed, "sent": backlog.sent}
    if backlog.oldest_pending is not None:
        outbox = fmt.t("report.outbox.oldest", oldest=when(backlog.oldest_pending), **counts)
    else:
        outbox = fmt.t("report.outbox.counts", **counts)
    lines += ["", row("outbox", outbox)]
    lines.append(row("failures", str(len(status.failures) or fmt.t("report.none"))))
    for failure in status.failures:
        reported = fmt.t(
            "report.failure.reported" if failure.reported else "report.failure.unreported"
        )
        lines.append(
            "  "
            + fmt.tn(
                "report.failure",
                failure.count,
                channel=f"{failure.channel:<14}",
                error=f"{failure.error:<20}",
                first=when(failure.first_at),
                last=when(failure.last_at),
                reported=reported,
            )
        )
    lines.append(row("alerts", str(len(status.alerts) or fmt.t("report.none"))))
    for alert in status.alerts:
        state = _alert_status(alert.status, fmt)
        lines.append(
            "  "
            + fmt.t(
                "report.alert",
                status=f"{state:<8}",
                alert=alert.key,
                route=alert.route,
                time=when(alert.since),
            )
        )
    lines.append(row("silences", str(len(status.silences) or fmt.t("report.none"))))
    for silence in status.silences:
        kpi = KPIS.get(silence.kpi or "")
        parts = [fmt.t("report.any_kpi") if kpi is None else fmt.kpi_label(kpi)]
        parts.append(
            fmt.t("report.any_scope") if silence.scope is None else fmt.scope(silence.scope)
        )
        if silence.period_key:
            parts.append(silence.period_key)
        lines.append(
            "  "
            + fmt.t(
                "report.silence", what=" ".join(parts), time=when(silence.until), user=silence.by
            )
        )
    return "\n".join(lines)


def _first_line(text: str, limit: int) -> str:
    return (text.splitlines() or [""])[0][:limit]


def _alert_status(value: str, fmt: Formatter) -> str:
    """The notification log's status in words (``at_risk``, ``missed``), as the alerts say it."""
    try:
        return fmt.status(EvaluationStatus(value))
    except ValueError:
        return value


def _source_lines(
    sources: list[ObjectSync], when: Callable[[datetime | None], str], fmt: Formatter
) -> list[str]:
    """Per source: its objects' last sync and high-water mark, the API budget, the last error."""
    lines: list[str] = []
    by_source: dict[str, list[ObjectSync]] = {}
    for row in sources:
        by_source.setdefault(row.source, []).append(row)
    for source, rows in by_source.items():
        lines.append(fmt.t("report.source", source=source))
        for row in rows:
            checked = row.object.removesuffix(DELETION_CHECKS.format(""))
            if checked != row.object:
                # Not an object: when the object's deletions were last checked, on their cadence.
                line = fmt.t(
                    "report.source.deletions", object=f"{checked:<18}", time=when(row.synced_at)
                )
                lines.append(f"  {line}")
            elif row.synced_at is not None or row.high_water_mark is not None:
                lines.append(
                    "  "
                    + fmt.t(
                        "report.source.object",
                        object=f"{row.object:<18}",
                        synced=when(row.synced_at),
                        mark=when(row.high_water_mark),
                    )
                )
        budget = next((r for r in rows if r.api_limit is not None), None)
        if budget is not None and budget.api_used is not None and budget.api_limit is not None:
            left = budget.api_limit - budget.api_used
            lines.append(
                "  "
                + fmt.t(
                    "report.source.budget", used=budget.api_used, limit=budget.api_limit, left=left
                )
            )
        errors = [r for r in rows if r.last_error]
        for row in sorted(errors, key=lambda r: r.error_at or datetime.min.replace(tzinfo=UTC)):
            error = _first_line(row.last_error or "", 160)
            lines.append(
                "  "
                + fmt.t(
                    "report.source.error", object=row.object, time=when(row.error_at), error=error
                )
            )
    return lines
