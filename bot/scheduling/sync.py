"""The CRM sync job's bookkeeping: every run is recorded (running → succeeded | failed), and
the last successful one is the staleness clock. The source itself is a callable that writes
facts in the session it is given and returns how many rows changed: the configured sources
(``bot.sources``), or a no-op for installs that import by other means."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from bot.formatting import Formatter
from bot.settings import ConfigError, Settings
from bot.sources.connector import SourceError
from bot.sources.registry import sync_source
from bot.store.delivery_models import SyncRun
from bot.store.moments import as_utc

log = logging.getLogger(__name__)

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"

SyncSource = Callable[[Session], int]


@dataclass(frozen=True)
class SyncRunState:
    source: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    rows_changed: int | None
    detail: str | None


class SyncRuns:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, source: str, at: datetime) -> int:
        with Session(self.engine) as session, session.begin():
            run = SyncRun(source=source, started_at=at.astimezone(UTC), status=RUNNING)
            session.add(run)
            session.flush()
            return run.id

    def finish(
        self, run_id: int, status: str, at: datetime, rows: int | None = None, detail: str = ""
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(
                    status=status,
                    finished_at=at.astimezone(UTC),
                    rows_changed=rows,
                    detail=detail[:4000] or None,
                )
            )

    def last_success(self) -> datetime | None:
        with self.engine.connect() as connection:
            moment = connection.scalar(
                select(func.max(SyncRun.finished_at)).where(SyncRun.status == SUCCEEDED)
            )
        return as_utc(moment)

    def last_run(self) -> SyncRunState | None:
        with Session(self.engine) as session:
            run = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).first()
            if run is None:
                return None
            return SyncRunState(
                run.source,
                as_utc(run.started_at),
                as_utc(run.finished_at),
                run.status,
                run.rows_changed,
                run.detail,
            )


class SyncIncomplete(Exception):
    """A source stopped part-way: the objects it finished stay written (the caller commits),
    and the run counts as failed, so the data reads as stale until a sync succeeds. ``str()``
    is English, for the log; ``worded`` is what the run records and people read."""

    def __init__(self, source: str, error: SourceError, changed: int) -> None:
        super().__init__(f"{source}: {error}")
        self.source = source
        self.error = error
        self.changed = changed

    def worded(self, fmt: Formatter) -> str:
        return f"{self.source}: {self.error.worded(fmt)}"


@dataclass(frozen=True)
class RecordedSync:
    status: str  # succeeded | failed
    changed: int
    detail: str


# What a failing source raises besides SyncIncomplete: a bad mapping, an unreadable file, rows
# the database refuses.
_SYNC_ERRORS = (ConfigError, OSError, ValueError, LookupError)


def record_sync(
    engine: Engine, name: str, source: SyncSource, fire_time: datetime, fmt: Formatter
) -> RecordedSync:
    """Run ``source`` in one transaction, recorded as a sync run (the staleness clock). A
    failure is logged (in English) and recorded (in ``fmt``'s language), not raised; a source
    that stopped part-way keeps what it finished."""
    runs = SyncRuns(engine)
    started = time.monotonic()
    run_id = runs.start(name, fire_time)

    def finished_at() -> datetime:
        # The run is dated by its fire time (so that ``run-due --at`` replays are coherent)
        # plus the time it really took.
        return fire_time + timedelta(seconds=time.monotonic() - started)

    incomplete: SyncIncomplete | None = None
    try:
        with Session(engine) as session, session.begin():
            try:
                changed = source(session)
            except SyncIncomplete as stopped:  # caught inside: what finished is committed
                incomplete = stopped
    except _SYNC_ERRORS as error:
        log.error("sync %s failed: %s", name, error)
        detail = error.worded(fmt) if isinstance(error, ConfigError) else str(error)
        runs.finish(run_id, FAILED, finished_at(), detail=detail)
        return RecordedSync(FAILED, 0, detail)
    except BaseException as error:
        runs.finish(run_id, FAILED, finished_at(), detail=repr(error))
        raise
    if incomplete is not None:
        log.error("sync %s failed: %s", name, incomplete)
        detail = incomplete.worded(fmt)
        runs.finish(run_id, FAILED, finished_at(), rows=incomplete.changed, detail=detail)
        return RecordedSync(FAILED, incomplete.changed, detail)
    runs.finish(run_id, SUCCEEDED, finished_at(), rows=changed)
    return RecordedSync(SUCCEEDED, changed, "")


def no_sync(session: Session) -> int:
    """The source of installs without ``scheduling.sync_source``: records a run, changes
    nothing."""
    return 0


def configured_source(settings: Settings) -> tuple[str, SyncSource]:
    """The sources named by ``scheduling.sync_source``, synced in turn as one run."""
    names = settings.config.scheduling.sync_sources
    if not names:
        return "none", no_sync
    # Every name is a declared source: the config is refused otherwise when it is loaded.

    def pull(session: Session) -> int:
        changed = 0
        for name in names:
            report = sync_source(session, settings, name)
            changed += report.changed
            if report.error is not None:
                raise SyncIncomplete(name, report.error, changed)
        return changed

    label = "+".join(f"csv:{n}" if n not in settings.config.sources else n for n in names)
    return label, pull
