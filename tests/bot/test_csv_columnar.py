"""The columnar import against the straightforward one (issue 9): over random exports with bad
rows mixed in — hostile quoting, blank and wrong-width lines, bytes not in the encoding, NUL,
CRLF, irregular numbers and dates, unknown stages and owners, repeated ids — reading the file in
pyarrow blocks (tiny ones, so that rows read again cross block ends) stores exactly the rows,
and reports exactly the problems, of reading every row with the csv module and every cell
with the reference parsers of ``bot.importers.values``."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from bot.importers import cells, csv_blocks, csv_import
from bot.importers.csv_import import ImportReport, import_csv
from bot.settings import ColumnMap, CsvSource
from bot.store.database import make_engine, migrate, session_factory
from bot.store.models import Account, Opportunity, Rep, Team

DEALS = {
    "file": "deals.csv",
    "columns": {"id": "id", "name": "name", "owner": "owner", "account": "account",
                "stage": "stage", "amount": "amount", "created_at": "created",
                "close_date": "closed", "probability": "proba"},
    "stages": {"Won": "won", "Lost": "lost", "Open": "open"},
}  # fmt: skip
REPS = {"file": "reps.csv", "columns": {"name": "name", "team": "team"}}
SOURCE = CsvSource.model_validate({"reps": REPS, "opportunities": DEALS})
# A French CRM's export: ";", "1 054,50", day-first dates, Windows-1252.
FRENCH_FILE = {"delimiter": ";", "decimal_separator": ",", "date_format": "%d/%m/%Y",
               "encoding": "cp1252"}  # fmt: skip
FRENCH_SOURCE = CsvSource.model_validate({"reps": REPS, "opportunities": {**DEALS, **FRENCH_FILE}})
HEADER = ["id", "name", "owner", "account", "stage", "amount", "created", "closed", "proba"]

texts = st.sampled_from(
    ["Acme", " Acme ", "Globex, Inc.", 'Say "hi"', "Société", "Ly\u200bon", "Tab\there",
     "Two\nlines", "Nul\x00", "x" * 130, "", "  "]
)  # fmt: skip
amounts = st.one_of(
    st.integers(-10**6, 10**12).map(str),
    st.sampled_from(["1054.5", "1,054.50", "$1,054.50", "12O0", "", "100000000000000000",
                     "9999999999999.99", "-0", "0.1", " 7 ", "1.2345678"]),
)  # fmt: skip
# Good values more often than bad ones, so that most rows land and a few do not.
dates = st.sampled_from(
    ["2026-03-02", "2026-03-03", "2026-04-30", "2026-02-30", "0202-11-02",
     "2026-03-02T10:00:00", "", "02/03/2026", "2199-12-31"]
)  # fmt: skip
french_amounts = st.one_of(
    st.integers(-10**6, 10**12).map(str),
    st.sampled_from(["1054,5", "1 054,50", "1.054,50", "1\u00a0054,50 €", "1,5", "12O0", "",
                     "1054.5", "-0", "0,1", " 7 ", "1,2345678"]),
)  # fmt: skip
french_dates = st.sampled_from(
    ["02/03/2026", "03/03/2026", "30/04/2026", "30/02/2026", "02/11/0202", "2026-03-02", "",
     "31/12/2199"]
)  # fmt: skip


@dataclass(frozen=True)
class Dialect:
    """How one CRM writes its export, and the mapping that reads it."""

    source: CsvSource
    delimiter: str
    encoding: str
    undecodable: bytes  # a byte the encoding does not have
    amounts: st.SearchStrategy[str]
    dates: st.SearchStrategy[str]


ENGLISH = Dialect(SOURCE, ",", "utf-8", b"\xe9", amounts, dates)
FRENCH = Dialect(FRENCH_SOURCE, ";", "cp1252", b"\x81", french_amounts, french_dates)


def rows_of(dialect: Dialect) -> st.SearchStrategy[list[tuple[str, ...]]]:
    return st.lists(
        st.tuples(
            st.sampled_from(["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", ""]),
            texts,
            st.sampled_from(["Ana", "Bo", "Ana", "Bo", "Zed", "", "ana"]),
            texts,
            st.sampled_from(["Won", "Lost", "Open", "Open", "won", "Maybe", ""]),
            dialect.amounts,
            dialect.dates,
            dialect.dates,
            st.sampled_from(["", "", "0.3", "0,3", "35", "35%", "150%", "abc"]),
        ),
        max_size=25,
    )


# Lines no writer produces: the reader must report them on their line and lose nothing else.
hostile_lines = st.sampled_from(
    ["", ",,,,,,,,", "D9,only,three", '"D7,never closed,Ana,,Won,5,,2026-01-01,',
     'D8,a"b,Ana,,Won,5,,2026-01-01,', 'D8,"ab"c,Ana,,Won,5,,2026-01-01,', "\x00,,,,,,,,"]
)  # fmt: skip


@st.composite
def exports(draw: st.DrawFn, dialect: Dialect) -> bytes:
    rows = draw(rows_of(dialect))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for row in [tuple(HEADER), *rows]:
        line = io.StringIO()
        csv.writer(
            line, delimiter=dialect.delimiter, quoting=quoting, lineterminator=ending
        ).writerow(row)
        # What the encoding lacks (a zero-width space in Windows-1252) is written as "?".
        lines.append(line.getvalue().encode(dialect.encoding, "replace"))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(1, len(lines)))
        text = draw(hostile_lines).replace(",", dialect.delimiter) + ending
        hostile = text.encode(dialect.encoding)
        if draw(st.booleans()):
            hostile = hostile.replace(b"a", dialect.undecodable, 1)
        lines.insert(position, hostile)
    body = b"".join(lines)
    if draw(st.booleans()):
        body = body.rstrip(b"\r\n")  # no line break after the last row
    return body


def stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with session_factory(engine)() as session:
        return {
            model.__tablename__: [tuple(row) for row in session.execute(select(model.__table__))]
            for model in (Team, Rep, Account, Opportunity)
        }


@pytest.fixture
def template(tmp_path: Path) -> Path:
    engine = make_engine(f"sqlite:///{tmp_path / 'template.db'}")
    migrate(engine)
    engine.dispose()
    return tmp_path / "template.db"


def imported(
    folder: Path, template: Path, name: str, source: CsvSource = SOURCE
) -> tuple[ImportReport, Any]:
    database = folder / f"{name}.db"
    database.write_bytes(template.read_bytes())
    engine = make_engine(f"sqlite:///{database}")
    try:
        with session_factory(engine).begin() as session:
            report = import_csv(session, "crm", source, folder, "EUR")
        return report, stored(engine)
    finally:
        engine.dispose()
        database.unlink()


@contextmanager
def straightforward(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every block read row by row by the csv module, every cell by the reference parsers."""
    with monkeypatch.context() as patched:
        patched.setattr(csv_blocks, "_split", lambda *_args: None)
        # Every cell, the empty one too.
        patched.setattr(cells, "_irregular", lambda column: np.ones(len(column), dtype=bool))
        yield


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), block=st.sampled_from([64, 200, 1 << 20]))
@pytest.mark.parametrize("dialect", [ENGLISH, FRENCH], ids=["english", "french"])
def test_the_columnar_import_stores_and_reports_what_the_row_by_row_one_does(
    tmp_path: Path,
    template: Path,
    monkeypatch: pytest.MonkeyPatch,
    dialect: Dialect,
    data: st.DataObject,
    block: int,
) -> None:
    (tmp_path / "reps.csv").write_text("name,team\nAna,North\nBo,South\n")
    (tmp_path / "deals.csv").write_bytes(data.draw(exports(dialect)))

    with straightforward(monkeypatch):
        expected_report, expected_rows = imported(tmp_path, template, "reference", dialect.source)
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", block)
    report, rows = imported(tmp_path, template, "columnar", dialect.source)

    assert report == expected_report
    assert rows == expected_rows


