"""What each scheduled job does, for the fire time it runs for. Every job can run again for
the same fire time (after a crash, on another process) without sending anything twice: each
message goes through the outbox under a key derived from the fire time.

Each job returns a one-line summary in the organisation's language (the catalogs' ``job.*``
messages): ``kpibot run-due`` prints it, ``/kpi sync`` answers with it, and the job's claim keeps
it for ``kpibot status``. The log line around it stays English, for operators and grep."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.alerting import run_alerts
from bot.digests import digest_key, post_digest
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
    fmt = Formatter.for_organisation(runtime.settings.organisation)
    run = record_sync(runtime.engine, runtime.sync_name, runtime.sync_source, fire_time, fmt)
    if run.changed:
        # Here, in the clock, not in the next request: serving processes map the snapshot.
        runtime.service().refresh_facts()
    if run.status != SUCCEEDED:
        return fmt.t("job.sync.failed", source=runtime.sync_name, error=run.detail)
    stale_after = runtime.settings.config.scheduling.stale_after
    resolved = _staleness(runtime).resolve(fire_time, stale_after)
    parts = [fmt.tn("report.rows_changed", run.changed)]
    if resolved:
        parts.append(fmt.tn("job.stale_resolved", resolved))
    return fmt.t("job.sync.done", source=runtime.sync_name, outcome=fmt.t("sep").join(parts))


def evaluate(runtime: Runtime, fire_time: datetime) -> str:
    settings = runtime.settings
    fmt = Formatter.for_organisation(settings.organisation)
    # Before the alert pipeline reads the notification log: it reads what is left.
    pruned = prune(runtime.engine, fire_time - settings.config.delivery.retention)
    stale_after = settings.config.scheduling.stale_after
    since = stale_since(SyncRuns(runtime.engine).last_success(), fire_time, stale_after)
    if since is not None:
        _staleness(runtime).notice(since, fire_time, stale_after)
    run = run_alerts(
        runtime.service(), runtime.dispatcher, fire_time, stale_since=since, users=runtime.users
    )
    parts = [fmt.tn("job.alerts_sent", len(run.sent)), fmt.tn("job.resolutions", len(run.resolved))]
    if run.failed:
        parts.append(fmt.tn("job.failed", len(run.failed)))
    if since is not None:
        parts.append(fmt.t("job.held_stale", time=fmt.datetime(since)))
    if run.held_until is not None:
        parts.append(fmt.t("job.held_quiet", time=fmt.datetime(run.held_until)))
    if pruned.total:
        parts.append(fmt.tn("job.pruned", pruned.total))
    return fmt.t("sep").join(parts)


def digest(runtime: Runtime, job: PlannedJob, fire_time: datetime) -> str:
    fmt = Formatter.for_organisation(runtime.settings.organisation)
    subscriptions = {s.id: s for s in runtime.subscriptions()}
    subscription = subscriptions.get(job.subscription_id or "")
    if subscription is None:
        return fmt.t("job.digest.gone", subscription=job.subscription_id)
    delivered = post_digest(runtime.service(), runtime.dispatcher, subscription, fire_time, fmt)
    return f"{digest_key(subscription, fire_time)} → {delivered.channel} {delivered.ts}"
