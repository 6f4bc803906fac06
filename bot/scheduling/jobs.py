"""What each scheduled job does, for the fire time it runs for. Every job can run again for
the same fire time (after a crash, on another process) without sending anything twice: each
message goes through the outbox under a key derived from the fire time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.formatting import Formatter
from bot.scheduling.plan import DIGEST, EVALUATE, SYNC, PlannedJob
from bot.scheduling.runtime import Runtime
from bot.scheduling.staleness import Staleness, stale_since
from bot.scheduling.sync import SUCCEEDED, SyncRuns, record_sync
from bot.store.retention import prune

log = logging.getLogger(__name__)


def run_job(runtime: Runtime, job: PlannedJob, fire_time: datetime) -> str:
    """Run ``job`` for ``fire_time``; returns a one-line summary for the claim and the log."""
    if job.kind == SYNC:
        return sync(runtime, fire_time)
    if job.kind == EVALUATE:
        return evaluate(runtime, fire_time)
    if job.kind == DIGEST:
        return digest(runtime, job, fire_time)
    raise ValueError(f"unknown job kind {job.kind!r}")


def _staleness(runtime: Runtime) -> Staleness:
    admin = runtime.settings.config.slack.notices_channel
    zone = runtime.settings.organisation.timezone
    return Staleness(runtime.engine, runtime.dispatcher, admin, zone)


def sync(runtime: Runtime, fire_time: datetime) -> str:
    run = record_sync(runtime.engine, runtime.sync_name, runtime.sync_source, fire_time)
    if run.status != SUCCEEDED:
        return f"sync {runtime.sync_name} failed: {run.detail}"
    stale_after = runtime.settings.config.scheduling.stale_after
    resolved = _staleness(runtime).resolve(fire_time, stale_after)
    note = f"; stale-data notice resolved ({resolved})" if resolved else ""
    return f"sync {runtime.sync_name}: {run.changed} row(s) changed{note}"


def evaluate(runtime: Runtime, fire_time: datetime) -> str:
    from bot.alerting import run_alerts

    settings = runtime.settings
    # Before the alert pipeline reads the notification log: it reads what is left.
    pruned = prune(runtime.engine, fire_time - settings.config.delivery.retention)
    stale_after = settings.config.scheduling.stale_after
    since = stale_since(SyncRuns(runtime.engine).last_success(), fire_time, stale_after)
    if since is not None:
        _staleness(runtime).notice(since, fire_time, stale_after)
    run = run_alerts(
        runtime.service(), runtime.dispatcher, fire_time, stale_since=since, users=runtime.users
    )
    parts = [f"{len(run.sent)} alert message(s)", f"{len(run.resolved)} resolution(s)"]
    if run.failed:
        parts.append(f"{len(run.failed)} failed")
    if since is not None:
        parts.append(f"alerts held: data stale since {since.astimezone(UTC):%Y-%m-%d %H:%M}Z")
    if run.held_until is not None:
        parts.append(f"held until {run.held_until.isoformat()} (quiet hours)")
    if pruned.total:
        parts.append(f"pruned {pruned.total} row(s) older than delivery.retention")
    return ", ".join(parts)


def digest(runtime: Runtime, job: PlannedJob, fire_time: datetime) -> str:
    from bot.digests import digest_notification

    subscriptions = {s.id: s for s in runtime.subscriptions()}
    subscription = subscriptions.get(job.subscription_id or "")
    if subscription is None:
        return f"skipped: subscription {job.subscription_id} no longer exists"
    fmt = Formatter.for_organisation(runtime.settings.organisation)
    notification = digest_notification(runtime.service(), subscription, fire_time, fmt)
    delivered = runtime.dispatcher.send(notification)
    return f"{notification.idempotency_key} → {delivered.channel} {delivered.ts}"
