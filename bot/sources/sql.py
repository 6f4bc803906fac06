"""Any SQL database or warehouse SQLAlchemy can reach (PostgreSQL, and Snowflake, BigQuery,
Redshift... with their dialect installed): one SELECT per canonical table, read in chunks,
mapped like a CSV file, and incremental on a configured ``updated_at`` column. A query has no
feed of deleted rows: a full sync (the first, or ``--full``) deletes the rows it no longer
returns (``bot.sources.service``), an incremental one deletes nothing.

A full read from PostgreSQL goes through Apache Arrow's ADBC driver instead
(``cell_batches``): its rows arrive as Arrow columns filled in C, made text cells a column at
a time (``bot.sources.cells``; a date field's dates stay dates), where the DB-API path made a
Python object of every value, a record of every row and a text of every cell (a million deals
and two million leads: 64 s for the whole sync, most of it there). Incremental reads, which
return what changed since the last sync, stay on the DB-API path, as does a query returning a
column whose values a DB-API driver could give otherwise than as the cells of ``text_cells``
(a timestamp)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
from adbc_driver_postgresql import StatementOptions as adbc_postgresql_options
from adbc_driver_postgresql import dbapi as adbc_postgresql
from sqlalchemy import Result, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.importers.canonical import KINDS, FieldType
from bot.importers.values import KINDS_BY_NAME
from bot.settings import SqlSource, SqlTable
from bot.sources.cells import field_cells, text_convertible
from bot.sources.connector import Budget, CellBatch, Record, SourceError, SourceObject

log = logging.getLogger(__name__)
# Bytes per Arrow batch a query's read asks for (a hint): the import reads each batch while the
# next is fetched, so smaller batches than the driver's 16 MB overlap more (a million deals
# read in 1.2-1.5 s with 4 MB, 1.5-2.0 s with 1 MB, 1.5-1.9 s with 16 MB).
_BATCH_BYTES = 4 << 20


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
        self._url = url
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
            raise self._failed(obj, error) from None

    def cell_batches(self, obj: SourceObject, since: datetime | None) -> Iterator[CellBatch] | None:
        """A full read (``since`` None) from PostgreSQL as Arrow, through ADBC; None for any
        other read, which ``changed`` makes."""
        if since is not None or self._engine.dialect.name != "postgresql":
            return None
        table: SqlTable = getattr(self.spec, obj.table)
        uri = make_url(self._url).set(drivername="postgresql").render_as_string(False)
        try:
            connection = adbc_postgresql.connect(uri)
        except adbc_driver_manager.Error as error:
            # Only slower row by row, through the driver the URL names, which may connect
            # where this one cannot (an authentication method its libpq was built without).
            first = str(error).splitlines()[0]
            log.warning("%s: reading %s row by row, not as Arrow: %s", self.name, obj.table, first)
            return None
        try:
            cursor = connection.cursor()
            cursor.adbc_statement.set_options(
                **{adbc_postgresql_options.BATCH_SIZE_HINT_BYTES.value: str(_BATCH_BYTES)}
            )
            self.calls += 1
            cursor.execute(table.query.strip().rstrip(";"))
            reader = cursor.fetch_record_batch()
            self._check_columns(obj, table, reader.schema.names)
            types = [reader.schema.field(column).type for column in table.columns.values()]
        except adbc_driver_manager.Error as error:
            connection.close()
            raise self._failed(obj, error) from None
        except BaseException:  # a column missing from the query's
            connection.close()
            raise
        if not all(text_convertible(kind) for kind in types):
            connection.close()
            return None
        return self._cell_batches(obj, table, connection, cursor, reader)

    def _cell_batches(
        self,
        obj: SourceObject,
        table: SqlTable,
        connection: Any,
        cursor: Any,  # the reader's: closing it (as collecting it does) closes the reader
        reader: pa.RecordBatchReader,
    ) -> Iterator[CellBatch]:
        # With a date format, dates are read as text, as the row-by-row read reads them.
        kind = KINDS_BY_NAME[obj.table]
        dates = set()
        if table.date_format is None:
            dates = {field for field in table.columns if kind.fields[field] is FieldType.DATE}
        try:
            for batch in reader:
                cells = [
                    field_cells(batch.column(column), field in dates)
                    for field, column in table.columns.items()
                ]
                modified = None
                if table.updated_at is not None:
                    modified = _latest(batch.column(table.updated_at))
                yield CellBatch(
                    pa.RecordBatch.from_arrays(cells, names=list(table.columns)), modified
                )
        except adbc_driver_manager.Error as error:
            raise self._failed(obj, error) from None
        finally:
            cursor.close()
            connection.close()

    def _failed(self, obj: SourceObject, error: Exception) -> SourceError:
        first = str(error).splitlines()[0]
        return SourceError(
            "source.sql.query_failed", source=self.name, table=obj.table, error=first
        )

    def _check_columns(self, obj: SourceObject, table: SqlTable, names: Sequence[str]) -> None:
        """Every column the mapping (and ``updated_at``) names is among the query's ``names``."""
        wanted = list(table.columns.values())
        if table.updated_at is not None:
            wanted.append(table.updated_at)
        missing = [column for column in wanted if column not in names]
        if missing:
            raise SourceError(
                "source.sql.no_column", source=self.name, table=obj.table,
                column=repr(missing[0]), columns=", ".join(names),
            )  # fmt: skip

    def _records(self, obj: SourceObject, table: SqlTable, result: Result[Any]) -> Iterator[Record]:
        self._check_columns(obj, table, list(result.keys()))
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


def _latest(values: pa.Array[Any]) -> datetime | None:
    """The latest of ``values`` as ``_records`` reads each: a timestamp as it is, any other
    value through its ISO text."""
    if pa.types.is_timestamp(values.type):
        latest: datetime | None = pc.max(values).as_py()
        return latest
    moments = [
        value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        for value in values.to_pylist()
        if value is not None
    ]
    return max(moments, default=None)


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"
