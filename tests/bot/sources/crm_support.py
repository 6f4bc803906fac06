"""What the CRM connector tests share: a migrated SQLite store, settings for the KPI service,
one sync run in a transaction of its own, and reading back what landed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from bot.formatting import Formatter
from bot.importers.csv_import import import_csv
from bot.service import KpiService
from bot.settings import ColumnMap, CsvSource, Settings, load_settings
from bot.sources.connector import Connector
from bot.sources.service import Progress, SourceReport, sync_connector
from bot.store.database import make_engine, migrate, session_factory, transaction
from bot.store.sync_models import SyncState
from tests.conftest import postgres_engine


@dataclass
class Store:
    engine: Engine
    settings: Settings

    def sync(
        self,
        source: str,
        kind: str,
        connector: Connector,
        full: bool = False,
        progress: Progress | None = None,
        now: datetime | None = None,
    ) -> SourceReport:
        clock = {} if now is None else {"now": lambda: now}
        with transaction(session_factory(self.engine)) as session:
            fmt = Formatter.for_organisation(self.settings.organisation)
            return sync_connector(
                session, source, kind, connector, "EUR", fmt, full=full, progress=progress,
                **clock,
            )  # fmt: skip

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query), params)]

    def marks(self, source: str) -> dict[str, datetime | None]:
        with session_factory(self.engine)() as session:
            states = session.scalars(select(SyncState).where(SyncState.source == source))
            return {state.object: state.high_water_mark for state in states}

    def service(self) -> KpiService:
        return KpiService(self.settings, self.engine)

    def hr_reps(self, folder: Path, reps: list[tuple[str, str, str]]) -> dict[str, int]:
        """Reps (name, email, team) imported from an HR export as source ``hr``, through the
        CSV import; their database ids by name."""
        lines = ["name,email,team", *(",".join(rep) for rep in reps)]
        (folder / "hr_reps.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        columns = {"name": "name", "email": "email", "team": "team"}
        spec = CsvSource(reps=ColumnMap(file="hr_reps.csv", columns=columns))
        with transaction(session_factory(self.engine)) as session:
            report = import_csv(session, "hr", spec, folder, "EUR")
        assert not report.problems, report.problems
        found = self.rows("SELECT name, id FROM reps WHERE source = 'hr'")
        return {str(name): int(rep_id) for name, rep_id in found}

    def owners(self, source: str) -> dict[str, str]:
        """Each deal of ``source`` (by CRM id) → its owner's name and source."""
        rows = self.rows(
            "SELECT o.source_id, r.name, r.source FROM opportunities o JOIN reps r "
            "ON r.id = o.owner_id WHERE o.source = :source",
            source=source,
        )
        return {str(deal): f"{name} ({rep_source})" for deal, name, rep_source in rows}


def make_store(tmp_path: Path) -> Store:
    config = tmp_path / "kpibot.yaml"
    config.write_text(
        "organisation: {currency: EUR, timezone: Europe/Paris, locale: en_US}\n"
        "evaluation: {min_sample: 1}\n",
        encoding="utf-8",
    )
    settings = load_settings(config, {"DATABASE_URL": f"sqlite:///{tmp_path / 'kpibot.db'}"})
    engine = make_engine(settings.database_url)
    migrate(engine)
    return Store(engine, settings)


def store_on(database: str, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on ``sqlite``, or on ``postgresql``: a fresh schema of the test server
    (skipped when none is given), with the same settings."""
    local = make_store(tmp_path)
    if database == "sqlite":
        yield local
        return
    for engine in postgres_engine():
        migrate(engine)
        yield Store(engine, local.settings)


def by_name(report: SourceReport) -> dict[str, Any]:
    return {obj.name: obj for obj in report.objects}
