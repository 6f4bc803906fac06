"""A CSV file read as columns of text cells, each row with the physical line it starts on.

The file is cut into blocks of whole lines. A block that pyarrow's C reader splits exactly as
Python's csv module would — every line one row of the header's width, no quote spanning lines
or out of place, no lone carriage return, no blank line, every byte in the file's encoding — is
split by pyarrow. Any other block is read row by row by the csv module, from its first line to
the end of the record that crosses the block's end, with the rules the import always had: a
row the csv module cannot read (a quote that never closes, a cell over the field-size limit)
or of the wrong width over several lines is reported on its first line, and the lines it ran
over are read again as rows of their own; a byte that is not in the file's encoding is kept
and reported on its row when the mapping reads that cell. So the common clean export goes at
pyarrow's speed and a hostile one still loses nothing but its bad rows.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from bot.importers.reasons import Reason

# Bytes per block: large enough that pyarrow's per-call cost vanishes, small enough that a
# block read row by row costs little.
BLOCK_BYTES = 4 << 20
# Encodings whose bytes can be decoded from any line start (no state, no multi-byte newline).
_BLOCKWISE = frozenset({"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252",
                        "iso8859-15"})  # fmt: skip
_UTF8 = frozenset({"utf-8", "utf-8-sig", "ascii"})
_NEWLINE, _RETURN, _QUOTE = 10, 13, 34


@dataclass(frozen=True)
class Unreadable:
    """A record the csv module could not read, or of the wrong width: its line and why."""

    line: int
    reason: Reason


@dataclass
class TextBlock:
    """Rows of the header's width as columns of cells (the wanted ones, in order), with the
    physical line each row starts on; ``flagged`` holds, per column, the rows whose cell has a
    byte not in the file's encoding (the cell itself is empty) and the reason."""

    lines: npt.NDArray[np.int64]
    cells: list[pa.Array[Any]]
    flagged: list[dict[int, Reason]]


def text_block(
    rows: Sequence[tuple[int, Sequence[str]]], offsets: Sequence[int], encoding: str
) -> TextBlock:
    """Rows already split into cells, as a block (their width checked by the caller)."""
    lines = np.fromiter((line for line, _ in rows), dtype=np.int64, count=len(rows))
    cells: list[pa.Array[Any]] = []
    flagged: list[dict[int, Reason]] = []
    for offset in offsets:
        column = [fields[offset] for _, fields in rows]
        marked: dict[int, Reason] = {}
        try:
            array = pa.array(column, pa.string())
        except (UnicodeEncodeError, pa.ArrowException):
            # A lone surrogate: a byte the decoder kept (surrogateescape). Arrow holds UTF-8.
            for position, cell in enumerate(column):
                byte = _undecodable(cell)
                if byte is not None:
                    marked[position] = Reason("byte", {"byte": f"{byte:02x}", "encoding": encoding})
                    column[position] = ""
            array = pa.array(column, pa.string())
        cells.append(array)
        flagged.append(marked)
    return TextBlock(lines, cells, flagged)


def _undecodable(cell: str) -> int | None:
    if cell.isprintable():
        return None
    for char in cell.strip():
        if "\udc80" <= char <= "\udcff":
            return ord(char) - 0xDC00
    return None


def header(path: Path, encoding: str, delimiter: str) -> tuple[list[str], int]:
    """The header's names (stripped) and the bytes it takes, byte-order mark included."""
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
        lines = _Lines(text, encoding)
        row = next(csv.reader(lines, delimiter=delimiter), None)
        size = lines.bytes
        raw.seek(0)
        if codecs.lookup(encoding).name == "utf-8-sig" and raw.read(3) == codecs.BOM_UTF8:
            size += len(codecs.BOM_UTF8)
    if row is None:
        return [], 0
    return [name.strip() for name in row], size


