"""A facts snapshot's indexes on disk (``metrics.index.TableIndexes``), for serving processes
to map instead of building them.

``<table>.index.json`` says where each array is: in which data file of the snapshot's folder,
at which offset, of which type and length. A snapshot writes what it made into its own data
files: the arrays of up to ``_CHUNK`` bytes packed in ``<table>.index.v<version>``, the
larger ones in chunks of ``_CHUNK`` bytes in ``<table>.chunks.v<version>``. What it holds
unchanged from the snapshot it was refreshed from stays where that snapshot had it, and the
data file holding it is linked into the new folder: an array ``metrics.index_patch`` kept
whole, and each chunk of a large array whose bytes are the old array's there. A patch of a
few rows changes a date order around the places the rows left and took, and shifts what lies
between: a sync that changed ten deals among a million writes a few megabytes, not the 140 MB
of the deals' indexes. Serving processes map a large array's chunks side by side from their
files (``bot.store.stitched``) and keep the pages they had of those kept. A file whose arrays
were mostly replaced since is not kept alive for the rest: nothing is kept from a file that
would hold more than ``_SLACK`` times the bytes kept from it.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.stitched import stitched
from metrics.index import DateOrder, Only, Part, TableIndexes
from metrics.scopes import Level, Scope

_ALIGN = 64  # each array of a packed data file starts on a cache line
# A large array is stored in chunks of this many bytes, each at a multiple of it in its file:
# a multiple of every page size (4, 16 and 64 KiB), as a mapping's place must be.
_CHUNK = 1 << 16
_SLACK = 2  # a linked file may hold up to this many times the bytes reused from it
Key = tuple[Any, ...]  # where an array is among a table's indexes (``_keyed``)
Ref = tuple[str, int]  # a chunk: its data file and offset
# How each array is stored: a packed entry kept as it is, its chunks (kept where they are, or
# None: written), or None: written packed.
_Plan = dict[str, Any] | list[Ref | None] | None


def _manifest_path(folder: Path, table: str) -> Path:
    return folder / f"{table}.index.json"


def index_files(folder: Path, table: str) -> list[str]:
    """The names of the files of ``table``'s indexes in ``folder`` (none when it has none):
    the manifest and the data files it names."""
    path = _manifest_path(folder, table)
    if not path.exists():
        return []
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return [path.name, *sorted(bytes_used(manifest))]


def bytes_used(manifest: dict[str, Any]) -> dict[str, int]:
    """The bytes a manifest reads from each data file it names, alignment included."""
    used: dict[str, int] = {}
    for entry in _keyed_entries(manifest).values():
        for name, size in _pieces(entry):
            used[name] = used.get(name, 0) + size
    return used


def _pieces(entry: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """The data files an entry reads and the bytes it takes in each."""
    size = entry["length"] * np.dtype(entry["dtype"]).itemsize
    if "chunks" not in entry:
        yield entry["file"], footprint(size)
        return
    for n, (name, _) in enumerate(entry["chunks"]):
        yield name, min(_CHUNK, size - n * _CHUNK)


@dataclass(frozen=True)
class Reusable:
    """The indexes of ``table`` a snapshot in ``folder`` published, as mapped (``old``): the
    arrays, and the chunks of the large ones, a new snapshot may keep where they are. ``old``
    must be the object ``read_indexes`` gave, unchanged since (``Facts.adopted`` keeps it so)."""

    folder: Path
    table: str
    old: TableIndexes

    def entries(self) -> dict[Key, tuple[np.ndarray, dict[str, Any]]]:
        """Each old array by its place, with its manifest entry."""
        manifest = json.loads(_manifest_path(self.folder, self.table).read_text(encoding="utf-8"))
        entries = _keyed_entries(manifest)
        return {
            key: (array, entries[key])
            for key, array in _keyed(self.old).items()
            if key in entries
            and entries[key]["dtype"] == array.dtype.str
            and entries[key]["length"] == len(array)
        }


def write_indexes(
    folder: Path,
    table: str,
    indexes: TableIndexes,
    rows: int,
    version: int,
    reusable: Reusable | None = None,
) -> None:
    """``indexes`` (of a table ``rows`` long) into ``folder``: the manifest, what is not
    reused from ``reusable`` in this snapshot's data files (``<table>.index.v<version>``
    for the arrays packed, ``<table>.chunks.v<version>`` for the chunks of the large ones),
    the files of what is reused linked. What is in files gone since (the earlier snapshot
    pruned meanwhile) is written too."""
    arrays = _keyed(indexes)
    plans = _plans(arrays, reusable)
    if reusable is not None and not _linked(plans, reusable.folder, folder):
        plans = {key: None for key in arrays}  # the earlier snapshot was pruned meanwhile
    packed, chunked = f"{table}.index.v{version}", f"{table}.chunks.v{version}"
    entries: dict[Key, dict[str, Any]] = {}
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
    manifest = _manifest(indexes, rows, entries)
    used = bytes_used(manifest)
    for name in (packed, chunked):
        if name not in used:
            (folder / name).unlink()  # nothing of its kind written
    _manifest_path(folder, table).write_text(json.dumps(manifest), encoding="utf-8")


def _plans(arrays: dict[Key, np.ndarray], reusable: Reusable | None) -> dict[Key, _Plan]:
    """How to store each array: an old array held unchanged keeps its entry; a large one
    keeps each chunk whose bytes are those of the old array's chunk at the same place (a
    patch changes a few runs of a date order and shifts what lies between them: the rest
    stays); the others are written. Nothing is kept from a file that would hold more than
    ``_SLACK`` times the bytes kept from it: its arrays are written afresh."""
    plans: dict[Key, _Plan] = {key: _fresh(array) for key, array in arrays.items()}
    if reusable is None:
        return plans
    try:
        old = reusable.entries()
    except (OSError, ValueError, KeyError):  # pruned, or a manifest unreadable
        return plans
    for key, array in arrays.items():
        if key not in old:
            continue
        before, entry = old[key]
        if before is array:
            plans[key] = entry if "chunks" not in entry else [tuple(c) for c in entry["chunks"]]
        elif "chunks" in entry and isinstance(plans[key], list):
            plans[key] = _same_chunks(array, before, entry["chunks"])
    held: dict[str, int] = {}
    for plan, array in zip(plans.values(), arrays.values(), strict=True):
        for name, size in _kept(plan, array):
            held[name] = held.get(name, 0) + size
    try:
        wasteful = {
            name for name, size in held.items()
            if os.stat(reusable.folder / name).st_size > _SLACK * size
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


def _same_chunks(array: np.ndarray, before: np.ndarray, refs: list[list[Any]]) -> list[Ref | None]:
    """``array``'s chunks, each the old one (``before``'s, stored at ``refs``) when it holds
    the same bytes, else None."""
    new = np.ascontiguousarray(array).view(np.uint8)
    old = before.view(np.uint8)
    plan: list[Ref | None] = []
    for n in range(-(-len(new) // _CHUNK)):
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
                yield ref[0], min(_CHUNK, array.nbytes - n * _CHUNK)


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


def footprint(size: int) -> int:
    """The bytes an array of ``size`` bytes takes in a packed data file, with its alignment."""
    return size + -size % _ALIGN


def read_indexes(folder: Path, table: str, rows: int) -> TableIndexes | None:
    """The indexes published for ``table`` (``rows`` long), mapped; None when there are none."""
    path = _manifest_path(folder, table)
    if not path.exists():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest["rows"] != rows:
        raise ValueError(f"{table}'s indexes are for {manifest['rows']} rows, not {rows}")
    maps: dict[str, Any] = {}

    def whole(name: str) -> Any:
        if name not in maps:
            with (folder / name).open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                # The map outlives the file object; the arrays keep it alive.
                maps[name] = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return maps[name]

    arrays: dict[Key, np.ndarray] = {}
    for key, entry in _keyed_entries(manifest).items():
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
    return _unkeyed(manifest, arrays)


def _runs(entry: dict[str, Any]) -> list[tuple[str, int, int]]:
    """The bytes of an entry as runs (file, offset, size): its chunks that follow each other
    in one file make one run."""
    size = entry["length"] * np.dtype(entry["dtype"]).itemsize
    if "chunks" not in entry:
        return [(entry["file"], entry["at"], size)]
    runs: list[tuple[str, int, int]] = []
    for n, (name, at) in enumerate(entry["chunks"]):
        part = min(_CHUNK, size - n * _CHUNK)
        if runs and runs[-1][0] == name and runs[-1][1] + runs[-1][2] == at:
            runs[-1] = (name, runs[-1][1], runs[-1][2] + part)
        else:
            runs.append((name, at, part))
    return runs


def _keyed(indexes: TableIndexes) -> dict[Key, np.ndarray]:
    """Every array of ``indexes`` by its place (the same keys as ``_keyed_entries``)."""
    arrays: dict[Key, np.ndarray] = {}
    for name, array in indexes.columns.items():
        arrays[("columns", name)] = array
    for column, groups in indexes.groups.items():
        for name, array in groups.items():
            arrays[("groups", column, name)] = array
    for by, order in indexes.orders.items():
        if order.order is not None:
            arrays[("orders", by, "order")] = order.order
        arrays[("orders", by, "dates")] = order.dates
        for name, array in order.columns.items():
            arrays[("orders", by, "columns", name)] = array
    for (scope, by, only), (among, kept) in indexes.parts.items():
        part = ("parts", scope.level.value, scope.name, by, only)
        if among is not None:
            arrays[(*part, "among")] = among
        for name, array in kept.items():
            arrays[(*part, "kept", name)] = array
    return arrays


def _part_key(part: dict[str, Any]) -> Key:
    only = None if part["only"] is None else tuple(part["only"])
    return ("parts", part["scope"][0], part["scope"][1], part["by"], only)


def _keyed_entries(manifest: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """Every array entry of a manifest by its array's place (the keys of ``_keyed``)."""
    entries: dict[Key, dict[str, Any]] = {}
    for name, entry in manifest["columns"].items():
        entries[("columns", name)] = entry
    for column, groups in manifest["groups"].items():
        for name, entry in groups.items():
            entries[("groups", column, name)] = entry
    for by, order in manifest["orders"].items():
        if order["order"] is not None:
            entries[("orders", by, "order")] = order["order"]
        entries[("orders", by, "dates")] = order["dates"]
        for name, entry in order["columns"].items():
            entries[("orders", by, "columns", name)] = entry
    for part in manifest["parts"]:
        key = _part_key(part)
        if part["among"] is not None:
            entries[(*key, "among")] = part["among"]
        for name, entry in part["kept"].items():
            entries[(*key, "kept", name)] = entry
    return entries


