"""The SQL source against the local PostgreSQL: a CRM schema read through SELECTs from the
config, `kpibot sync` printing per-table counts, an incremental sync reading only changed rows,
a failing query leaving its table and high-water mark as they were, and a KPI answer on the
synced rows checked against the source rows summed here."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import adbc_driver_manager
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, text

from bot.cli import main
from bot.importers.csv_import import RecordImport
from bot.settings import SqlSource, load_settings
from bot.sources import service
from bot.sources.sql import SqlConnector
from bot.store import first_load
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

SCHEMA_SQL = """
CREATE TABLE {s}.users (id text PRIMARY KEY, full_name text, email text, team text,
                        updated_at timestamptz NOT NULL);
CREATE TABLE {s}.deals (id text PRIMARY KEY, title text, owner_id text, company text,
                        stage text, value numeric, currency text, created date, closed date,
                        updated_at timestamptz NOT NULL);
"""
USERS = [
    ("u1", "Alice Martin", "alice@example.test", "Paris", "2026-11-01T08:00:00Z"),
    ("u2", "Bruno Keller", "bruno@example.test", "Zurich", "2026-11-01T08:00:00Z"),
]
DEALS = [
    ("d1", "Acme renewal", "u1", "Acme", "Closed Won", "1200.50", "EUR", "2026-10-01",
     "2026-10-20", "2026-11-02T09:00:00Z"),
    ("d2", "Globex", "u2", "Globex", "Closed Won", "800", "EUR", "2026-10-03", "2026-11-05",
     "2026-11-05T10:00:00Z"),
    ("d3", "Initech", "u2", "Initech", "Negotiation", "5000", "EUR", "2026-10-10", "2026-12-15",
     "2026-11-06T10:00:00Z"),
    ("d4", "Hooli", "u1", "Hooli", "Closed Lost", "300", "EUR", "2026-10-11", "2026-11-01",
     "2026-11-06T11:00:00Z"),
    ("d5", "Bad stage", "u1", "Acme", "Sleeping", "10", "EUR", "2026-10-12", "2026-12-01",
     "2026-11-06T11:30:00Z"),
]  # fmt: skip

CONFIG = """
organisation: {{currency: EUR, timezone: Europe/Paris, locale: en_US}}
database: {{url: "sqlite:///kpibot.db"}}
sources:
  warehouse:
    kind: sql
    env_prefix: WAREHOUSE
    chunk_rows: 2
    reps:
      query: "SELECT id, full_name, email, team, updated_at FROM {s}.users"
      columns: {{id: id, name: full_name, email: email, team: team}}
      updated_at: updated_at
    opportunities:
      query: "SELECT * FROM {s}.deals"
      columns: {{id: id, name: title, owner: owner_id, account: company, stage: stage,
                amount: value, currency: currency, created_at: created, close_date: closed}}
      stages: {{Negotiation: open, Closed Won: won, Closed Lost: lost}}
      updated_at: updated_at
scheduling:
  sync_source: warehouse