class _Lines:
    """The physical lines of a text stream, handed to the csv reader one at a time, with the
    bytes read so far; the lines of the record being read are kept so that all but its first
    can be read again."""

    def __init__(self, handle: io.TextIOWrapper, encoding: str) -> None:
        self._handle = handle
        self._encoding = "utf-8" if codecs.lookup(encoding).name == "utf-8-sig" else encoding
        self._again: list[str] = []  # lines to read again, the next one last
        self._taken: list[str] = []
        self.read = 0  # lines handed out so far
        self.bytes = 0  # bytes of the lines handed out so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else self._handle.readline()
        if not line:
            raise StopIteration
        self._taken.append(line)
        self.read += 1
        self.bytes += len(line.encode(self._encoding, "surrogateescape"))
        return line

    @property
    def pending(self) -> bool:
        return bool(self._again)

    def next_record(self) -> int:
        """Start a record; returns the line it starts on."""
        self._taken.clear()
        return self.read + 1

    def read_again(self) -> int:
        """Give back every line of the current record but its first; returns how many."""
        rest = self._taken[1:]
        self._again.extend(reversed(rest))
        self.read -= len(rest)
        self.bytes -= sum(len(line.encode(self._encoding, "surrogateescape")) for line in rest)
        return len(rest)


def _csv_problem(error: csv.Error) -> Reason:
    message = str(error)
    if message.startswith("field larger than field limit"):
        return Reason("field_limit", {"limit": csv.field_size_limit()})
    if message == "unexpected end of data":
        return Reason("quote_open")
    return Reason("quotes", {"message": message})


@dataclass(frozen=True)
class CsvFormat:
    path: Path
    encoding: str
    delimiter: str
    width: int  # cells in the header
    offsets: tuple[int, ...]  # the cells the mapping reads


# Rows of the csv module's reading gathered into one block.
_ROWS_PER_BLOCK = 50_000


