"""A source's values as the text cells the import parses (``bot.importers.csv_import``), so that
a CRM's records and a query's rows go through the one validation the CSV files go through:
``cell`` for one value as the API or the database driver gave it, ``text_cells`` for a whole
Arrow column of a query read as Arrow (``bot.sources.sql``), the same text as ``cell`` makes
of each of its values, without a Python object per value; ``field_cells`` keeps a date field's
date column as Arrow dates, which the import takes as they are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

# What str.strip() removes: every character str.isspace() holds (Arrow's own whitespace trim
# follows Unicode's White_Space, which leaves out the separators U+001C to U+001F). Written
# out: finding them among every code point took 50-80 ms of each sync's start; a test checks
# the list against str.strip() over every code point of the running Python.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def cell(value: Any) -> str:
    """A value from an API or a database as the text the import parses (empty for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    return str(value).strip()


def text_cells(values: pa.Array[Any]) -> pa.Array[Any]:
    """``values`` as text cells: for each value, the text ``cell`` makes of the Python value a
    DB-API driver gives for it. Raises ``TypeError`` for a type whose Python values could
    differ from a DB-API driver's (``text_convertible``)."""
    formatter = _formatter(values.type)
    if formatter is None:
        raise TypeError(f"no text cells for {values.type}")
    return pc.cast(formatter(values).fill_null(""), pa.string())


def field_cells(values: pa.Array[Any], date_field: bool) -> pa.Array[Any]:
    """``values`` as the import reads them: the column of a date field read without a date
    format, when it holds dates, as those dates (the import checks only that kpibot holds
    them: parsing their text back cost a million deals' read 0.3 s); any other as text
    cells."""
    if date_field and pa.types.is_date32(values.type):
        return values
    return text_cells(values)


def text_convertible(kind: pa.DataType) -> bool:
    """Whether ``text_cells`` takes a column of type ``kind``."""
    return _formatter(kind) is not None


def _formatter(kind: pa.DataType) -> Callable[[pa.Array[Any]], pa.Array[Any]] | None:
    """How a column of type ``kind`` becomes text (nulls left null), or None. Text is trimmed
    as ``str.strip`` trims; integers, booleans and dates are formatted by Arrow as Python
    formats them; a type whose text is the server's own (PostgreSQL's ``numeric``, which the
    ADBC driver hands over as its text: the text psycopg parses into the ``Decimal`` whose
    ``str`` it is) is that text; numbers of other kinds are formatted a value at a time by
    ``cell`` itself."""
    if isinstance(kind, pa.OpaqueType):
        if kind.type_name != "numeric" or not pa.types.is_string(kind.storage_type):
            return None
        return lambda values: _trimmed(cast("pa.ExtensionArray[Any]", values).storage)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _trimmed
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_date32(kind):
        return lambda values: pc.cast(values, pa.string())
    if pa.types.is_null(kind):
        return lambda values: pa.nulls(len(values), pa.string())
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return lambda values: pa.array([cell(v) for v in values.to_pylist()], pa.string())
    return None


def _trimmed(values: pa.Array[Any]) -> pa.Array[Any]:
    return pc.utf8_trim(values, characters=_WHITESPACE)
