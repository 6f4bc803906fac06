"""Text cells read into canonical values a whole column at a time (pyarrow compute).

A column of an export is mostly values of one plain shape: ASCII names and ids, whole numbers,
a few hundred distinct dates, stages and owners. Cells of printable ASCII are trimmed, measured
and (for amounts of a plain shape) converted by pyarrow's kernels, in C; every other cell is
read by the reference rules of ``bot.importers.values``, once per distinct value, so a column's
cost follows its distinct irregular values rather than its rows, and every reason a row is bad
is the one the reference gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from bot.importers.canonical import FieldType
from bot.importers.reasons import CellError, Reason
from bot.importers.values import Parser, check_storable
from metrics.limits import FIRST_DATE, LAST_DATE

# Printable ASCII, the bytes from " " to "~": a cell with any other byte goes to the reference
# rules (which also turn control characters into spaces, refuse NUL and report bytes not in the
# file's encoding).
_PRINTABLE_FIRST, _PRINTABLE_COUNT = 0x20, 0x7F - 0x20
# Amounts of these shapes convert exactly through pyarrow's correctly rounded cast (as through
# Decimal then float) and are far below the largest amount kpibot holds (metrics.limits).
_PLAIN_AMOUNT = {".": r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$", ",": r"^-?[0-9]{1,12}(,[0-9]{1,6})?$"}

Mask = npt.NDArray[np.bool_]


@dataclass
class Failures:
    """Why each bad row of a table is bad, by position; the first reason found is kept."""

    reasons: dict[int, Reason] = field(default_factory=dict)

    def add(self, positions: Iterable[int], reasons: Iterable[Reason]) -> None:
        for position, reason in zip(positions, reasons, strict=True):
            self.reasons.setdefault(int(position), reason)

    def extend(self, other: Failures, offset: int) -> None:
        """Add ``other``'s reasons, found in rows numbered from ``offset`` on."""
        for position, reason in other.reasons.items():
            self.reasons.setdefault(offset + position, reason)

    def mask(self, count: int) -> Mask:
        """True for the bad rows among ``count``."""
        bad = np.zeros(count, dtype=bool)
        if self.reasons:
            bad[np.fromiter(self.reasons, dtype=np.int64, count=len(self.reasons))] = True
        return bad


@dataclass(frozen=True)
class CellRules:
    """How one mapped column is read: its field, the header it is found under, its type and the
    reference parser for one value."""

    field: str
    header: str
    field_type: FieldType
    parse: Parser
    required: bool
    limit: int | None  # most characters of a text value
    decimal_separator: str
    encoding: str


_ARROW_TYPES: Mapping[FieldType, pa.DataType] = {
    FieldType.DATE: pa.date32(),
    FieldType.AMOUNT: pa.float64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.PROBABILITY: pa.float64(),
}


def _arrow_type(field_type: FieldType) -> pa.DataType:
    return _ARROW_TYPES.get(field_type, pa.string())


def read_cells(
    rules: CellRules, cells: pa.Array[Any], flagged: Mapping[int, Reason], failures: Failures
) -> dict[str, pa.Array[Any]]:
    """The column's values (a stage gives its name and, under ``stage_status``, its status);
    bad cells are null and their rows get a reason in ``failures``. ``flagged`` holds the rows
    whose cell the reader could not decode, with the reason. ``cells`` are text, or Arrow
    dates for a date field (a database's date column, ``bot.sources.cells.field_cells``)."""
    header = rules.header
    failures.add(flagged, (_in_cell(header, reason) for reason in flagged.values()))
    if pa.types.is_date32(cells.type):
        return {rules.field: _dates(rules, cells, failures)}
    count = len(cells)
    regular = ~_irregular(cells)
    trimmed = pc.utf8_trim(cells, " ")
    empty = regular & flags(pc.equal(trimmed, pa.scalar("")))
    if rules.required:
        missing = np.flatnonzero(empty)
        reason = _missing(rules)
        failures.add(missing, [reason] * len(missing))
    arrow_type = _arrow_type(rules.field_type)
    handled = empty.copy()
    quick = nulls(count, arrow_type)
    if rules.field_type in (FieldType.TEXT, FieldType.REF):
        handled = regular
        quick = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), trimmed)
        if rules.limit is not None:
            long = regular & flags(
                pc.greater(pc.utf8_length(cast(pa.StringArray, trimmed)), pa.scalar(rules.limit))
            )
            positions = np.flatnonzero(long)
            reason = _in_cell(header, Reason("too_long", {"limit": rules.limit}))
            failures.add(positions, [reason] * len(positions))
            quick = pc.if_else(pa.array(long), pa.scalar(None, pa.string()), quick)
    elif rules.field_type is FieldType.AMOUNT:
        pattern = _PLAIN_AMOUNT[rules.decimal_separator]
        plain = regular & flags(pc.match_substring_regex(trimmed, pattern))
        handled = empty | plain
        text = pc.if_else(pa.array(plain), trimmed, pa.scalar(None, pa.string()))
        if rules.decimal_separator != ".":
            text = pc.replace_substring(text, rules.decimal_separator, ".")
        quick = text.cast(pa.float64())
    rest = np.flatnonzero(~handled)
    distinct, indices = _by_reference(rules, cells.take(rest), failures, rest)
    if rules.field_type is FieldType.STAGE:
        names = [None if stage is None else stage[0] for stage in distinct]
        statuses = [None if stage is None else stage[1] for stage in distinct]
        return {
            "stage": _scatter(quick, ~handled, pa.array(names, pa.string()).take(indices)),
            "stage_status": _scatter(
                nulls(count, pa.string()),
                ~handled,
                pa.array(statuses, pa.string()).take(indices),
            ),
        }
    values = pa.array(distinct, type=arrow_type).take(indices)
    return {rules.field: _scatter(quick, ~handled, values)}


