"""Named numpy arrays in a snapshot's data files, written so that the next snapshot keeps
what did not change where it is (``bot.store.index_files`` for a table's indexes,
``bot.store.facts_snapshot`` for its numeric columns).

An array of up to ``_CHUNK`` bytes is packed in ``<stem>.v<version>``; a larger one is
stored in chunks of ``_CHUNK`` bytes, each at a multiple of it, in ``<stem>.chunks.v<version>``.
Each array's entry (which a manifest keeps) says where it is: a file and an offset, or the
runs of its chunks (file, offset, size: chunks that follow each other in one file make one),
so that what a manifest lists, and every publish and serving process reads, follows the runs
that changes made, not the chunks of the whole table (25,000 at four million deals). A
snapshot refreshed from an earlier one keeps, where that one had them, an array it holds
unchanged (the very memory mapped from it) and each chunk of a large array whose bytes are
the earlier array's there, and links the data files holding them into its own folder. Of an
array written over a copy of the earlier one mapped copy on write (``Earlier.copy``), the
chunks none of whose pages were written are known to be the earlier ones without a look (the
kernel's page map, ``bot.store.stitched.unwritten_pages``); the others, and every chunk of
other arrays, are compared. A patch of a few rows changes a date order around the places the
rows left and took, and shifts what lies between: a sync that changed ten deals among a
million writes a few megabytes, not the 140 MB of the deals' indexes. A large array whose
runs are in several files is mapped side by side from them (``bot.store.stitched``), and
serving processes keep the pages they had of the chunks kept. A file whose arrays were mostly
replaced since is not kept alive for the rest: nothing is kept from a file that would hold
more than ``_SLACK`` times the bytes kept from it.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.stitched import stitched, unwritten_pages
from metrics.index_patch import Copier, copied

_ALIGN = 64  # each array of a packed data file starts on a cache line
# A large array is stored in chunks of this many bytes, each at a multiple of it in its file:
# a multiple of every page size (4, 16 and 64 KiB), as a mapping's place must be.
_CHUNK = 1 << 16
_SLACK = 2  # a linked file may hold up to this many times the bytes reused from it
Key = tuple[Any, ...]  # an array's name among those of one manifest
Entry = dict[str, Any]  # where an array is, in a manifest
Run = tuple[str, int, int]  # bytes of an array in a data file: the file, offset and size


@dataclass(frozen=True)
class _Chunks:
    """Where each chunk of a large array goes: kept where an earlier snapshot wrote it (in
    ``names[file[n]]`` at ``at[n]``), or written (``file[n]`` -1). As arrays, not a list of
    pairs: an array's chunks are thousands at a few million rows."""

    names: list[str]
    file: np.ndarray  # int64, a chunk's file among ``names``, or -1
    at: np.ndarray  # int64, its offset there

    @classmethod
    def fresh(cls, count: int) -> _Chunks:
        return cls([], np.full(count, -1, dtype=np.int64), np.zeros(count, dtype=np.int64))

    @classmethod
    def stored(cls, entry: Entry, count: int) -> _Chunks:
        """The chunks of a chunked ``entry`` where they are, for an array of ``count``
        chunks: the ones past the entry's are written."""
        runs = entry["runs"]
        names = sorted({name for name, _, _ in runs})
        sizes = np.fromiter((size for _, _, size in runs), dtype=np.int64, count=len(runs))
        starts = np.fromiter((at for _, at, _ in runs), dtype=np.int64, count=len(runs))
        codes = np.fromiter(
            (names.index(name) for name, _, _ in runs), dtype=np.int64, count=len(runs)
        )
        counts = -(-sizes // _CHUNK)  # a run is whole chunks but for the array's last
        first = np.cumsum(counts) - counts  # each run's first chunk among the array's
        step = (np.arange(int(counts.sum())) - np.repeat(first, counts)) * _CHUNK
        file, at = np.repeat(codes, counts)[:count], (np.repeat(starts, counts) + step)[:count]
        missing = count - len(file)
        if missing > 0:
            file = np.concatenate([file, np.full(missing, -1, dtype=np.int64)])
            at = np.concatenate([at, np.zeros(missing, dtype=np.int64)])
        return cls(names, file, at)

    def without(self, kept: np.ndarray) -> _Chunks:
        """These chunks, written instead where ``kept`` is false."""
        return _Chunks(self.names, np.where(kept, self.file, -1), self.at)

    def files(self) -> set[str]:
        return {self.names[code] for code in np.unique(self.file[self.file >= 0]).tolist()}

    def kept_bytes(self) -> Counter[str]:
        """The bytes kept in each file, in whole chunks (an array's last one may be short:
        ``_SLACK`` does not need the difference)."""
        counts = np.bincount(self.file[self.file >= 0], minlength=len(self.names)) * _CHUNK
        return Counter({self.names[n]: int(c) for n, c in enumerate(counts.tolist()) if c})

    def runs(self, size: int) -> list[Run]:
        """The chunks, all placed (none -1), as runs: those that follow each other in one
        file make one."""
        ends = np.flatnonzero(
            (self.file[1:] != self.file[:-1]) | (self.at[1:] != self.at[:-1] + _CHUNK)
        )
        starts = [0, *(ends + 1).tolist()]
        stops = [*starts[1:], len(self.file)]
        return [
            (self.names[int(self.file[a])], int(self.at[a]), min(size, b * _CHUNK) - a * _CHUNK)
            for a, b in zip(starts, stops, strict=True)
        ]


# How each array is stored: an entry kept as it is (packed or chunked), its chunks (kept
# where they are, or written), or None: written packed.
_Plan = Entry | _Chunks | None


@dataclass(frozen=True)
class Earlier:
    """The arrays an earlier snapshot in ``folder`` holds, as mapped from it, by name with
    their entries (``matched``): what a new snapshot may keep where it is."""

    folder: Path
    arrays: dict[Key, tuple[np.ndarray, Entry]]
    # The copies ``copy`` mapped from the files, by address, with the entry of each.
    _copies: dict[int, tuple[np.ndarray, Entry]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @cached_property
    def _chunked(self) -> dict[int, tuple[np.ndarray, Entry]]:
        # By address: a frame's column is a view of the array mapped, not the array itself.
        return {
            _address(array): (array, entry)
            for array, entry in self.arrays.values()
            if "runs" in entry
        }

    def copy(self, array: np.ndarray, length: int) -> np.ndarray:
        """A writable copy of ``array`` made ``length`` long (the items past its own
        undefined), for a patch to write over (``metrics.index_patch.Copier``): one of these
        arrays held in chunks (or a view of all of it) is mapped again from its files copy
        on write (``writable_copy``), so that the pages a patch leaves alone are not copied;
        any other is copied."""
        held = self._chunked.get(_address(array))
        if held is not None and _same_memory(array, held[0]):
            try:
                made = writable_copy(self.folder, held[1], length)
            except OSError:  # a file gone meanwhile: the array is still mapped
                pass
            else:
                self._copies[_address(made)] = (made, held[1])
                return made
        return copied(array, length)

    def unwritten(self, array: np.ndarray, entry: Entry) -> np.ndarray | None:
        """When ``array`` is a copy ``copy`` made of the array of ``entry`` (or its start):
        whether each of its chunks is still that array's chunk at its place, none of its
        pages written since (``bot.store.stitched.unwritten_pages``); a chunk that ends
        elsewhere than the old one's does not count as one. None for any other array, and
        where the system does not tell."""
        made = self._copies.get(_address(array))
        if made is None or made[1] is not entry or array.nbytes > made[0].nbytes:
            return None
        pages = unwritten_pages(array)
        if pages is None:
            return None
        per_chunk = _CHUNK // mmap.PAGESIZE
        count = -(-len(pages) // per_chunk)
        padded = np.ones(count * per_chunk, dtype=bool)
        padded[: len(pages)] = pages
        unwritten = padded.reshape(count, per_chunk).all(axis=1)
        # A chunk is the old one's only if it ends where that one did: the old array's last
        # chunk is whole in a longer array, and the new array's last is short in a shorter one.
        old_size = int(entry["length"]) * np.dtype(entry["dtype"]).itemsize
        ends = (np.arange(count) + 1) * _CHUNK
        same_end = np.minimum(ends, array.nbytes) == np.minimum(ends, old_size)
        kept: np.ndarray = unwritten & same_end
        return kept


def copier(earlier: Earlier | None) -> Copier:
    """What a patch writes its changes over: ``earlier``'s copies (what it holds in chunks
    mapped again copy on write), or plain copies when there is no earlier snapshot."""
    return copied if earlier is None else earlier.copy


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def _same_memory(array: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``array`` is ``other``'s memory, all of it, read the same way: the same
    bytes, whatever the object."""
    return (
        _address(array) == _address(other)
        and array.nbytes == other.nbytes
        and array.dtype == other.dtype
        and array.flags.c_contiguous
        and other.flags.c_contiguous
    )


def matched(
    arrays: dict[Key, np.ndarray], entries: dict[Key, Entry]
) -> dict[Key, tuple[np.ndarray, Entry]]:
    """Each of ``arrays`` (read from the ``entries`` of a manifest) with its entry, when it
    is the array the entry describes."""
    return {
        key: (array, entries[key])
        for key, array in arrays.items()
        if key in entries
        and entries[key]["dtype"] == array.dtype.str
        and entries[key]["length"] == len(array)
    }


def bytes_used(entries: Iterable[Entry]) -> dict[str, int]:
    """The bytes the ``entries`` read from each data file they name, alignment included."""
    used: Counter[str] = Counter()
    for entry in entries:
        used.update(_pieces(entry))
    return dict(used)


def _pieces(entry: Entry) -> Counter[str]:
    """The data files an entry reads and the bytes it takes in each."""
    if "runs" not in entry:
        size = entry["length"] * np.dtype(entry["dtype"]).itemsize
        return Counter({entry["file"]: _footprint(size)})
    used: Counter[str] = Counter()
    for name, _, size in entry["runs"]:
        used[name] += size
    return used


def write_arrays(
    folder: Path, stem: str, version: int, arrays: dict[Key, np.ndarray], earlier: Earlier | None
) -> dict[Key, Entry]:
    """``arrays`` into ``folder``: what is not kept from ``earlier`` in this snapshot's data
    files, the files of what is kept linked; the entry of each array. What is in files gone
    since (the earlier snapshot pruned meanwhile) is written too."""
    plans = _plans(arrays, earlier)
    if earlier is not None and not _linked(plans, earlier.folder, folder):
        plans = {key: _fresh(array) for key, array in arrays.items()}  # pruned meanwhile
    packed, chunked = f"{stem}.v{version}", f"{stem}.chunks.v{version}"
    entries: dict[Key, Entry] = {}
    with (folder / packed).open("wb") as out, (folder / chunked).open("wb") as chunks:
        for key, array in arrays.items():
            plan = plans[key]
            if isinstance(plan, dict):
                entries[key] = plan
                continue
            data = np.ascontiguousarray(array).view(np.uint8)
            entry = {"dtype": array.dtype.str, "length": len(array)}
            if plan is None:
                out.write(b"\0" * (-out.tell() % _ALIGN))
                entries[key] = {"file": packed, "at": out.tell(), **entry}
                out.write(data.data)
                continue
            # The chunks to write, each at a multiple of a chunk (those written one after
            # another make one run), and one a call: a run written in one call (30 MB for a
            # new array at 4M deals) left the file in larger pages of the page cache, and a
            # process mapping one of its pages had more of them resident (a 10-deal sync's
            # peak at 4M deals 396-466 MB, against 297-332 MB written chunk by chunk).
            names, file, at = [*plan.names, chunked], plan.file.copy(), plan.at.copy()
            for n in np.flatnonzero(file < 0).tolist():
                chunks.seek(-chunks.tell() % _CHUNK, os.SEEK_CUR)  # a hole, not zeros
                file[n], at[n] = len(plan.names), chunks.tell()
                chunks.write(data[n * _CHUNK : (n + 1) * _CHUNK].data)
            placed = _Chunks(names, file, at).runs(array.nbytes)
            entries[key] = {"runs": [list(run) for run in placed], **entry}
    used = bytes_used(entries.values())
    for name in (packed, chunked):
        if name not in used:
            (folder / name).unlink()  # nothing of its kind written
    return entries


def _plans(arrays: dict[Key, np.ndarray], earlier: Earlier | None) -> dict[Key, _Plan]:
    """How to store each array: an old array held unchanged keeps its entry; a large one
    keeps each chunk whose bytes are those of the old array's chunk at the same place (a
    patch changes a few runs of a date order and shifts what lies between them: the rest
    stays); the others are written. Nothing is kept from a file that would hold more than
    ``_SLACK`` times the bytes kept from it: its arrays and chunks are written afresh."""
    plans: dict[Key, _Plan] = {key: _fresh(array) for key, array in arrays.items()}
    if earlier is None:
        return plans
    old = earlier.arrays
    for key, array in arrays.items():
        if key not in old:
            continue
        before, entry = old[key]
        plan = plans[key]
        if _same_memory(array, before):
            plans[key] = entry
        elif "runs" in entry and isinstance(plan, _Chunks):
            stored = _Chunks.stored(entry, _chunk_count(array))
            plans[key] = _same_chunks(array, before, stored, earlier.unwritten(array, entry))
    held: Counter[str] = Counter()
    for plan in plans.values():
        held.update(_kept(plan))
    try:
        wasteful = {
            name for name, size in held.items()
            if os.stat(earlier.folder / name).st_size > _SLACK * size
        }  # fmt: skip
    except OSError:  # pruned meanwhile
        return {key: _fresh(array) for key, array in arrays.items()}
    for (key, plan), array in zip(plans.items(), arrays.values(), strict=True):
        if isinstance(plan, dict) and _files(plan) & wasteful:
            # Kept whole from a file mostly replaced since: written, or those of its chunks
            # that are in the other files kept.
            plan = _Chunks.stored(plan, _chunk_count(array)) if "runs" in plan else None
        if isinstance(plan, _Chunks):
            codes = [n for n, name in enumerate(plan.names) if name in wasteful]
            plan = plan.without(~np.isin(plan.file, codes))
        plans[key] = plan
    return plans


def _fresh(array: np.ndarray) -> _Plan:
    """An array written anew: packed, or in chunks when it spans more than one."""
    return _Chunks.fresh(_chunk_count(array)) if array.nbytes > _CHUNK else None


def _chunk_count(array: np.ndarray) -> int:
    return -(-array.nbytes // _CHUNK)


def _same_chunks(
    array: np.ndarray, before: np.ndarray, stored: _Chunks, unwritten: np.ndarray | None
) -> _Chunks:
    """``array``'s chunks, each the old one (``before``'s, ``stored`` where it is) when it
    holds the same bytes, else written: known to without a look when ``unwritten`` says so
    (``Earlier.unwritten``), else compared."""
    new = np.ascontiguousarray(array).view(np.uint8)
    old = before.view(np.uint8)
    kept = stored.file >= 0
    looked = kept if unwritten is None else kept & ~unwritten
    for n in np.flatnonzero(looked).tolist():
        part = slice(n * _CHUNK, (n + 1) * _CHUNK)
        same = len(new[part]) == len(old[part]) and bool(np.array_equal(new[part], old[part]))
        kept[n] = same
    return stored.without(kept)


def _kept(plan: _Plan) -> Counter[str]:
    """The old files a plan reads from and the bytes it keeps in each."""
    if isinstance(plan, dict):
        return _pieces(plan)
    if isinstance(plan, _Chunks):
        return plan.kept_bytes()
    return Counter()


def _files(entry: Entry) -> set[str]:
    """The data files an entry reads."""
    return {name for name, _, _ in entry["runs"]} if "runs" in entry else {entry["file"]}


def _linked(plans: dict[Key, _Plan], source: Path, folder: Path) -> bool:
    """Link the files the ``plans`` keep arrays or chunks in from ``source`` into ``folder``;
    False (and none linked) when one is gone."""
    names: set[str] = set()
    for plan in plans.values():
        if isinstance(plan, dict):
            names |= _files(plan)
        elif isinstance(plan, _Chunks):
            names |= plan.files()
    try:
        for name in names:
            os.link(source / name, folder / name)
    except OSError:
        for name in names:
            (folder / name).unlink(missing_ok=True)
        return False
    return True


def _footprint(size: int) -> int:
    """The bytes an array of ``size`` bytes takes in a packed data file, with its alignment."""
    return size + -size % _ALIGN


def read_arrays(folder: Path, entries: dict[Key, Entry]) -> dict[Key, np.ndarray]:
    """The arrays the ``entries`` describe, mapped from the data files in ``folder``
    (read-only). Raises ``ValueError`` or ``OSError`` for a file truncated or gone."""
    maps: dict[str, Any] = {}

    def whole(name: str) -> Any:
        if name not in maps:
            with (folder / name).open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                # The map outlives the file object; the arrays keep it alive.
                maps[name] = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return maps[name]

    arrays: dict[Key, np.ndarray] = {}
    for key, entry in entries.items():
        dtype = np.dtype(entry["dtype"])
        runs = _runs(entry)
        if len(runs) > 1:  # chunks of several files, or not in order
            pieces = [(folder / name, at, size) for name, at, size in runs]
            arrays[key] = stitched(pieces, dtype, entry["length"])
            continue
        name, at, size = runs[0]
        if at + size > len(whole(name)):
            raise ValueError(f"{folder / name} is truncated")
        arrays[key] = np.frombuffer(whole(name), dtype, count=entry["length"], offset=at)
    return arrays


def writable_copy(folder: Path, entry: Entry, length: int) -> np.ndarray:
    """A private, writable copy of the array of a chunked ``entry`` in ``folder``, made
    ``length`` long (its items past the array's are left undefined): mapped copy on write
    from the array's files (``bot.store.stitched``), so that only the pages written are
    copied. Raises ``OSError`` for a file truncated or gone."""
    dtype = np.dtype(entry["dtype"])
    room = min(length, entry["length"]) * dtype.itemsize
    runs: list[tuple[Path, int, int]] = []
    for name, at, size in _runs(entry):
        if room > 0:
            runs.append((folder / name, at, min(size, room)))
        room -= size
    return stitched(runs, dtype, length, writable=True)


def _runs(entry: Entry) -> list[Run]:
    """The bytes of an entry as runs (file, offset, size)."""
    if "runs" not in entry:
        size = entry["length"] * np.dtype(entry["dtype"]).itemsize
        return [(entry["file"], entry["at"], size)]
    return [(name, at, size) for name, at, size in entry["runs"]]
