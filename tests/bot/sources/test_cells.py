"""An Arrow column's text cells (``bot.sources.cells.text_cells``) are, value for value, the
text ``cell`` makes of the Python value a DB-API driver gives: the reference is ``cell``
itself, run over random values of every type the columnar read takes."""

from __future__ import annotations

import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.importers.csv_import import RecordImport
from bot.settings import ColumnMap
from bot.sources.cells import cell, field_cells, text_cells, text_convertible

# Whitespace str.strip removes and Unicode's White_Space does not (U+001C-U+001F), and some
# it does, around any text.
_SPACES = st.sampled_from(["", " ", "\t", "\n", "\x1c", "\x1f", "\u3000", "\u2028", "\xa0"])
_TEXT = st.builds(lambda a, t, b: a + t + b, _SPACES, st.text(), _SPACES)

COLUMNS: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.string(), _TEXT),
    (pa.large_string(), _TEXT),
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (pa.bool_(), st.booleans()),
    (pa.date32(), st.dates()),
    (pa.float64(), st.floats()),
    (pa.decimal128(12, 3), st.decimals(places=3, min_value=-(10**8), max_value=10**8)),
]


@pytest.mark.parametrize(("kind", "values"), COLUMNS, ids=[str(k) for k, _ in COLUMNS])
@given(data=st.data())
def test_an_arrow_columns_cells_are_those_cell_makes_of_its_values(
    kind: pa.DataType, values: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    column = data.draw(st.lists(st.one_of(st.none(), values), max_size=30))
    assert text_convertible(kind)
    assert text_cells(pa.array(column, kind)).to_pylist() == [cell(value) for value in column]


def test_text_is_trimmed_of_what_str_strip_removes_at_every_code_point() -> None:
    # Each code point (but the surrogates, which UTF-8 cannot carry) around a letter, both
    # sides: the cell is what str.strip() leaves, whatever the running Python's Unicode.
    points = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"{c}{c}x{c}" for c in points]
    assert text_cells(pa.array(texts, pa.string())).to_pylist() == [t.strip() for t in texts]


@given(st.lists(st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False))))
def test_postgresqls_numeric_text_is_the_cell_of_the_decimal_a_driver_makes_of_it(
    numbers: list[Decimal | None],
) -> None:
    # The ADBC driver hands PostgreSQL's numeric over as its text, which psycopg parses.
    numeric = pa.opaque(pa.string(), "numeric", "PostgreSQL")
    texts = [None if n is None else str(n) for n in numbers]
    column = pa.ExtensionArray.from_storage(numeric, pa.array(texts, pa.string()))
    assert text_convertible(numeric)
    expected = [cell(None if t is None else Decimal(t)) for t in texts]
    assert text_cells(column).to_pylist() == expected


def test_a_type_whose_python_values_depend_on_the_driver_is_not_taken() -> None:
    # A timestamp's zone is the driver's choice (UTC here, the session's for psycopg).
    stamps = pa.array([datetime(2026, 11, 7, 8, 0)], pa.timestamp("us", tz="UTC"))
    assert not text_convertible(stamps.type)
    with pytest.raises(TypeError, match="no text cells for timestamp"):
        text_cells(stamps)
    other = pa.opaque(pa.string(), "interval", "PostgreSQL")
    assert not text_convertible(other)


# Dates kpibot holds, and some just outside what it holds (metrics.limits).
_DATES = st.one_of(
    st.none(),
    st.dates(),
    st.dates(min_value=date(1899, 12, 25), max_value=date(1900, 1, 5)),
    st.dates(min_value=date(2199, 12, 25), max_value=date(2200, 1, 5)),
)
_DATE_TABLES = {
    # Required created_at, optional converted_at, ids read from a column.
    "leads": (["id", "created_at", "converted_at"], {"created_at", "converted_at"}),
    # A required date, and ids made of the cells (their hash) as no column names them.
    "spend": (["date", "channel", "amount"], {"date"}),
}


@pytest.mark.parametrize("table", list(_DATE_TABLES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_date_fields_dates_are_read_as_their_text_cells_are(
    table: str, data: st.DataObject
) -> None:
    """``field_cells`` keeps a date field's dates as Arrow dates, which the import takes as
    they are: the same values, the same rows refused for the same reasons (a date kpibot
    cannot hold, a required one missing), the same ids, as reading their text cells."""
    header, date_fields = _DATE_TABLES[table]
    sizes = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
    typed: list[pa.RecordBatch] = []
    texts: list[pa.RecordBatch] = []
    for size in sizes:
        columns = []
        for field in header:
            if field in date_fields:
                columns.append(
                    pa.array(data.draw(st.lists(_DATES, min_size=size, max_size=size)), pa.date32())
                )
            else:
                columns.append(
                    pa.array([f"{field}{len(typed)}-{i}" for i in range(size)], pa.string())
                )
        kept = [
            field_cells(column, field in date_fields)
            for field, column in zip(header, columns, strict=True)
        ]
        assert [column.type for column in kept] == [
            pa.date32() if field in date_fields else pa.string() for field in header
        ]
        typed.append(pa.RecordBatch.from_arrays(kept, names=header))
        texts.append(pa.RecordBatch.from_arrays([text_cells(c) for c in columns], names=header))

    def read(batches: list[pa.RecordBatch]) -> Any:
        mapping = ColumnMap(file=table, columns={field: field for field in header})
        records = RecordImport(None, "crm")  # type: ignore[arg-type]  # reading only
        return records.read_cells(
            f"sources.crm.{table}", table, mapping, header, batches, "EUR"
        ).loaded

    as_dates, as_text = read(typed), read(texts)
    assert as_dates.values.keys() == as_text.values.keys()
    for name, values in as_text.values.items():
        assert as_dates.values[name].equals(values), name
    assert as_dates.failures.reasons == as_text.failures.reasons
    assert as_dates.lines.tolist() == as_text.lines.tolist()
