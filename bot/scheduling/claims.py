"""Claims: before a process runs a scheduled job it inserts the unique row (job, fire time).
The database picks one winner among concurrent processes; the winner renews a heartbeat while
the job runs and marks the claim finished. A claim whose heartbeat stopped (the process was
killed) is taken over by the next process that looks, which re-runs the job: jobs are
idempotent through the outbox, so a re-run only sends what the dead process had not sent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from bot.store.delivery_models import JobClaim
from bot.store.insert_once import insert_once
from bot.store.moments import as_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimState:
    job_id: str
    fire_time: datetime
    owner: str
    heartbeat_at: datetime
    finished_at: datetime | None
    outcome: str | None
    detail: str | None


class Claims:
    def __init__(
        self, engine: Engine, owner: str, clock: Callable[[], datetime], lease: timedelta
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.lease = lease

    def claim(self, job_id: str, fire_time: datetime) -> bool:
        """True if this process may run (job_id, fire_time): nobody had claimed it, or its
        claimant stopped beating before finishing."""
        fire_time = as_utc(fire_time)
        now = self.clock()
        row = {
            "job_id": job_id,
            "fire_time": fire_time,
            "owner": self.owner,
            "claimed_at": now,
            "heartbeat_at": now,
        }
        with self.engine.begin() as connection:
            if insert_once(connection, JobClaim.__table__, row, ["job_id", "fire_time"]):  # type: ignore[arg-type]
                return True
            taken = connection.execute(
                update(JobClaim)
                .where(
                    JobClaim.job_id == job_id,
                    JobClaim.fire_time == fire_time,
                    JobClaim.finished_at.is_(None),
                    JobClaim.heartbeat_at < now - self.lease,
                )
                .values(owner=self.owner, claimed_at=now, heartbeat_at=now)
            )
        if taken.rowcount == 1:
            log.warning("took over %s at %s: its claimant stopped", job_id, fire_time)
            return True
        return False

    def beat(self, job_id: str, fire_time: datetime) -> bool:
        """Renew the heartbeat; False if another process took the claim over meanwhile."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(JobClaim)
                .where(
                    JobClaim.job_id == job_id,
                    JobClaim.fire_time == as_utc(fire_time),
                    JobClaim.owner == self.owner,
                )
                .values(heartbeat_at=self.clock())
            )
        return bool(result.rowcount == 1)

    def finish(self, job_id: str, fire_time: datetime, outcome: str, detail: str = "") -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(JobClaim)
                .where(
                    JobClaim.job_id == job_id,
                    JobClaim.fire_time == as_utc(fire_time),
                    JobClaim.owner == self.owner,
                )
                .values(finished_at=self.clock(), outcome=outcome, detail=detail[:2000])
            )

    def release(self, job_id: str, fire_time: datetime, detail: str) -> None:
        """Give the run up unfinished (it raised): any process may claim it again at once."""
        with self.engine.begin() as connection:
            connection.execute(
                update(JobClaim)
                .where(
                    JobClaim.job_id == job_id,
                    JobClaim.fire_time == as_utc(fire_time),
                    JobClaim.owner == self.owner,
                )
                .values(
                    heartbeat_at=datetime(1970, 1, 1, tzinfo=UTC),
                    outcome="error",
                    detail=detail[:2000],
                )
            )

    @contextmanager
    def heartbeat(self, job_id: str, fire_time: datetime) -> Iterator[None]:
        """Keep the claim alive while the block runs (a digest fan-out may wait out rate
        limits for longer than the lease)."""
        stop = threading.Event()
        interval = max(self.lease.total_seconds() / 3, 0.05)

        def beat() -> None:
            while not stop.wait(interval):
                if not self.beat(job_id, fire_time):
                    log.error("lost the claim on %s at %s to another process", job_id, fire_time)
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat {job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def get(self, job_id: str, fire_time: datetime) -> ClaimState | None:
        with Session(self.engine) as session:
            row = session.get(JobClaim, (job_id, as_utc(fire_time)))
            return None if row is None else _state(row)

    def recent(self, limit: int = 20) -> list[ClaimState]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(JobClaim).order_by(JobClaim.claimed_at.desc()).limit(limit)
            ).all()
            return [_state(row) for row in rows]


def _state(row: JobClaim) -> ClaimState:
    return ClaimState(
        job_id=row.job_id,
        fire_time=as_utc(row.fire_time),
        owner=row.owner,
        heartbeat_at=as_utc(row.heartbeat_at),
        finished_at=as_utc(row.finished_at),
        outcome=row.outcome,
        detail=row.detail,
    )
