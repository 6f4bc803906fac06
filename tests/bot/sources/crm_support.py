"""What the CRM connector tests share: a migrated SQLite store, settings for the KPI service,
one sync run in a transaction of its own, and reading back what landed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from bot.service import KpiService
from bot.settings import Settings, load_settings
from bot.sources.connector import Connector
from bot.sources.service import SourceReport, sync_connector
from bot.store.database import make_engine, migrate, session_factory, transaction
from bot.store.sync_models import SyncState


@dataclass
class Store:
    engine: Engine
    settings: Settings

    def sync(
        self, source: str, kind: str, connector: Connector, full: bool = False
    ) -> SourceReport:
        with transaction(session_factory(self.engine)) as session:
            return sync_connector(session, source, kind, connector, "EUR", full=full)

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query), params)]

    def marks(self, source: str) -> dict[str, datetime | None]:
        with session_factory(self.engine)() as session:
            states = session.scalars(select(SyncState).where(SyncState.source == source))
            return {state.object: state.high_water_mark for state in states}

    def service(self) -> KpiService:
        return KpiService(self.settings, self.engine)


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


def by_name(report: SourceReport) -> dict[str, Any]:
    return {obj.name: obj for obj in report.objects}
