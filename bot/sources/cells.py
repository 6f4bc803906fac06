"""A source's values as the text cells the import parses (``bot.importers.csv_import``), so that
a CRM's records and a query's rows go through the one validation the CSV files go through:
``cell`` for one value as the API or the database driver gave it, ``text_cells`` for a whole
Arrow column of a query read as Arrow (``bot.sources.sql``), the same text as ``cell`` makes
of each of its values, without a Python object per value."""

from __future__ import annotations

import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

# What str.strip() removes: every character str.isspace() holds (Arrow's own whitespace trim
# follows Unicode's White_Space, which leaves out the separators U+001C to U+001F).
_WHITESPACE = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


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
    DB-API driver gives for it. Text is trimmed as ``str.strip`` trims; integers, booleans and
    dates are formatted by Arrow as Python formats them; a type whose text is the server's own
    (PostgreSQL's ``numeric``, which the driver hands over as its text) is that text; numbers
    of other kinds are formatted a value at a time by ``cell`` itself. Raises ``TypeError`` for
    a type whose Python values could differ from a DB-API driver's (``text_convertible``)."""
    kind = values.type
    if isinstance(kind, pa.BaseExtensionType):
        if not _server_text(kind):
            raise TypeError(f"no text cells for {kind}")
        values = cast("pa.ExtensionArray[Any]", values).storage
        kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim(values, characters=_WHITESPACE)
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_date32(kind):
        text = pc.cast(values, pa.string())
    elif pa.types.is_null(kind):
        text = pa.nulls(len(values), pa.string())
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        text = pa.array([cell(value) for value in values.to_pylist()], pa.string())
    else:
        raise TypeError(f"no text cells for {kind}")
    return pc.cast(text.fill_null(""), pa.string())


def text_convertible(kind: pa.DataType) -> bool:
    """Whether ``text_cells`` takes a column of type ``kind``."""
    if isinstance(kind, pa.BaseExtensionType):
        return _server_text(kind)
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_date32(kind)
        or pa.types.is_null(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
    )


def _server_text(kind: pa.BaseExtensionType) -> bool:
    """An opaque type stored as the server's text of its values (the ADBC PostgreSQL driver's
    ``numeric``: the same text psycopg parses into the ``Decimal`` whose ``str`` it is)."""
    return (
        isinstance(kind, pa.OpaqueType)
        and kind.type_name == "numeric"
        and pa.types.is_string(kind.storage_type)
    )
