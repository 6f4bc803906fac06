"""Running due jobs, once: for each job, the latest fire time within the grace time; claim it;
run it; record the outcome. ``kpibot run-due --at`` is this, for one instant; the clock calls it
when APScheduler fires and, periodically, to pick up what a dead process left unfinished."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from bot.delivery.errors import DeliveryError
from bot.scheduling.jobs import run_job
from bot.scheduling.plan import DIGEST, EVALUATE, SYNC, PlannedJob
from bot.scheduling.runtime import Runtime
from bot.scheduling.triggers import latest_fire_time

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"  # the job ran; a delivery failed (recorded in the outbox and reported)
ERROR = "error"  # the job raised; its claim is released so that it is tried again
TAKEN = "taken"  # another process holds or finished this run
_ORDER = {SYNC: 0, EVALUATE: 1, DIGEST: 2}  # fresh data first, then what reads it


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    fire_time: datetime
    outcome: str
    detail: str = ""


class Runner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def due(self, at: datetime, plan: Sequence[PlannedJob]) -> list[tuple[PlannedJob, datetime]]:
        grace = self.runtime.settings.config.scheduling.grace_time
        out = []
        for job in plan:
            fire_time = latest_fire_time(job.trigger, at, grace)
            if fire_time is not None:
                out.append((job, fire_time))
        return out

    def run_due(
        self, at: datetime, plan: Sequence[PlannedJob] | None = None, workers: int | None = None
    ) -> list[JobOutcome]:
        """Run every job due at ``at`` that nobody ran yet: the sync first, then the
        evaluation, then the digests side by side (``scheduling.workers`` threads)."""
        due = self.due(at, self.runtime.plan() if plan is None else plan)
        outcomes: list[JobOutcome] = []
        for kind in (SYNC, EVALUATE):
            outcomes += [self.run_one(job, t) for job, t in due if job.kind == kind]
        fan_out = [(job, t) for job, t in due if _ORDER.get(job.kind, 9) > 1]
        if fan_out:
            self.runtime.service()  # build it once, before the threads share it
            workers = workers or self.runtime.settings.config.scheduling.workers
            with ThreadPoolExecutor(max_workers=min(workers, len(fan_out))) as pool:
                outcomes += list(pool.map(lambda pair: self.run_one(*pair), fan_out))
        return outcomes

    def run_one(self, job: PlannedJob, fire_time: datetime) -> JobOutcome:
        claims = self.runtime.claims
        if not claims.claim(job.id, fire_time):
            return JobOutcome(job.id, fire_time, TAKEN)
        try:
            with claims.heartbeat(job.id, fire_time):
                detail = run_job(self.runtime, job, fire_time)
        except DeliveryError as error:
            # Recorded by the outbox (and reported if permanent); the run itself is over.
            claims.finish(job.id, fire_time, FAILED, str(error))
            return JobOutcome(job.id, fire_time, FAILED, str(error))
        except Exception as error:
            # The boundary between one job and the rest of the schedule: logged with its
            # traceback, kept on the claim for `kpibot status`, and the claim released so that
            # the next recovery pass retries it while it is still within the grace time.
            log.exception("job %s for %s failed", job.id, fire_time.isoformat())
            claims.release(job.id, fire_time, repr(error))
            return JobOutcome(job.id, fire_time, ERROR, repr(error))
        claims.finish(job.id, fire_time, OK, detail)
        log.info("job %s for %s: %s", job.id, fire_time.isoformat(), detail)
        return JobOutcome(job.id, fire_time, OK, detail)