def read_blocks(form: CsvFormat, body: int, problems: list[Unreadable]) -> Iterator[TextBlock]:
    """The file from byte ``body`` (after the header) as blocks; rows that cannot be read, or
    whose width is wrong, go to ``problems``."""
    if codecs.lookup(form.encoding).name not in _BLOCKWISE:
        yield from _read_rows(form, body, 2, None, problems)
        return
    with form.path.open("rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        position, line = body, 2
        while position < size:
            block = _block(handle, position, size)
            fast = _split(form, block, line)
            if fast is not None:
                yield fast
                position += len(block)
                line += int(np.count_nonzero(np.frombuffer(block, np.uint8) == _NEWLINE))
            else:
                # Row by row from this block's first line to the first record boundary after it.
                until = position + len(block)
                position, line = yield from _read_rows(form, position, line, until, problems)


def _block(handle: BinaryIO, position: int, size: int) -> bytes:
    """Whole lines from ``position``: up to BLOCK_BYTES, longer if one line is longer."""
    handle.seek(position)
    block = handle.read(BLOCK_BYTES)
    while position + len(block) < size:
        cut = block.rfind(b"\n")
        if cut >= 0:
            return block[: cut + 1]
        block += handle.read(BLOCK_BYTES)
    # The csv module reads a last line without a line break as if it had one.
    return block if block.endswith(b"\n") else block + b"\n"


def _read_rows(
    form: CsvFormat, start: int, first_line: int, until: int | None, problems: list[Unreadable]
) -> Generator[TextBlock, None, tuple[int, int]]:
    """Records read by the csv module from byte ``start`` (line ``first_line``) to the first
    record boundary at or after byte ``until`` (None: the file's end), as blocks; returns the
    byte and the line where it stopped. A record the csv module cannot read, or of the wrong
    width, goes to ``problems``; over several lines, the lines after its first are read again
    as rows of their own."""
    encoding = form.encoding
    rows: list[tuple[int, list[str]]] = []
    with form.path.open("rb") as raw:
        raw.seek(start)
        # The byte-order mark is at the file's start only.
        name = "utf-8" if start and codecs.lookup(encoding).name == "utf-8-sig" else encoding
        handle = io.TextIOWrapper(raw, encoding=name, errors="surrogateescape", newline="")
        lines = _Lines(handle, encoding)
        lines.read = first_line - 1
        reader = csv.reader(lines, delimiter=form.delimiter, strict=True)
        while until is None or lines.bytes < until - start or lines.pending:
            begin = lines.next_record()
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                reason = _csv_problem(error)
            else:
                # Spreadsheets pad exports with blank lines and lines of bare delimiters.
                if not any(fields):
                    continue
                if len(fields) == form.width:
                    rows.append((begin, fields))
                    if len(rows) >= _ROWS_PER_BLOCK:
                        yield text_block(rows, form.offsets, encoding)
                        rows = []
                    continue
                reason = Reason("width", {"fields": len(fields), "width": form.width})
            end = lines.read
            again = lines.read_again()
            if again:
                reason = Reason("ran_over", {"problem": reason, "first": begin + 1, "end": end})
            problems.append(Unreadable(begin, reason))
        if rows:
            yield text_block(rows, form.offsets, encoding)
        return start + lines.bytes, lines.read + 1


def _split(form: CsvFormat, block: bytes, first_line: int) -> TextBlock | None:
    """The block split by pyarrow, or None when pyarrow might split it otherwise than the csv
    module (see the module's docstring)."""
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    returns = np.flatnonzero(data == _RETURN)
    if len(returns) and np.any(data[np.minimum(returns + 1, len(data) - 1)] != _NEWLINE):
        return None  # a lone carriage return ends a line for the csv module
    if np.max(np.diff(newlines, prepend=-1)) > csv.field_size_limit():
        return None  # a cell may be over the csv module's field-size limit
    delimiter = ord(form.delimiter)
    delimiters = _per_line(data == delimiter, newlines)
    returns_per_line = _per_line(data == _RETURN, newlines)
    lengths = np.diff(newlines, prepend=-1) - 1
    if np.any(lengths == delimiters + returns_per_line):
        return None  # a blank line, or one of bare delimiters: not a row
    quotes = _per_line(data == _QUOTE, newlines)
    if np.any(quotes % 2):
        return None  # a quoted cell spans lines, or a quote never closes
    quoted = np.flatnonzero(quotes)
    if len(quoted) and not _quotes_in_place(form, block, newlines, quoted):
        return None
    if np.any(delimiters[quotes == 0] != form.width - 1):
        return None  # a row of the wrong width: reported by the csv module's reading
    text = block
    if codecs.lookup(form.encoding).name not in _UTF8:
        try:
            text = block.decode(form.encoding).encode("utf-8")
        except UnicodeDecodeError:
            return None
    names = [f"c{i}" for i in range(form.width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(text),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=form.delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                include_columns=[names[offset] for offset in sorted(set(form.offsets))],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None  # bytes that are not UTF-8, above all
    if table.num_rows != len(newlines):
        return None
    lines = np.arange(first_line, first_line + len(newlines), dtype=np.int64)
    cells = [table.column(names[offset]).combine_chunks() for offset in form.offsets]
    return TextBlock(lines, cells, [{} for _ in form.offsets])


def _per_line(mask: npt.NDArray[np.bool_], newlines: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """How many bytes of each line ``mask`` marks: the marked positions placed among the line
    ends (cheaper than a running sum over every byte of the block)."""
    lines = np.searchsorted(newlines, np.flatnonzero(mask))
    return np.bincount(lines, minlength=len(newlines))


def _quotes_in_place(
    form: CsvFormat, block: bytes, newlines: npt.NDArray[np.intp], quoted: npt.NDArray[np.intp]
) -> bool:
    """Whether the csv module reads every line with quotes as one row of the header's width
    without an error (pyarrow then splits it the same way)."""
    encoding = "utf-8" if codecs.lookup(form.encoding).name == "utf-8-sig" else form.encoding
    starts = np.concatenate(([0], newlines[:-1] + 1))
    try:
        lines = [block[starts[i] : newlines[i] + 1].decode(encoding) for i in quoted.tolist()]
        rows = list(csv.reader(lines, delimiter=form.delimiter, strict=True))
    except (UnicodeDecodeError, csv.Error):
        return False
    return len(rows) == len(lines) and all(len(row) == form.width for row in rows)
