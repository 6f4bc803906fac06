"""Facts snapshots: the facts of one data version as files that every serving process
memory-maps, so a process is ready in milliseconds instead of reading every table from the
store, and processes on one machine share the pages.

A snapshot is a folder ``v<version>-<token>-<key>`` holding, per fact table, its numeric
columns and the codes of its names as arrays (``bot.store.array_files``: ``<table>.columns.json``
says where each is) and its other columns (text) in
``<table>.arrow``, an Arrow IPC file (Feather v2, uncompressed); and, for the tables the usual
KPIs index, the indexes the writer built or patched (``metrics.index.TableIndexes``' arrays,
``bot.store.index_files``). A sync's snapshot keeps what did not change where the snapshot
it was refreshed from wrote it, linked: a table untouched, and of a table touched the arrays
and chunks of arrays whose bytes are the same, so that it writes in proportion to the chunks
its rows fall in, not to the tables. A serving process maps those too: it holds no private
copy of them, answers at once without building indexes, and swaps in a sync's data without
holding two sets of its own. ``token`` is the random token
the store made with the version (``bot.store.database.VersionStamp``): a store made again, or
restored from a backup, reaches version numbers again beside snapshots of facts it never held.
``key`` fingerprints what the facts were built with besides the data (currency, exchange rates,
default probability, time zone, this format), so a process configured differently never maps
another's figures. It is written under a temporary name and renamed into place (``os.replace``):
a reader sees a whole snapshot or none. Date columns are stored as their int64 nanoseconds, NaT
included, rather than as Arrow nulls: a column without nulls maps without a copy, so the numbers
a process reads stay in the shared page cache. For the same reason a float column keeps its
gaps as NaN, and a nullable integer column (an account id) is stored as its values and a column
of bytes saying which are missing, from which pandas' masked array is built over both maps.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from bot.store.array_files import (
    Earlier,
    Entry,
    Key,
    bytes_used,
    copier,
    matched,
    read_arrays,
    write_arrays,
)
from bot.store.database import VersionStamp
from bot.store.index_files import Reusable, index_files, read_indexes, write_indexes
from metrics.facts import Facts
from metrics.index import TableIndexes
from metrics.index_patch import patched_indexes
from metrics.kpis import INDEXED_TABLES, prepared_indexes

log = logging.getLogger(__name__)

# Bump when the layout of the files changes: older snapshots are then ignored and rebuilt.
FORMAT = 12  # 2: opportunities carry their store id; 3: facts.json names the store's rates;
# 4: the accounts, and the leads' and spend's channels; 5: the indexes; 6: masked integers;
# 7: index arrays in several data files (``bot.store.index_files``); 8: large arrays in
# chunks, and the tables' numeric columns as arrays (``bot.store.array_files``); 9: the
# orders' dead entries (``metrics.index.DateOrder.dead``); 10: categorical columns as their
# codes, among the arrays; 11: the orders' tails (``metrics.index.DateOrder.tail``); 12: a
# chunked array's entry lists runs of chunks, not each chunk
TABLES = ("opportunities", "leads", "spend", "surveys", "reps", "teams", "slips", "accounts")
_DATES = b"kpibot.dates"  # schema metadata: the columns holding int64 nanoseconds
_CATEGORIES = b"kpibot.categories"  # the dtype of each categorical column's categories
_MASKED = b"kpibot.masked"  # nullable integer columns, each stored as values and a mask
_CODED = b"kpibot.coded"  # categorical columns stored as their codes: each one's categories
_MISSING = ".missing"  # the name of a masked column's mask: whether each value is missing


class Mapped(NamedTuple):
    """Facts mapped from a snapshot, and each table's arrays as mapped (``Earlier``): what
    a refresh of those facts writes its changes over, and the snapshot it publishes keeps."""

    facts: Facts
    columns: Mapping[str, Earlier]


class SnapshotUnreadable(Exception):
    """A snapshot that exists but cannot be read back (truncated, foreign, damaged)."""


def snapshot_key(
    currency: str, rates: dict[str, Decimal], default_probability: float, zone: tzinfo
) -> str:
    settings = [FORMAT, currency, sorted((c, str(r)) for c, r in rates.items()),
                default_probability, str(zone)]  # fmt: skip
    digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()
    return digest[:16]


class _Encoded(NamedTuple):
    rest: pa.RecordBatch  # the columns stored in ``<table>.arrow``, with the schema's metadata
    plain: dict[str, np.ndarray]  # the numeric columns and the names' codes, as arrays
    names: list[str]  # every column, in the order ``_decode`` puts them back


def _encode(frame: pd.DataFrame) -> _Encoded:
    """``frame`` as a snapshot stores it: its numeric columns (integers, floats, dates as
    int64 nanoseconds, masked integers as values and a mask) as numpy arrays, stored where a
    refresh can keep them chunk by chunk (``bot.store.array_files``), each the frame's own
    array where it can be (no copy: a publish encodes every table it changed, a million rows
    each); categoricals named by text as their codes; the others (text, other categoricals)
    as one Arrow batch whose schema's metadata says which columns hold dates, which masked
    integers, which codes, and each categorical's categories' dtype."""
    dates = [str(c) for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    # Arrow cannot tell str categories from object ones when there are none.
    categories = {
        str(c): str(frame[c].cat.categories.dtype)
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    masked = [str(c) for c in frame.columns if isinstance(frame[c].array, pd.arrays.IntegerArray)]
    plain: dict[str, np.ndarray] = {}
    coded: dict[str, list[str]] = {}
    for name in frame.columns:
        column = frame[name]
        if name in categories and _named_by_text(column):
            # The codes as an array (kept chunk by chunk, as the numbers are: in the Arrow
            # file they were written whole at every publish), the categories in the metadata.
            plain[name] = column.array.codes
            coded[name] = column.cat.categories.tolist()
        elif name in dates:
            plain[name] = column.to_numpy(dtype="datetime64[ns]").view("int64")
        elif name in masked:
            # Values and mask as two plain columns, which map without a copy: Arrow's nulls
            # would come back to pandas as a private copy of both (27 MB a serving process
            # at 1M deals). The masked array's own: a column mapped and left as it was is
            # then kept whole (``to_numpy`` and ``isna`` copy both, to be compared again at
            # every publish); the values under the mask are whatever they are.
            plain[name], plain[name + _MISSING] = _masked_parts(column.array)
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf":
            # A float's gaps are NaN, which the array keeps: in the batch they would be
            # Arrow's nulls, the column written whole at every publish and read back as a
            # private copy (a deleted deal's emptied probability did that to the deals').
            plain[name] = column.to_numpy()
    names = [str(c) for c in frame.columns]
    names += [name + _MISSING for name in masked]
    others = [c for c in frame.columns if c not in plain]
    # One batch, even of no rows: it carries the categories of an empty table. Through a
    # table, whose columns may be chunked (pandas' Arrow strings after a refresh's merge);
    # a column of one chunk is taken as it is (combining copies it: 0.13-0.2 s a table at
    # a million rows, at every publish).
    table = pa.Table.from_pandas(frame, columns=others, preserve_index=False)
    arrays = [c.chunks[0] if c.num_chunks == 1 else c.combine_chunks() for c in table.columns]
    batch = pa.RecordBatch.from_arrays(arrays, schema=table.schema)
    metadata = dict(batch.schema.metadata or {})
    metadata[_DATES] = json.dumps(dates).encode()
    metadata[_CATEGORIES] = json.dumps(categories).encode()
    metadata[_MASKED] = json.dumps(masked).encode()
    metadata[_CODED] = json.dumps(coded).encode()
    return _Encoded(batch.replace_schema_metadata(metadata), plain, names)


def _masked_parts(array: pd.api.extensions.ExtensionArray) -> tuple[np.ndarray, np.ndarray]:
    """A nullable integer array's values and mask (as bytes), its own arrays: pandas has no
    public way to them that does not copy (``BaseMaskedArray``'s ``_data`` and ``_mask``)."""
    assert isinstance(array, pd.arrays.IntegerArray)
    return array._data, array._mask.view("uint8")  # type: ignore[attr-defined]


def _named_by_text(column: pd.Series) -> bool:
    """Whether ``column``, a categorical, is unordered with text categories (names, statuses,
    sources): what the metadata's JSON gives back as it was."""
    dtype = column.dtype
    assert isinstance(dtype, pd.CategoricalDtype)
    return not dtype.ordered and all(isinstance(value, str) for value in dtype.categories)


def _decode(rest: pa.Table, plain: Mapping[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """The frame of the columns ``names``: those in ``plain`` (mapped arrays) and the others
    in ``rest``, whose schema's metadata says which columns hold dates and masked integers."""
    metadata = rest.schema.metadata or {}
    dates = set(json.loads(metadata.get(_DATES, b"[]")))
    categories = json.loads(metadata.get(_CATEGORIES, b"{}"))
    masked = set(json.loads(metadata.get(_MASKED, b"[]")))
    coded = json.loads(metadata.get(_CODED, b"{}"))
    # One block per column: the categories' codes stay views of the mapped file.
    others = rest.to_pandas(split_blocks=True)
    columns: dict[str, Any] = {}
    for name in names:
        if name.endswith(_MISSING) and name.removesuffix(_MISSING) in masked:
            continue
        if name in masked:
            values = pd.arrays.IntegerArray(
                plain[name], plain[name + _MISSING].view(bool), copy=False
            )
            columns[name] = pd.Series(values, copy=False)
        elif name in dates:
            columns[name] = pd.Series(plain[name].view("datetime64[ns]"), copy=False)
        elif name in coded:
            named = pd.Index(coded[name], dtype=categories[name])
            codes = pd.Categorical.from_codes(
                plain[name], dtype=pd.CategoricalDtype(named), validate=False
            )  # over the mapped codes, not a copy
            columns[name] = pd.Series(codes, copy=False)
        elif name in plain:
            columns[name] = pd.Series(plain[name], copy=False)
        elif name in categories and str(others[name].cat.categories.dtype) != categories[name]:
            series = others[name]
            columns[name] = series.cat.set_categories(
                series.cat.categories.astype(categories[name])
            )
        else:
            columns[name] = others[name]
    return pd.DataFrame(columns, columns=list(columns), copy=False)


def _indexes(
    facts: Facts,
    table: str,
    patch: tuple[TableIndexes, np.ndarray] | None,
    earlier: Earlier | None,
) -> TableIndexes:
    """``table``'s usual indexes: ``patch``'s (the indexes before and the rows written since)
    patched when given and they can be, else built. An old array the snapshot ``earlier``
    holds in chunks is patched over a copy mapped from its files copy on write: the pages a
    patch leaves alone are not copied (most of them: a sync of ten deals among a million
    moves entries in a few stretches of each date order)."""
    if patch is not None:
        old, rows = patch
        patched = patched_indexes(old, facts, table, rows, copier(earlier))
        if patched is not None:
            return patched
    return prepared_indexes(facts, table)


def _write_table(
    folder: Path, table: str, frame: pd.DataFrame, version: int, earlier: Earlier | None
) -> None:
    """``frame`` as ``table``'s files: its numeric columns and its names' codes as arrays
    (``<table>.columns.json`` says where; what ``earlier`` holds unchanged is kept where it
    is, chunk by chunk), the other columns in ``<table>.arrow``."""
    rest, plain, names = _encode(frame)
    # The Arrow IPC file format (Feather v2), uncompressed so that it maps as is.
    with (
        pa.OSFile(str(folder / f"{table}.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, rest.schema) as writer,
    ):
        writer.write_batch(rest)
    arrays = {(name,): array for name, array in plain.items()}
    written = write_arrays(folder, f"{table}.columns", version, arrays, earlier)
    manifest = {
        "rows": len(frame),
        "names": names,
        "columns": {key[0]: entry for key, entry in written.items()},
    }
    (folder / f"{table}.columns.json").write_text(json.dumps(manifest), encoding="utf-8")


def _columns(folder: Path, table: str) -> tuple[dict[str, Any], dict[Key, Entry]]:
    """The manifest of ``table``'s columns in ``folder``, and its arrays' entries."""
    manifest = json.loads((folder / f"{table}.columns.json").read_text(encoding="utf-8"))
    return manifest, {(name,): entry for name, entry in manifest["columns"].items()}


def _read_table(folder: Path, table: str) -> tuple[pd.DataFrame, Earlier]:
    """``table``'s frame, its columns mapped from the snapshot in ``folder``, and those
    arrays as mapped: a frame's column left as it is, and the changes of one written over a
    copy of it (``Earlier.copy``), are kept where they are by the next snapshot."""
    manifest, entries = _columns(folder, table)
    arrays = read_arrays(folder, entries)
    plain = {key[0]: array for key, array in arrays.items()}
    with pa.memory_map(str(folder / f"{table}.arrow")) as source:
        rest = pa.ipc.open_file(source).read_all()
    rows = manifest["rows"]
    if any(len(a) != rows for a in plain.values()) or (rest.num_columns and rest.num_rows != rows):
        raise ValueError(f"{folder / table}: columns of other lengths than its {rows} rows")
    return _decode(rest, plain, manifest["names"]), Earlier(folder, matched(arrays, entries))


def _earlier_columns(folder: Path, table: str) -> Earlier | None:
    """``table``'s columns as the snapshot in ``folder`` holds them, for a new snapshot to
    keep what did not change; None when it is gone or unreadable (then all are written)."""
    try:
        _, entries = _columns(folder, table)
        return Earlier(folder, matched(read_arrays(folder, entries), entries))
    except (OSError, ValueError, KeyError):
        return None


def _table_files(folder: Path, table: str) -> list[str]:
    """The names of ``table``'s files in the snapshot in ``folder``, but its indexes'."""
    _, entries = _columns(folder, table)
    return [f"{table}.arrow", f"{table}.columns.json", *sorted(bytes_used(entries.values()))]


class Snapshots:
    """The snapshots of one store, in ``folder``, for facts built with settings ``key``."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.key = key
        self._name = re.compile(rf"v(\d+)-([0-9a-f]+)-{re.escape(key)}")
        # Named before versions had tokens: never read, pruned.
        self._untokened = re.compile(rf"v\d+-{re.escape(key)}")

    def path(self, stamp: VersionStamp) -> Path:
        return self.folder / f"v{stamp.version}-{stamp.token}-{self.key}"

    def versions(self) -> list[VersionStamp]:
        """The versions published, oldest first."""
        if not self.folder.is_dir():
            return []
        found = (self._name.fullmatch(entry.name) for entry in self.folder.iterdir())
        return sorted(VersionStamp(int(match[1]), match[2]) for match in found if match)

    def read(self, stamp: VersionStamp) -> Facts | None:
        """The facts of ``stamp`` mapped from its snapshot; None when none was published.
        Raises ``SnapshotUnreadable`` for one that exists but cannot be read."""
        mapped = self.mapped(stamp)
        return None if mapped is None else mapped.facts

    def mapped(self, stamp: VersionStamp) -> Mapped | None:
        """The facts of ``stamp`` mapped from its snapshot, with the arrays of their tables'
        columns as mapped; None when none was published. Raises ``SnapshotUnreadable`` for
        one that exists but cannot be read."""
        folder = self.path(stamp)
        if not folder.is_dir():
            return None
        frames: dict[str, pd.DataFrame] = {}
        columns: dict[str, Earlier] = {}
        try:
            for table in TABLES:
                frames[table], columns[table] = _read_table(folder, table)
            meta = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
            facts = Facts(
                opportunities=frames["opportunities"],
                leads=frames["leads"],
                spend=frames["spend"],
                surveys=frames["surveys"],
                reps=frames["reps"],
                teams=frames["teams"],
                slips=frames["slips"],
                accounts=frames["accounts"],
                currency=str(meta["currency"]),
                minor_digits=int(meta["minor_digits"]),
                version=stamp.version,
            )
            for table in INDEXED_TABLES:
                indexes = read_indexes(folder, table, len(frames[table]))
                if indexes is not None:
                    facts.adopt(table, indexes)
            return Mapped(facts, columns)
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
            raise SnapshotUnreadable(f"{folder}: {error}") from error

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Hold the folder's lock: one process at a time builds and publishes, so a serving
        process that saw a change first does not build what the sync is about to publish."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def rates(self, stamp: VersionStamp) -> dict[str, Decimal] | None:
        """The store's exchange rates the snapshot's amounts were converted at (None when it
        does not say)."""
        try:
            meta = json.loads((self.path(stamp) / "facts.json").read_text(encoding="utf-8"))
            rates = meta.get("rates")
            return None if rates is None else {c: Decimal(r) for c, r in rates.items()}
        except (OSError, ValueError, AttributeError, ArithmeticError) as error:
            raise SnapshotUnreadable(f"{self.path(stamp)}: {error}") from error

    def write(
        self,
        facts: Facts,
        token: str,
        rates: Mapping[str, Decimal] | None = None,
        previous: VersionStamp | None = None,
        unchanged: Iterable[str] = (),
        patches: Mapping[str, tuple[TableIndexes, np.ndarray]] | None = None,
        columns: Mapping[str, Earlier] | None = None,
    ) -> Path:
        """Publish ``facts`` as the snapshot of ``facts.version`` with ``token``, atomically,
        and drop every other but ``previous``, the snapshot they were built from (a process
        may still be about to map it): older ones, and those of another history (a store
        made again or restored in its place) that the caller did not build from. The
        ``unchanged`` tables are those of the snapshot ``previous``: their files are linked,
        not written again. A table of ``patches`` has the indexes given there, patched by the
        rows at the positions given (the only ones new or changed), instead of indexes built
        again. ``columns``: the arrays of the snapshot ``previous`` as the facts were mapped
        from it (``Mapped.columns``), which those the facts still share are, or were copied
        from (``Earlier.copy``); else the tables' arrays are mapped again to be compared."""
        stamp = VersionStamp(facts.version, token)
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        kept = set(unchanged) if previous is not None else set()
        try:
            for table in TABLES:
                if table in kept and self._linked(previous, table, staging):
                    continue
                earlier = None if previous is None else self._earlier(previous, table, columns)
                _write_table(staging, table, getattr(facts, table), facts.version, earlier)
                if table in INDEXED_TABLES:
                    patch = None if patches is None else patches.get(table)
                    reused = None  # the old indexes' arrays as the previous snapshot holds them
                    if patch is not None and previous is not None:
                        reused = Reusable(self.path(previous), table, patch[0]).earlier()
                    rows = len(getattr(facts, table))
                    indexes = _indexes(facts, table, patch, reused)
                    write_indexes(staging, table, indexes, rows, facts.version, reused)
            meta: dict[str, Any] = {"currency": facts.currency, "minor_digits": facts.minor_digits}
            if rates is not None:
                meta["rates"] = {c: str(r) for c, r in rates.items()}
            (staging / "facts.json").write_text(json.dumps(meta), encoding="utf-8")
            target = self.path(stamp)
            if target.exists():  # unreadable, or another process published it meanwhile
                shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune({stamp, previous})
        return target

    def _earlier(
        self, previous: VersionStamp, table: str, columns: Mapping[str, Earlier] | None
    ) -> Earlier | None:
        """``table``'s arrays in the snapshot ``previous``: as given, else mapped again."""
        given = None if columns is None else columns.get(table)
        if given is not None and given.folder == self.path(previous):
            return given
        return _earlier_columns(self.path(previous), table)

    def _linked(self, previous: VersionStamp | None, table: str, staging: Path) -> bool:
        """Link ``table``'s file of the snapshot ``previous`` into ``staging``; False when
        it is gone (pruned, discarded)."""
        if previous is None:
            return False
        names: list[str] = []
        try:
            names += _table_files(self.path(previous), table)
            names += index_files(self.path(previous), table)
            for name in names:
                os.link(self.path(previous) / name, staging / name)
        except (OSError, ValueError, KeyError):  # gone, or a manifest unreadable
            for name in names:
                (staging / name).unlink(missing_ok=True)
            return False
        return True

    def discard(self, stamp: VersionStamp) -> None:
        shutil.rmtree(self.path(stamp), ignore_errors=True)

    def _prune(self, kept: set[VersionStamp | None]) -> None:
        # Linux keeps the pages of a mapped file that is removed: a process still answering
        # from an older snapshot is not disturbed.
        for stamp in self.versions():
            if stamp not in kept:
                self.discard(stamp)
        for entry in self.folder.iterdir():
            if self._untokened.fullmatch(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