def _dates(rules: CellRules, dates: pa.Array[Any], failures: Failures) -> pa.Array[Any]:
    """A date field's Arrow dates as they are, but for the ones kpibot cannot hold, which the
    reference rules read as text (the reason is theirs) and leave empty."""
    if rules.field_type is not FieldType.DATE:
        raise TypeError(f"{rules.field} is not a date field: its cells must be text")
    if rules.required:
        missing = np.flatnonzero(dates.is_null().to_numpy(zero_copy_only=False))
        failures.add(missing, [_missing(rules)] * len(missing))
    outside = flags(
        pc.or_(
            pc.less(dates, pa.scalar(FIRST_DATE, pa.date32())),
            pc.greater(dates, pa.scalar(LAST_DATE, pa.date32())),
        )
    )
    if not outside.any():
        return dates
    rest = np.flatnonzero(outside)
    _by_reference(rules, as_text(dates.take(rest)), failures, rest)
    return _scatter(dates, outside, nulls(len(rest), pa.date32()))


def as_text(cells: pa.Array[Any]) -> pa.Array[Any]:
    """Cells as text: Arrow dates as their ISO text (what ``cell`` makes of a date), empty for
    none."""
    if pa.types.is_date32(cells.type):
        text: pa.Array[Any] = pc.cast(cells, pa.string()).fill_null("")
        return text
    return cells


def _irregular(cells: pa.Array[Any]) -> Mask:
    """True for the cells holding a byte outside printable ASCII. One pass over the column's
    bytes, each irregular byte placed among the cells' offsets: a regular expression per cell
    (pyarrow's ``match_substring_regex``) took a third of the time of reading a block."""
    width = np.dtype(np.int64 if pa.types.is_large_string(cells.type) else np.int32)
    _validity, offsets_buffer, data_buffer = cells.buffers()
    irregular = np.zeros(len(cells), dtype=bool)
    if offsets_buffer is None or data_buffer is None:
        return irregular
    offsets = np.frombuffer(
        memoryview(offsets_buffer),
        dtype=width,
        count=len(cells) + 1,
        offset=cells.offset * width.itemsize,
    )
    data = np.frombuffer(memoryview(data_buffer), dtype=np.uint8)[offsets[0] : offsets[-1]]
    # Bytes below " " wrap around to the top: one comparison finds both ends.
    outside = np.flatnonzero((data - np.uint8(_PRINTABLE_FIRST)) >= _PRINTABLE_COUNT)
    if len(outside):
        irregular[np.searchsorted(offsets, outside + offsets[0], side="right") - 1] = True
    return irregular


def flags(values: Any) -> Mask:
    """A boolean Arrow array as numpy, null as false."""
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def nulls(count: int, arrow_type: pa.DataType) -> pa.Array[Any]:
    """``count`` nulls of ``arrow_type``."""
    empty: pa.Array[Any] = pa.nulls(count).cast(arrow_type)
    return empty


def _scatter(values: pa.Array[Any], where: Mask, replacements: pa.Array[Any]) -> pa.Array[Any]:
    """``values`` with the positions ``where`` is true replaced, in order, by ``replacements``."""
    if not len(replacements):
        return values
    replaced: pa.Array[Any] = pc.replace_with_mask(values, pa.array(where), replacements)
    return replaced


def _by_reference(
    rules: CellRules, cells: pa.Array[Any], failures: Failures, positions: npt.NDArray[np.int64]
) -> tuple[list[Any], pa.Array[Any]]:
    """The reference parser's value of each distinct cell, and each cell's index among them."""
    encoded = cells.dictionary_encode()
    parsed: list[Any] = []
    reasons: list[Reason | None] = []
    for raw in encoded.dictionary.to_pylist():
        value, reason = _reference(rules, str(raw))
        parsed.append(value)
        reasons.append(reason)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(np.array([reason is not None for reason in reasons], dtype=bool)[indices])
    failures.add(positions[bad], (reasons[indices[i]] or _missing(rules) for i in bad))
    return parsed, encoded.indices


def _in_cell(header: str, problem: Reason) -> Reason:
    return Reason("cell", {"header": header, "problem": problem})


def _missing(rules: CellRules) -> Reason:
    return Reason("missing", {"field": rules.field, "header": rules.header})


def _reference(rules: CellRules, cell: str) -> tuple[Any, Reason | None]:
    raw = cell.strip()
    if not raw:
        return None, _missing(rules) if rules.required else None
    try:
        check_storable(raw, rules.encoding)
        value = rules.parse(raw)
    except CellError as error:
        return None, _in_cell(rules.header, error.reason)
    if rules.field_type in (FieldType.AMOUNT, FieldType.NUMBER, FieldType.PROBABILITY):
        value = float(value)
    return value, None