"""


@dataclass
class Warehouse:
    engine: Engine
    schema: str
    config: Path

    def execute(self, statement: str, **params: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(statement.format(s=self.schema)), params)

    def cli(self, *args: str) -> Result:
        env = {"WAREHOUSE_URL": POSTGRES_URL or ""}
        return CliRunner().invoke(main, ["--config", str(self.config), *args], env=env)

    def store(self, query: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.config.parent / "kpibot.db") as connection:
            return connection.execute(query).fetchall()


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    if not POSTGRES_URL:
        pytest.skip("KPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    schema = f"crm_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES_URL)
    config = tmp_path / "kpibot.yaml"
    config.write_text(CONFIG.format(s=schema), encoding="utf-8")
    world = Warehouse(engine, schema, config)
    world.execute("CREATE SCHEMA {s}")
    for statement in SCHEMA_SQL.split(";"):
        if statement.strip():
            world.execute(statement)
    for row in USERS:
        world.execute(
            "INSERT INTO {s}.users VALUES (:a, :b, :c, :d, :e)",
            **dict(zip("abcde", row, strict=True)),
        )
    for row in DEALS:
        world.execute(
            "INSERT INTO {s}.deals VALUES (:a, :b, :c, :d, :e, CAST(:f AS numeric), :g, "
            "CAST(:h AS date), CAST(:i AS date), CAST(:j AS timestamptz))",
            **dict(zip("abcdefghij", row, strict=True)),
        )
    try:
        yield world
    finally:
        world.execute("DROP SCHEMA {s} CASCADE")
        engine.dispose()


def won_in_november(warehouse: Warehouse) -> Decimal:
    """Revenue computed on the source rows, not through kpibot."""
    with warehouse.engine.connect() as connection:
        total = connection.scalar(
            text(
                f"SELECT coalesce(sum(value), 0) FROM {warehouse.schema}.deals "
                "WHERE stage = 'Closed Won' AND closed BETWEEN '2026-11-01' AND '2026-11-30'"
            )
        )
    return Decimal(total)


def test_full_then_incremental_sync_with_counts_rejections_and_a_kpi(warehouse: Warehouse):
    first = warehouse.cli("sync")
    assert first.exit_code == 0, first.output
    out = first.stdout
    assert "warehouse (sql, full sync):" in out
    assert "reps → reps: fetched 2, inserted 2, updated 0, deleted 0, rejected 0" in out
    assert (
        "opportunities → opportunities: fetched 5, inserted 4, updated 0, deleted 0, "
        "rejected 1; 1 API call; high-water mark 2026-11-06 11:30:00Z" in out
    )
    assert "rejected opportunities d5: stage: unknown stage 'Sleeping'" in out
    # Progress goes to stderr, one plain line per object when it is not a terminal.
    assert "  opportunities: 5 fetched, done" in first.stderr
    rows = warehouse.store(
        "SELECT o.source_id, o.amount, o.is_won, o.is_closed, r.name, a.name "
        "FROM opportunities o JOIN reps r ON r.id = o.owner_id "
        "JOIN accounts a ON a.id = o.account_id ORDER BY o.source_id"
    )
    assert rows == [
        ("d1", 1200.5, 1, 1, "Alice Martin", "Acme"),
        ("d2", 800, 1, 1, "Bruno Keller", "Globex"),
        ("d3", 5000, 0, 0, "Bruno Keller", "Initech"),
        ("d4", 300, 0, 1, "Alice Martin", "Hooli"),
    ]

    # Nothing changed: only the rows at the high-water mark are read again, and nothing moves.
    again = warehouse.cli("sync")
    assert "opportunities → opportunities: fetched 1, inserted 0, updated 0" in again.stdout
    assert "0 rows changed" in again.stdout

    # Two deals change (one is won), one is new; the incremental sync reads those, and the row
    # at the previous mark again (marks are inclusive, so that a row written in the same
    # instant as the mark, after the last sync read, is not missed).
    warehouse.execute(
        "UPDATE {s}.deals SET stage = 'Closed Won', closed = '2026-11-20', "
        "updated_at = '2026-11-21T09:00:00Z' WHERE id = 'd3'"
    )
    warehouse.execute(
        "UPDATE {s}.deals SET value = 900, updated_at = '2026-11-21T09:05:00Z' WHERE id = 'd2'"
    )
    warehouse.execute(
        "INSERT INTO {s}.deals VALUES ('d6', 'Umbrella', 'u1', 'Umbrella', 'Negotiation', 700, "
        "'EUR', '2026-11-10', '2027-01-15', '2026-11-21T09:10:00Z')"
    )
    third = warehouse.cli("sync")
    assert third.exit_code == 0, third.output
    assert (
        "opportunities → opportunities: fetched 4, inserted 1, updated 2, deleted 0, "
        "rejected 1; 1 API call; high-water mark 2026-11-21 09:10:00Z" in third.stdout
    )

    answer = warehouse.cli("ask", "revenue", "2026-11", "--json", "--as-of", "2026-11-30")
    assert answer.exit_code == 0, answer.output
    value = json.loads(answer.stdout)["value"]
    assert won_in_november(warehouse) == Decimal("5900")
    assert value == pytest.approx(float(won_in_november(warehouse)))

    status = warehouse.cli("status")
    assert "Source warehouse:" in status.stdout
    assert "high-water mark 2026-11-21 10:10 CET" in status.stdout


def test_the_first_kpibot_sync_has_the_store_to_itself_for_its_first_load(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
):
    """``kpibot sync`` leaves no other connection open beside its write, so that a first sync
    is written through a rollback journal (``bot.store.first_load``); later ones are not."""
    switched: list[bool] = []

    def recorded(session: Any) -> bool:
        switched.append(first_load.written_once(session))
        return switched[-1]

    monkeypatch.setattr(service, "written_once", recorded)
    assert warehouse.cli("sync").exit_code == 0
    assert warehouse.cli("sync").exit_code == 0
    assert switched == [True, False]
    assert warehouse.store("PRAGMA journal_mode") == [("wal",)]
    assert warehouse.store("SELECT count(*) FROM opportunities") == [(4,)]


def test_dry_run_prints_the_counts_and_writes_nothing(warehouse: Warehouse):
    result = warehouse.cli("sync", "warehouse", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "opportunities → opportunities: fetched 5, inserted 4" in result.stdout
    assert "dry run: nothing was written" in result.stdout
    assert warehouse.store("SELECT count(*) FROM opportunities") == [(0,)]
    assert warehouse.store("SELECT count(*) FROM sync_state") == [(0,)]


def test_a_failing_query_keeps_that_table_and_its_mark_and_fails_the_run(warehouse: Warehouse):
    assert warehouse.cli("sync").exit_code == 0
    marks = warehouse.store("SELECT object, high_water_mark FROM sync_state ORDER BY object")
    warehouse.execute("UPDATE {s}.users SET team = 'Lyon', updated_at = '2026-11-22T08:00:00Z'")
    warehouse.execute(
        "UPDATE {s}.deals SET value = 1, updated_at = '2026-11-22T08:00:00Z' WHERE id = 'd1'"
    )
    warehouse.execute("ALTER TABLE {s}.deals RENAME COLUMN title TO label")
    result = warehouse.cli("sync")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "NOT FINISHED: sources.warehouse.opportunities: no column 'title'" in result.stdout
    # The reps finished: their change is in and their mark moved; the deals did not.
    teams = warehouse.store("SELECT DISTINCT t.name FROM reps r JOIN teams t ON t.id = r.team_id")
    assert teams == [("Lyon",)]
    assert warehouse.store("SELECT amount FROM opportunities WHERE source_id = 'd1'") == [(1200.5,)]
    after = dict(warehouse.store("SELECT object, high_water_mark FROM sync_state"))
    assert after["opportunities"] == dict(marks)["opportunities"]
    assert after["reps"] != dict(marks)["reps"]
    runs = warehouse.store("SELECT status, detail FROM sync_runs ORDER BY id")
    assert runs[-1][0] == "failed" and "no column 'title'" in runs[-1][1]
    status = warehouse.cli("status").stdout
    assert "last error (opportunities" in status and "no column 'title'" in status
    # A full read (as Arrow) names the missing column the same way.
    full = warehouse.cli("sync", "--full")
    assert full.exit_code == 1
    assert "NOT FINISHED: sources.warehouse.opportunities: no column 'title'" in full.stdout
    # Its query failed while the reps were written (read ahead): the reps finished all the
    # same, and each object is charged its own query.
    assert "reps → reps: fetched 2, inserted 0, updated 0, deleted 0, rejected 0; 1 API call;" in (
        full.stdout
    )
    assert "opportunities → opportunities: fetched 0, inserted 0, updated 0, deleted 0, " in (
        full.stdout
    )
    assert "rejected 0; 1 API call; high-water mark 2026-11-06 11:30:00Z; NOT FINISHED" in (
        full.stdout
    )


def test_a_full_sync_deletes_the_rows_the_source_no_longer_has(warehouse: Warehouse):
    assert warehouse.cli("sync").exit_code == 0
    warehouse.execute("DELETE FROM {s}.deals WHERE id IN ('d2', 'd4')")
    # An incremental sync cannot see a deleted row: nothing goes.
    assert "deleted 0" in warehouse.cli("sync").stdout
    full = warehouse.cli("sync", "--full")
    assert full.exit_code == 0, full.output
    assert (
        "opportunities → opportunities: fetched 3, inserted 0, updated 0, deleted 2, "
        "rejected 1" in full.stdout
    )
    # Marked deleted, their history closing with the deletion; d5, rejected, was never in.
    assert warehouse.store(
        "SELECT source_id FROM opportunities WHERE deleted_at IS NOT NULL ORDER BY source_id"
    ) == [("d2",), ("d4",)]
    assert warehouse.store(
        "SELECT o.source_id FROM opportunity_history h JOIN opportunities o "
        "ON o.id = h.opportunity_id WHERE h.status = 'deleted' AND h.valid_to IS NULL "
        "ORDER BY o.source_id"
    ) == [("d2",), ("d4",)]
    answer = warehouse.cli("ask", "revenue", "2026-11", "--json", "--as-of", "2026-11-30")
    assert json.loads(answer.stdout)["value"] == pytest.approx(float(won_in_november(warehouse)))


STORED = (
    "SELECT o.source_id, o.name, o.amount, o.currency, o.stage, o.is_won, o.is_closed, "
    "o.created_at, o.close_date, o.probability, r.name, a.name FROM opportunities o "
    "LEFT JOIN reps r ON r.id = o.owner_id LEFT JOIN accounts a ON a.id = o.account_id "
    "ORDER BY o.source_id"
)


def test_a_full_read_as_arrow_imports_what_the_row_by_row_read_imports(warehouse: Warehouse):
    # Outer whitespace of every kind str.strip removes (a tab, U+001F, an ideographic space),
    # NULLs, amounts with and without a scale, and rows the import refuses (a date kpibot
    # cannot hold among the dates the Arrow read keeps as dates).
    warehouse.execute(
        "INSERT INTO {s}.deals VALUES "
        "('d7', E' \\x1f Tab\\t', NULL, NULL, 'Closed Won', 12.50, 'EUR', '2026-10-05', "
        "'2026-11-07', '2026-11-07T08:00:00Z'), "
        "(E'\\u3000d8 ', 'Spaces', 'u2', E'  Acme\\n', 'Negotiation', 0.125, 'EUR', NULL, "
        "'2026-12-24', '2026-11-07T09:00:00Z'), "
        "('d9', 'No amount', 'u1', 'Acme', 'Closed Lost', NULL, NULL, '2026-10-06', NULL, "
        "'2026-11-07T10:00:00Z'), "
        "('d10', 'Placeholder', 'u1', 'Acme', 'Negotiation', 1, 'EUR', '1850-01-01', "
        "'2026-12-01', '2026-11-07T11:00:00Z')"
    )
    with mock.patch.object(
        RecordImport, "read_cells", autospec=True, side_effect=RecordImport.read_cells
    ) as as_arrow:
        columnar = warehouse.cli("sync")
    assert columnar.exit_code == 0, columnar.output
    assert as_arrow.call_count == 2  # the reps and the deals, both read as Arrow
    stored = warehouse.store(STORED)
    reps = warehouse.store("SELECT source_id, name, email FROM reps ORDER BY source_id")
    for leftover in warehouse.config.parent.glob("kpibot.db*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    with mock.patch.object(SqlConnector, "cell_batches", return_value=None):
        by_rows = warehouse.cli("sync")
    assert by_rows.exit_code == 0, by_rows.output
    assert by_rows.stdout == columnar.stdout  # the same counts, rejections and marks
    assert (
        "rejected opportunities d9: Closed Lost deal without a close date (close_date is empty)"
        in by_rows.stdout
    )
    assert "rejected opportunities d10:" in by_rows.stdout
    assert "1850-01-01" in by_rows.stdout
    assert warehouse.store(STORED) == stored
    assert ("d7", "Tab", 12.5, "EUR", "Closed Won", 1, 1, "2026-10-05", "2026-11-07", None,
            None, None) in stored  # fmt: skip
    assert warehouse.store("SELECT source_id, name, email FROM reps ORDER BY source_id") == reps


def test_a_full_read_reads_the_next_table_while_the_store_writes_the_one_before(
    warehouse: Warehouse,
):
    """As the CSV import reads its next file: the deals' query is made once the reps are read
    and before they are written, and the deals' rows are read on another thread."""
    events: list[str] = []
    readers: dict[str, str] = {}
    query, read, write = (
        SqlConnector.cell_batches,
        RecordImport.read_cells,
        RecordImport.write,
    )

    def querying(self: SqlConnector, obj: Any, since: Any) -> object:
        events.append(f"query {obj.table}")
        return query(self, obj, since)

    def reading(self: RecordImport, key: str, table: str, *args: Any) -> object:
        readers[table] = threading.current_thread().name
        return read(self, key, table, *args)

    def writing(self: RecordImport, loaded: Any) -> object:
        events.append(f"write {loaded.plan.kind.name}")
        return write(self, loaded)

    with (
        mock.patch.object(SqlConnector, "cell_batches", querying),
        mock.patch.object(RecordImport, "read_cells", reading),
        mock.patch.object(RecordImport, "write", writing),
    ):
        result = warehouse.cli("sync")
    assert result.exit_code == 0, result.output
    assert events == ["query reps", "query opportunities", "write reps", "write opportunities"]
    assert readers["reps"] == "MainThread"
    assert readers["opportunities"].startswith("kpibot-sync-read")


