"""The CRM sync job's bookkeeping: every run is recorded (running → succeeded | failed), and
the last successful one is the staleness clock. The source itself is a callable that writes
facts in the session it is given and returns how many rows changed: the CSV import for now,
or a no-op for installs that import by other means."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from bot.settings import ConfigError, Settings
from bot.store.delivery_models import SyncRun

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


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
        return _utc(moment)

    def last_run(self) -> SyncRunState | None:
        with Session(self.engine) as session:
            run = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).first()
            if run is None:
                return None
            return SyncRunState(
                run.source,
                _utc(run.started_at) or run.started_at,
                _utc(run.finished_at),
                run.status,
                run.rows_changed,
                run.detail,
            )


def no_sync(session: Session) -> int:
    """The source of installs without ``scheduling.sync_source``: records a run, changes
    nothing."""
    return 0


def configured_source(settings: Settings) -> tuple[str, SyncSource]:
    """The source named by ``scheduling.sync_source`` (a CSV source under ``import.csv``)."""
    name = settings.config.scheduling.sync_source
    if name is None:
        return "none", no_sync
    sources = settings.config.imports.csv
    if name not in sources:
        known = ", ".join(sources) or "none"
        raise ConfigError(
            str(settings.config_path),
            [f"scheduling.sync_source: no CSV source {name!r} under import.csv (known: {known})"],
        )
    spec = sources[name]
    base = Path(settings.config_path).parent / spec.base_dir
    currency = settings.organisation.currency

    def import_source(session: Session) -> int:
        from bot.importers.csv_import import import_csv

        report = import_csv(session, name, spec, base, currency)
        return sum(table.changed for table in report.tables)

    return f"csv:{name}", import_source
