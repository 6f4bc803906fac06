"""Whole tables read from an SQLite file by the child process (``bot.store.sqlite_columns``)
make exactly the facts the engine's own driver makes, whatever the rows: NULL columns,
amounts that are all whole numbers, text outside ASCII, empty tables; and an amount in a
currency without a rate is refused by name."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, select

from bot.store import facts_loader
from bot.store.facts_loader import MissingExchangeRate, load_facts
from bot.store.models import Lead
from bot.store.sqlite_columns import ColumnsUnreadable, read_tables
from tests.bot.test_facts_snapshot import (
    RATES,
    _company,
    _engine,
    _won,
    assert_same_facts,
    companies,
    store_company,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies())
def test_facts_read_by_the_child_are_those_of_the_engines_driver(company):
    with tempfile.TemporaryDirectory() as name:
        engine = _engine(Path(name))
        try:
            store_company(engine, company)
            with (
                mock.patch.object(facts_loader, "_CHILD_FROM_ROWS", 0),
                mock.patch.object(facts_loader, "read_tables", wraps=read_tables) as child,
            ):
                read = load_facts(engine, "EUR", RATES, 0.5)
            assert child.call_count == 1  # the opportunities and the leads, together
            # The same store read by the engine's driver, as a small one is.
            with mock.patch.object(facts_loader, "read_tables", wraps=read_tables) as child:
                driven = load_facts(engine, "EUR", RATES, 0.5)
            assert child.call_count == 0
            assert_same_facts(read, driven)
        finally:
            engine.dispose()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty migrated store in ``tmp_path / "kpibot.db"``."""
    engine = _engine(tmp_path)
    yield engine
    engine.dispose()


def test_the_child_reads_every_value_of_a_column_null_at_first(engine, tmp_path):
    # The driver types a column by the rows it looks at first: more NULL rows than its
    # default batch, then text and a fraction.
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER, label TEXT, share NUMERIC)")
        connection.exec_driver_sql(
            "INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 5000) SELECT i, NULL, NULL FROM n"
        )
        connection.exec_driver_sql("INSERT INTO t VALUES (5001, 'Équipe', 0.25), (5002, NULL, 3)")
    (table,) = read_tables(tmp_path / "kpibot.db", ["SELECT * FROM t ORDER BY id"])
    assert table.num_rows == 5002
    assert table.column("label").to_pylist()[-2:] == ["Équipe", None]
    assert table.column("share").to_pylist()[-2:] == [0.25, 3.0]
    assert table.schema.field("share").type == pa.float64()


def test_a_statement_the_child_cannot_read_is_an_error_that_says_why(engine, tmp_path):
    with engine.connect() as connection:
        good = str(select(Lead.id).compile(connection))
    with pytest.raises(ColumnsUnreadable, match="no such column: nope"):
        read_tables(tmp_path / "kpibot.db", [good, "SELECT nope FROM leads"])


def test_an_error_longer_than_a_pipe_holds_is_read_whole(engine, tmp_path):
    # The child's traceback holds the 100 KB name twice: through a pipe read only at the end,
    # the child would block writing it while the parent waits for its second result.
    with engine.connect() as connection:
        good = str(select(Lead.id).compile(connection))
    name = "nope" + "x" * 100_000
    with pytest.raises(ColumnsUnreadable, match=f"no such column: {name}"):
        read_tables(tmp_path / "kpibot.db", [good, f"SELECT {name} FROM leads"])


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        ("os.kill(os.getpid(), 9)", r"failed \(exit -9\)"),  # as the OOM killer ends it
        ("sys.exit(0)", r"failed \(exit 0\): its results ended before the last one"),
    ],
)
def test_a_child_whose_results_are_cut_short_is_an_error_that_says_why(
    tmp_path, monkeypatch, end, reason
):
    sink = pa.BufferOutputStream()
    table = pa.table({"id": range(100_000)})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    stream = sink.getvalue().to_pybytes()
    half = tmp_path / "half"
    half.write_bytes(stream[: len(stream) // 2])
    code = (
        f"import os, sys; sys.stdout.buffer.write(open({str(half)!r}, 'rb').read()); "
        f"sys.stdout.flush(); {end}"
    )
    popen = subprocess.Popen
    monkeypatch.setattr(
        subprocess, "Popen", lambda args, **options: popen([sys.executable, "-c", code], **options)
    )
    with pytest.raises(ColumnsUnreadable, match=reason):
        read_tables(tmp_path / "kpibot.db", ["SELECT 1"])


def test_facts_are_read_by_the_engines_driver_when_the_child_fails(engine, caplog):
    store_company(engine, _company("100.00"))
    failing = ColumnsUnreadable("reading kpibot.db failed (exit 1): no adbc here")
    with (
        mock.patch.object(facts_loader, "_CHILD_FROM_ROWS", 0),
        mock.patch.object(facts_loader, "read_tables", side_effect=failing),
    ):
        facts = load_facts(engine, "EUR", RATES, 0.5)
    assert _won(facts) == 10_000
    assert "reading them here: reading kpibot.db failed (exit 1): no adbc here" in caplog.text


@pytest.mark.parametrize("currencies", [["EUR", "JPY"], ["JPY", "USD"]])
def test_an_amount_in_a_currency_without_a_rate_is_refused_by_name(engine, currencies):
    company = _company("100.00")
    first = company["opportunities"][0]
    company["opportunities"] = [
        {**first, "source_id": f"O{i}", "currency": currency}
        for i, currency in enumerate(currencies)
    ]
    store_company(engine, company)
    with pytest.raises(MissingExchangeRate) as refused:
        load_facts(engine, "EUR", RATES, 0.5)
    assert str(refused.value) == (
        "no exchange rate from JPY to EUR: add JPY under fx_rates in the config"
    )