def test_a_full_read_goes_row_by_row_when_the_arrow_driver_cannot_connect(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
):
    io = adbc_driver_manager.AdbcStatusCode.IO
    refused = adbc_driver_manager.OperationalError(
        "IO: [libpq] Failed to connect: no GSSAPI", status_code=io
    )
    with mock.patch("bot.sources.sql.adbc_postgresql.connect", side_effect=refused):
        result = warehouse.cli("sync")
    assert result.exit_code == 0, result.output
    assert "opportunities → opportunities: fetched 5, inserted 4" in result.stdout
    assert "reading opportunities row by row, not as Arrow: IO: [libpq] Failed to connect" in (
        caplog.text
    )
    assert "postgres@" not in caplog.text  # the URL (and any password in it) is not logged


def test_a_large_read_comes_in_batches_of_a_few_megabytes_its_dates_kept_as_dates(
    warehouse: Warehouse,
):
    """The import reads each batch while the next is fetched: 200,000 deals come in batches
    of a few megabytes (the driver's own 16 MB would bring them in one or two), and their
    dates as the dates they are, which the import reads back as it reads their text."""
    warehouse.execute(
        "INSERT INTO {s}.deals SELECT 'g' || n, 'Deal ' || n, 'u1', 'Acme', 'Negotiation', "
        "n, 'EUR', DATE '2026-01-01' + n % 300, NULL, now() "
        "FROM generate_series(1, 200000) AS n"
    )
    settings = load_settings(warehouse.config, {"WAREHOUSE_URL": POSTGRES_URL or ""})
    spec = settings.config.sources["warehouse"]
    assert isinstance(spec, SqlSource)
    connector = SqlConnector("warehouse", spec, POSTGRES_URL)
    [deals] = [obj for obj in connector.objects() if obj.table == "opportunities"]
    batches = connector.cell_batches(deals, None)
    assert batches is not None
    sizes = [batch.cells.num_rows for batch in batches]
    assert sum(sizes) == 200_000 + len(DEALS)
    assert len(sizes) >= 4, sizes
    first = next(iter(connector.cell_batches(deals, None) or []))
    types = dict(zip(first.cells.schema.names, first.cells.schema.types, strict=True))
    assert types["created_at"] == types["close_date"] == pa.date32()
    assert types["id"] == types["amount"] == pa.string()
