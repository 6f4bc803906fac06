"""Named numpy arrays in a snapshot's data files, written so that the next snapshot keeps
what did not change where it is (``bot.store.index_files`` for a table's indexes,
``bot.store.facts_snapshot`` for its numeric columns).

An array of up to ``_CHUNK`` bytes is packed in ``<stem>.v<version>``; a larger one is
stored in chunks of ``_CHUNK`` bytes, each at a multiple of it, in ``<stem>.chunks.v<version>``.
Each array's entry (which a manifest keeps) says where it is: a file and an offset, or a file
and offset per chunk. A snapshot refreshed from an earlier one keeps, where that one had them,
an array it holds unchanged (the very memory mapped from it) and each chunk of a large array
whose bytes are the earlier array's there, and links the data files holding them into its own
folder. Of an array written over a copy of the earlier one mapped copy on write
(``Earlier.copy``), the chunks none of whose pages were written are known to be the earlier
ones without a look (the kernel's page map, ``bot.store.stitched.unwritten_pages``); the
others, and every chunk of other arrays, are compared. A patch
of a few rows changes a date order around the places the rows left and took, and shifts what
lies between: a sync that changed ten deals among a million writes a few megabytes, not the
140 MB of the deals' indexes. A large array whose chunks are in several files is mapped side
by side from them (``bot.store.stitched``), and serving processes keep the pages they had of
the chunks kept. A file whose arrays were mostly replaced since is not kept alive for the
rest: nothing is kept from a file that would hold more than ``_SLACK`` times the bytes kept
from it.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator
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
Ref = tuple[str, int]  # a chunk: its data file and offset
# How each array is stored: a packed entry kept as it is, its chunks (kept where they are, or
# None: written), or None: written packed.
_Plan = Entry | list[Ref | None] | None


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
            if "chunks" in entry
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
    used: dict[str, int] = {}
    for entry in entries:
        for name, size in _pieces(entry):
            used[name] = used.get(name, 0) + size
    return used


def _pieces(entry: Entry) -> Iterator[tuple[str, int]]:
    """The data files an entry reads and the bytes it takes in each."""
    size = entry["length"] * np.dtype(entry["dtype"]).itemsize
    if "chunks" not in entry:
        yield entry["file"], _footprint(size)
        return
    for n, (name, _) in enumerate(entry["chunks"]):
        yield name, _chunk_size(size, n)


def _chunk_size(size: int, n: int) -> int:
    """The bytes of chunk ``n`` of an array of ``size`` bytes: the last one may be short."""
    return min(_CHUNK, size - n * _CHUNK)


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
            refs: list[Ref] = []
            for n, ref in enumerate(plan):
                if ref is None:
                    chunks.seek(-chunks.tell() % _CHUNK, os.SEEK_CUR)  # a hole, not zeros
                    ref = (chunked, chunks.tell())
                    chunks.write(data[n * _CHUNK : (n + 1) * _CHUNK].data)
                refs.append(ref)
            entries[key] = {"chunks": [list(ref) for ref in refs], **entry}
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
    ``_SLACK`` times the bytes kept from it: its arrays are written afresh."""
    plans: dict[Key, _Plan] = {key: _fresh(array) for key, array in arrays.items()}
    if earlier is None:
        return plans
    old = earlier.arrays
    for key, array in arrays.items():
        if key not in old:
            continue
        before, entry = old[key]
        if _same_memory(array, before):
            plans[key] = entry if "chunks" not in entry else [tuple(c) for c in entry["chunks"]]
        elif "chunks" in entry and isinstance(plans[key], list):
            unwritten = earlier.unwritten(array, entry)
            plans[key] = _same_chunks(array, before, entry["chunks"], unwritten)
    held: dict[str, int] = {}
    for plan, array in zip(plans.values(), arrays.values(), strict=True):
        for name, size in _kept(plan, array):
            held[name] = held.get(name, 0) + size
    try:
        wasteful = {
            name for name, size in held.items()
            if os.stat(earlier.folder / name).st_size > _SLACK * size
        }  # fmt: skip
    except OSError:  # pruned meanwhile
        return {key: _fresh(array) for key, array in arrays.items()}
    for key, plan in plans.items():
        if isinstance(plan, dict) and plan["file"] in wasteful:
            plans[key] = None
        elif isinstance(plan, list):
            plans[key] = [None if ref is None or ref[0] in wasteful else ref for ref in plan]
    return plans


def _fresh(array: np.ndarray) -> _Plan:
    """An array written anew: packed, or in chunks when it spans more than one."""
    return [None] * -(-array.nbytes // _CHUNK) if array.nbytes > _CHUNK else None


def _same_chunks(
    array: np.ndarray, before: np.ndarray, refs: list[list[Any]], unwritten: np.ndarray | None
) -> list[Ref | None]:
    """``array``'s chunks, each the old one (``before``'s, stored at ``refs``) when it holds
    the same bytes, else None: known to without a look when ``unwritten`` says so
    (``Earlier.unwritten``), else compared."""
    new = np.ascontiguousarray(array).view(np.uint8)
    old = before.view(np.uint8)
    plan: list[Ref | None] = []
    for n in range(-(-len(new) // _CHUNK)):
        if unwritten is not None and unwritten[n]:
            plan.append((refs[n][0], refs[n][1]))
            continue
        part = slice(n * _CHUNK, (n + 1) * _CHUNK)
        same = n < len(refs) and len(new[part]) == len(old[part])
        same = same and bool(np.array_equal(new[part], old[part]))
        plan.append((refs[n][0], refs[n][1]) if same else None)
    return plan


def _kept(plan: _Plan, array: np.ndarray) -> Iterator[tuple[str, int]]:
    """The old files a plan reads from and the bytes it keeps in each."""
    if isinstance(plan, dict):
        yield from _pieces(plan)
    elif isinstance(plan, list):
        for n, ref in enumerate(plan):
            if ref is not None:
                yield ref[0], _chunk_size(array.nbytes, n)


def _linked(plans: dict[Key, _Plan], source: Path, folder: Path) -> bool:
    """Link the files the ``plans`` keep arrays or chunks in from ``source`` into ``folder``;
    False (and none linked) when one is gone."""
    names: set[str] = set()
    for plan in plans.values():
        if isinstance(plan, dict):
            names.add(plan["file"])
        elif isinstance(plan, list):
            names.update(ref[0] for ref in plan if ref is not None)
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


def _runs(entry: Entry) -> list[tuple[str, int, int]]:
    """The bytes of an entry as runs (file, offset, size): its chunks that follow each other
    in one file make one run."""
    size = entry["length"] * np.dtype(entry["dtype"]).itemsize
    if "chunks" not in entry:
        return [(entry["file"], entry["at"], size)]
    runs: list[tuple[str, int, int]] = []
    for n, (name, at) in enumerate(entry["chunks"]):
        part = _chunk_size(size, n)
        if runs and runs[-1][0] == name and runs[-1][1] + runs[-1][2] == at:
            runs[-1] = (name, runs[-1][1], runs[-1][2] + part)
        else:
            runs.append((name, at, part))
    return runs
