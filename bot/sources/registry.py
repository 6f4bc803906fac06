"""Source names to syncs: a name under ``sources`` (any kind) or, as before, under
``import.csv``; the connector of each kind built from its settings and secrets."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from bot.formatting import Formatter
from bot.settings import (
    ConfigError,
    ConfigProblem,
    CsvSyncSource,
    HubSpotSource,
    PipedriveSource,
    SalesforceSource,
    Settings,
    SourceSpec,
    SqlSource,
)
from bot.sources.connector import Connector, SourceError
from bot.sources.service import Progress, SourceReport, sync_connector, sync_csv


def source_names(settings: Settings) -> list[str]:
    return [*settings.config.sources, *settings.config.imports.csv]


def check_source(settings: Settings, name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` (typed by someone) is a configured source."""
    if name not in settings.config.sources and name not in settings.config.imports.csv:
        declared = source_names(settings)
        code = "no_source" if declared else "no_source.none"
        named = {"name": repr(name), "known": ", ".join(declared)}
        raise ConfigError(str(settings.config_path), [ConfigProblem("source", code, named)])


def connector_for(name: str, spec: SourceSpec, settings: Settings) -> Connector:
    # Each connector is imported when its kind is synced: the CRM clients (simple-salesforce,
    # httpx, hubspot-api-client) took 0.4-0.6 s of every `kpibot sync` of a SQL or CSV source.
    secrets = settings.secrets.sources.get(name, {})
    if isinstance(spec, SqlSource):
        from bot.sources.sql import SqlConnector

        return SqlConnector(name, spec, secrets.get("url"))
    if isinstance(spec, SalesforceSource):
        from bot.sources.salesforce import SalesforceConnector

        return SalesforceConnector(name, spec, secrets)
    if isinstance(spec, HubSpotSource):
        from bot.sources.hubspot import HubSpotConnector

        return HubSpotConnector(name, spec, secrets)
    if isinstance(spec, PipedriveSource):
        from bot.sources.pipedrive import PipedriveConnector

        return PipedriveConnector(name, spec, secrets)
    raise ConfigError(
        str(settings.config_path), [f"sources.{name}.kind: {spec.kind} is not a connector"]
    )


def sync_source(
    session: Session,
    settings: Settings,
    name: str,
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> SourceReport:
    """Sync ``name``, a declared source, in ``session`` (the caller commits, or rolls back
    for a dry run)."""
    currency = settings.organisation.currency
    base = Path(settings.config_path).parent
    spec = settings.config.sources.get(name)
    if spec is None or isinstance(spec, CsvSyncSource):
        csv = spec or settings.config.imports.csv[name]
        return sync_csv(session, name, csv, base / csv.base_dir, currency)
    try:
        connector = connector_for(name, spec, settings)
    except SourceError as error:
        return SourceReport(name, spec.kind, full, error=error)
    try:
        return sync_connector(
            session, name, spec.kind, connector, spec.currency or currency,
            Formatter.for_organisation(settings.organisation), full=full, progress=progress,
        )  # fmt: skip
    finally:
        connector.close()