def test_a_clean_export_is_split_by_pyarrow_only(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is the one a clean file takes: no row goes through the csv module."""
    lines = [",".join(HEADER)] + [
        f'D{i},"Deal {i}, big",Ana,Acme,Won,{i}00,2026-01-0{1 + i % 9},2026-03-0{1 + i % 9},35%'
        for i in range(500)
    ]
    (tmp_path / "reps.csv").write_text("name,team\nAna,North\n")
    (tmp_path / "deals.csv").write_text("\r\n".join(lines) + "\r\n")
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 4096)

    def no_row_by_row(*_args: object) -> Iterator[csv_blocks.TextBlock]:
        raise AssertionError("a clean block was read row by row")
        yield  # pragma: no cover

    monkeypatch.setattr(csv_blocks, "_read_rows", no_row_by_row)
    report, rows = imported(tmp_path, template, "fast")

    assert report.problems == ()
    assert [table.imported for table in report.tables] == [1, 500]
    columns = [column.name for column in Opportunity.__table__.columns]
    deals = [dict(zip(columns, row, strict=True)) for row in rows["opportunities"]]
    [deal] = [deal for deal in deals if deal["source_id"] == "D42"]
    assert (deal["name"], deal["amount"], deal["probability"]) == ("Deal 42, big", 4200, 0.35)
    assert (deal["stage"], deal["is_won"], deal["close_date"]) == ("Won", True, date(2026, 3, 7))


def test_the_next_block_is_made_while_one_is_read_and_closed_when_a_read_fails() -> None:
    """A query's next batch is fetched (a file's next block split) on a thread while the
    import reads the one before; when reading a block fails, the blocks' maker is closed at
    once (a query's cursor with it), not when the traceback lets go of it; a block that
    cannot be made fails the read."""
    plan = csv_import.RecordImport(None, "crm")._plan(  # type: ignore[arg-type]
        "sources.crm.leads", "leads",
        ColumnMap(file="leads", columns={"id": "id", "created_at": "created"}),
        ["id", "created"], "EUR",
    )  # fmt: skip
    made: list[int] = []
    closed = threading.Event()

    def block(number: int, width: int = 2) -> csv_blocks.TextBlock:
        cells = [pa.array([f"L{number}"]), *[pa.array(["2026-03-02"])] * (width - 1)]
        return csv_blocks.TextBlock(np.array([number], dtype=np.int64), cells, [{}] * width)

    def blocks() -> Iterator[csv_blocks.TextBlock]:
        try:
            for number in range(5):
                made.append(number)
                # The third is of the wrong width: reading it fails.
                yield block(number, 3 if number == 2 else 2)
        finally:
            closed.set()

    read = csv_import._read(plan, [block(1), block(2)], [])
    assert read.values["id"].to_pylist() == ["L1", "L2"]
    assert read.lines.tolist() == [1, 2]
    with pytest.raises(ValueError, match="zip"):
        try:
            csv_import._read(plan, blocks(), [])
        except ValueError:
            assert made == [0, 1, 2, 3]  # each made while the one before was read
            assert closed.is_set()
            raise

    def failing() -> Iterator[csv_blocks.TextBlock]:
        yield block(0)
        raise ConnectionError("the connection dropped")

    with pytest.raises(ConnectionError, match="the connection dropped"):
        csv_import._read(plan, failing(), [])


@settings(max_examples=300, deadline=None)
@given(
    # The edges of printable ASCII, often, and any character of the first pages.
    values=st.lists(
        st.none()
        | st.text(
            st.sampled_from(" ~\x1f\x7f\x80é") | st.characters(max_codepoint=0x24FF), max_size=6
        )
    ),
    large=st.booleans(),
    data=st.data(),
)
def test_a_cell_is_irregular_when_a_character_is_outside_printable_ascii(
    values: list[str | None], large: bool, data: st.DataObject
) -> None:
    column = pa.array(values, pa.large_string() if large else pa.string())
    start = data.draw(st.integers(0, len(values)))
    length = data.draw(st.integers(0, len(values) - start))
    part = column.slice(start, length)  # a block's column is a slice of the block's buffers
    expected = [
        value is not None and any(not " " <= character <= "~" for character in value)
        for value in values[start : start + length]
    ]
    assert cells._irregular(part).tolist() == expected
