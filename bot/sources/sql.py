"""Any SQL database or warehouse SQLAlchemy can reach (PostgreSQL, and Snowflake, BigQuery,
Redshift... with their dialect installed): one SELECT per canonical table, read in chunks,
mapped like a CSV file, and incremental on a configured ``updated_at`` column. A query has no
feed of deleted rows: a full sync (the first, or ``--full``) deletes the rows it no longer
returns (``bot.sources.service``), an incremental one deletes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Result, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.importers.canonical import KINDS
from bot.settings import SqlSource, SqlTable
from bot.sources.connector import Budget, Record, SourceError, SourceObject


class SqlConnector:
    def __init__(self, name: str, spec: SqlSource, url: str | None) -> None:
        if not url:
            prefix = spec.env_prefix or "SQL"
            raise SourceError("source.sql.no_url", source=name, variable=f"{prefix}_URL")
        try:
            self._engine: Engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, ImportError, ValueError) as error:
            raise SourceError(
                "source.sql.bad_url", source=name, url=_redacted(url), error=str(error)
            ) from None
        self.name = name
        self.spec = spec
        self.calls = 0
        self.totals: dict[str, int] = {}  # a streamed query's length is not known ahead

    def objects(self) -> list[SourceObject]:
        out = []
        for kind in KINDS:
            table: SqlTable | None = getattr(self.spec, kind.name)
            if table is not None:
                stages = dict(table.stages)
                out.append(
                    SourceObject(
                        kind.name, kind.name, tuple(table.columns), stages, table.date_format
                    )
                )
        return out

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        table: SqlTable = getattr(self.spec, obj.table)
        query = table.query.strip().rstrip(";")
        params: dict[str, Any] = {}
        if table.updated_at is not None and since is not None:
            quote = self._engine.dialect.identifier_preparer.quote
            query = (
                f"SELECT * FROM ({query}) AS kpibot_source "
                f"WHERE kpibot_source.{quote(table.updated_at)} >= :since"
            )
            params["since"] = since
        try:
            with self._engine.connect() as connection:
                self.calls += 1
                result = connection.execution_options(
                    stream_results=True, yield_per=self.spec.chunk_rows
                ).execute(text(query), params)
                # A server-side cursor: closed here even when the caller stops reading early.
                try:
                    yield from self._records(obj, table, result)
                finally:
                    result.close()
        except SQLAlchemyError as error:
            first = str(error).splitlines()[0]
            raise SourceError(
                "source.sql.query_failed", source=self.name, table=obj.table, error=first
            ) from None

    def _records(self, obj: SourceObject, table: SqlTable, result: Result[Any]) -> Iterator[Record]:
        names = list(result.keys())
        wanted = list(table.columns.values())
        if table.updated_at is not None:
            wanted.append(table.updated_at)
        missing = [column for column in wanted if column not in names]
        if missing:
            raise SourceError(
                "source.sql.no_column", source=self.name, table=obj.table,
                column=repr(missing[0]), columns=", ".join(names),
            )  # fmt: skip
        for row in result.mappings():
            values = {field: row[column] for field, column in table.columns.items()}
            modified = row[table.updated_at] if table.updated_at is not None else None
            if modified is not None and not isinstance(modified, datetime):
                modified = datetime.fromisoformat(str(modified))
            yield Record(values, modified)

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        return iter(())

    def budget(self) -> Budget | None:
        return None

    def close(self) -> None:
        self._engine.dispose()


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"
