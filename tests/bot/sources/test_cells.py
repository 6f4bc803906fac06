"""An Arrow column's text cells (``bot.sources.cells.text_cells``) are, value for value, the
text ``cell`` makes of the Python value a DB-API driver gives: the reference is ``cell``
itself, run over random values of every type the columnar read takes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sources.cells import cell, text_cells, text_convertible

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
