"""``kpibot clock``: APScheduler 3 drives the runner.

Each planned job is kept in a persistent ``SQLAlchemyJobStore`` on the app database, so that a
process restarted within ``grace_time`` (APScheduler's ``misfire_grace_time``) still runs a job
whose time passed while it was down, once (``coalesce``). A job only carries its id; when it
fires, the runner works out the fire time from its trigger and claims it, so several clocks on
one PostgreSQL database run it once. A recovery job (in memory, every
``recovery_interval``) refreshes the schedule from the subscriptions, runs what nobody ran (a
dead peer's claims), and drains the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.scheduling.plan import PlannedJob
from bot.scheduling.runner import JobOutcome, Runner
from bot.scheduling.runtime import Runtime
from bot.scheduling.triggers import latest_fire_time

log = logging.getLogger(__name__)

STORE = "default"  # persistent, shared: the planned jobs
LOCAL = "local"  # in memory, per process: the recovery pass
RECOVERY_JOB = "recovery"
JOBS_TABLE = "apscheduler_jobs"

_active: Clock | None = None  # the process's clock, for ``fire`` (see there)


def fire(job_id: str) -> None:
    """What the job store stores as each job's function (a textual reference with only the job
    id as argument): job state is pickled, and the runtime (engine, notifier) cannot be."""
    if _active is None:
        raise RuntimeError(f"job {job_id} fired outside a running clock")
    _active.fire(job_id)


class Clock:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.runner = Runner(runtime)
        scheduling = runtime.settings.config.scheduling
        self.scheduler = BackgroundScheduler(
            jobstores={
                STORE: SQLAlchemyJobStore(engine=runtime.engine, tablename=JOBS_TABLE),
                LOCAL: MemoryJobStore(),
            },
            executors={"default": ThreadPoolExecutor(scheduling.workers)},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": int(scheduling.grace_time.total_seconds()),
                "max_instances": 1,
            },
            timezone=runtime.settings.organisation.zone,
        )
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self._plan: dict[str, PlannedJob] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        global _active
        _active = self
        # Paused while the store is reconciled, so that nothing fires half-configured.
        self.scheduler.start(paused=True)
        self.refresh()
        interval = self.runtime.settings.config.scheduling.recovery_interval
        self.scheduler.add_job(
            self.recover,
            "interval",
            seconds=interval.total_seconds(),
            id=RECOVERY_JOB,
            jobstore=LOCAL,
            next_run_time=self.runtime.wall_clock(),  # once at start-up, then periodically
            misfire_grace_time=None,
        )
        self.scheduler.resume()
        log.info("clock started as %s with %d job(s)", self.runtime.claims.owner, len(self._plan))

    def shutdown(self) -> None:
        """Stop firing; wait for running jobs, which finish and mark their claims."""
        global _active
        self.scheduler.shutdown(wait=True)
        _active = None
        log.info("clock stopped")

    # -- jobs ------------------------------------------------------------------------------
    def fire(self, job_id: str) -> JobOutcome | None:
        now = self.runtime.wall_clock()
        job = self._plan.get(job_id)
        if job is None:
            log.warning("job %s is not in the schedule any more", job_id)
            return None
        fire_time = latest_fire_time(
            job.trigger, now, self.runtime.settings.config.scheduling.grace_time
        )
        if fire_time is None:
            return None
        return self.runner.run_one(job, fire_time)

    def recover(self) -> list[JobOutcome]:
        self.refresh()
        outcomes = self.runner.run_due(self.runtime.wall_clock(), list(self._plan.values()))
        drained = self.runtime.notifier.drain()
        if drained.seen:
            log.info("outbox drain: %s", drained.summary())
        return [o for o in outcomes if o.outcome != "taken"]

    def refresh(self) -> None:
        """Bring the job store in line with the plan (new and removed subscriptions, changed
        times) without touching the jobs that did not change: re-adding one would reset its
        next run time and lose a run missed during a restart."""
        plan = self.runtime.plan()
        with self._lock:
            self._plan = {job.id: job for job in plan}
            reconcile(self.scheduler, plan)

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs(jobstore=STORE)}

    def _missed(self, event: JobExecutionEvent) -> None:
        log.warning(
            "job %s missed its run at %s (beyond the grace time)",
            event.job_id,
            event.scheduled_run_time,
        )


def reconcile(scheduler: BackgroundScheduler, plan: Sequence[PlannedJob]) -> None:
    stored = {job.id: job for job in scheduler.get_jobs(jobstore=STORE)}
    for planned in plan:
        existing = stored.pop(planned.id, None)
        if existing is None:
            # A peer process may add it first: same job, same trigger.
            with suppress(ConflictingIdError):
                scheduler.add_job(
                    f"{__name__}:fire",
                    trigger=planned.trigger,
                    args=[planned.id],
                    id=planned.id,
                    jobstore=STORE,
                )
        elif repr(existing.trigger) != repr(planned.trigger):
            scheduler.reschedule_job(planned.id, jobstore=STORE, trigger=planned.trigger)
    for job_id in stored:
        with suppress(JobLookupError):  # a peer may remove it first
            scheduler.remove_job(job_id, jobstore=STORE)