def _manifest(indexes: TableIndexes, rows: int, entries: dict[Key, Any]) -> dict[str, Any]:
    """The manifest of ``indexes``, each array's entry taken from ``entries`` by its place."""
    return {
        "rows": rows,
        "columns": {name: entries[("columns", name)] for name in indexes.columns},
        "groups": {
            column: {name: entries[("groups", column, name)] for name in groups}
            for column, groups in indexes.groups.items()
        },
        "orders": {
            by: {
                "order": entries.get(("orders", by, "order")),
                "dates": entries[("orders", by, "dates")],
                "dated": order.dated,
                "columns": {n: entries[("orders", by, "columns", n)] for n in order.columns},
            }
            for by, order in indexes.orders.items()
        },
        "parts": [
            {
                "scope": [scope.level.value, scope.name],
                "by": by,
                "only": None if only is None else list(only),
                "among": entries.get(("parts", scope.level.value, scope.name, by, only, "among")),
                "kept": {
                    name: entries[("parts", scope.level.value, scope.name, by, only, "kept", name)]
                    for name in kept
                },
            }
            for (scope, by, only), (_, kept) in indexes.parts.items()
        ],
    }


def _unkeyed(manifest: dict[str, Any], arrays: dict[Key, np.ndarray]) -> TableIndexes:
    """The indexes a manifest describes, each array taken from ``arrays`` by its place."""
    parts: dict[tuple[Scope, str, Only], Part] = {}
    for part in manifest["parts"]:
        key = _part_key(part)
        scope = Scope(Level(part["scope"][0]), part["scope"][1])
        parts[(scope, part["by"], key[4])] = (
            arrays.get((*key, "among")),
            {name: arrays[(*key, "kept", name)] for name in part["kept"]},
        )
    return TableIndexes(
        columns={name: arrays[("columns", name)] for name in manifest["columns"]},
        groups={
            column: {name: arrays[("groups", column, name)] for name in groups}
            for column, groups in manifest["groups"].items()
        },
        orders={
            by: DateOrder(
                arrays.get(("orders", by, "order")),
                arrays[("orders", by, "dates")],
                {name: arrays[("orders", by, "columns", name)] for name in order["columns"]},
                int(order["dated"]),
            )
            for by, order in manifest["orders"].items()
        },
        parts=parts,
    )
