"""A facts snapshot's indexes on disk (``metrics.index.TableIndexes``), for serving processes
to map instead of building them.

``<table>.index.json`` says where each array is: in which data file of the snapshot's folder,
at which offset, of which type and length. A snapshot writes the arrays it made into its own
data file, ``<table>.index.v<version>``; an array it holds unchanged from the snapshot it was
refreshed from (``metrics.index_patch`` keeps the old array when nothing in it changed) stays
where that snapshot had it, and the data file holding it is linked into the new folder. A
sync that changed a thousand deals among a million then writes the few arrays it changed, not
the 140 MB of all of them, and serving processes keep the pages they had of the others. A file
whose arrays were mostly replaced since is not kept alive for the rest: when the files a
snapshot would link hold more than twice the bytes it reuses from them, it writes every array
afresh.
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

from metrics.index import DateOrder, TableIndexes
from metrics.scopes import Level, Scope

_ALIGN = 64  # each array starts on a cache line
_SLACK = 2  # a linked file may hold up to this many times the bytes reused from it
_Reused = dict[int, tuple[np.ndarray, dict[str, Any]]]  # id of an old array -> it, its entry


def _manifest_path(folder: Path, table: str) -> Path:
    return folder / f"{table}.index.json"


def index_files(folder: Path, table: str) -> list[str]:
    """The names of the files of ``table``'s indexes in ``folder`` (none when it has none):
    the manifest and the data files it names."""
    path = _manifest_path(folder, table)
    if not path.exists():
        return []
    files = {entry["file"] for entry in _entries(json.loads(path.read_text(encoding="utf-8")))}
    return [path.name, *sorted(files)]


@dataclass(frozen=True)
class Reusable:
    """The indexes of ``table`` a snapshot in ``folder`` published, as mapped (``old``): the
    arrays a new snapshot may keep where they are. ``old`` must be the object ``read_indexes``
    gave, unchanged since (``Facts.adopted`` keeps it so): its arrays are matched to the
    manifest's entries in order."""

    folder: Path
    table: str
    old: TableIndexes

    def entries(self) -> _Reused:
        """id of each old array -> the array and its manifest entry."""
        manifest = json.loads(_manifest_path(self.folder, self.table).read_text(encoding="utf-8"))
        return {
            id(array): (array, entry)
            for array, entry in zip(_arrays(self.old), _entries(manifest), strict=True)
            if entry["dtype"] == array.dtype.str and entry["length"] == len(array)
        }


def write_indexes(
    folder: Path,
    table: str,
    indexes: TableIndexes,
    rows: int,
    version: int,
    reusable: Reusable | None = None,
) -> None:
    """``indexes`` (of a table ``rows`` long) into ``folder``: the manifest, the arrays not
    reused from ``reusable`` in this snapshot's data file, the files of those reused linked.
    Arrays whose files are gone (the earlier snapshot pruned meanwhile) are written too."""
    reused = _worth_reusing(indexes, reusable)
    if reusable is not None and not _linked(reused, reusable.folder, folder):
        reused = {}  # the earlier snapshot was pruned meanwhile
    own = f"{table}.index.v{version}"
    with (folder / own).open("wb") as out:

        def put(array: np.ndarray | None) -> dict[str, Any] | None:
            if array is None:
                return None
            found = reused.get(id(array))
            if found is not None and found[0] is array:
                return dict(found[1])
            out.write(b"\0" * (-out.tell() % _ALIGN))
            entry = {"file": own, "at": out.tell(), "dtype": array.dtype.str, "length": len(array)}
            out.write(np.ascontiguousarray(array).view(np.uint8).data)
            return entry

        manifest = {
            "rows": rows,
            "columns": {name: put(a) for name, a in indexes.columns.items()},
            "groups": {
                column: {name: put(a) for name, a in groups.items()}
                for column, groups in indexes.groups.items()
            },
            "orders": {
                by: {
                    "order": put(order.order),
                    "dates": put(order.dates),
                    "dated": order.dated,
                    "columns": {name: put(a) for name, a in order.columns.items()},
                }
                for by, order in indexes.orders.items()
            },
            "parts": [
                {
                    "scope": [scope.level.value, scope.name],
                    "by": by,
                    "only": None if only is None else list(only),
                    "among": put(among),
                    "kept": {name: put(a) for name, a in kept.items()},
                }
                for (scope, by, only), (among, kept) in indexes.parts.items()
            ],
        }
    if own not in {entry["file"] for entry in _entries(manifest)}:
        (folder / own).unlink()  # every array kept where it was
    _manifest_path(folder, table).write_text(json.dumps(manifest), encoding="utf-8")


def _linked(reused: _Reused, source: Path, folder: Path) -> bool:
    """Link the files holding the ``reused`` arrays from ``source`` into ``folder``; False
    (and none linked) when one is gone."""
    names = {entry["file"] for _, entry in reused.values()}
    try:
        for name in names:
            os.link(source / name, folder / name)
    except OSError:
        for name in names:
            (folder / name).unlink(missing_ok=True)
        return False
    return True


def _worth_reusing(indexes: TableIndexes, reusable: Reusable | None) -> _Reused:
    """The old arrays ``indexes`` holds, by id, unless the files holding them hold more than
    ``_SLACK`` times their bytes (then none: every array is written afresh)."""
    if reusable is None:
        return {}
    try:
        old = reusable.entries()
        kept = {id(a): old[id(a)] for a in _arrays(indexes) if id(a) in old and old[id(a)][0] is a}
        files = {entry["file"] for _, entry in kept.values()}
        held = sum(os.stat(reusable.folder / name).st_size for name in files)
    except (OSError, ValueError):  # pruned, or not the manifest the arrays were read from
        return {}
    used = sum(footprint(array.nbytes) for array, _ in kept.values())
    return kept if held <= _SLACK * used else {}


def footprint(size: int) -> int:
    """The bytes an array of ``size`` bytes takes in a data file, with its alignment."""
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

    def get(entry: dict[str, Any]) -> np.ndarray:
        name = entry["file"]
        if name not in maps:
            with (folder / name).open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                # The map outlives the file object; the arrays keep it alive.
                maps[name] = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        dtype = np.dtype(entry["dtype"])
        if entry["at"] + entry["length"] * dtype.itemsize > len(maps[name]):
            raise ValueError(f"{folder / name} is truncated")
        return np.frombuffer(maps[name], dtype, count=entry["length"], offset=entry["at"])

    return TableIndexes(
        columns={name: get(entry) for name, entry in manifest["columns"].items()},
        groups={
            column: {name: get(entry) for name, entry in groups.items()}
            for column, groups in manifest["groups"].items()
        },
        orders={
            by: DateOrder(
                None if o["order"] is None else get(o["order"]),
                get(o["dates"]),
                {name: get(entry) for name, entry in o["columns"].items()},
                int(o["dated"]),
            )
            for by, o in manifest["orders"].items()
        },
        parts={
            (Scope(Level(p["scope"][0]), p["scope"][1]), p["by"],
             None if p["only"] is None else tuple(p["only"])): (
                None if p["among"] is None else get(p["among"]),
                {name: get(entry) for name, entry in p["kept"].items()},
            )
            for p in manifest["parts"]
        },
    )  # fmt: skip


def _arrays(indexes: TableIndexes) -> Iterator[np.ndarray]:
    """Every array of ``indexes``, in the order the manifest lists them (``_entries``)."""
    yield from indexes.columns.values()
    for groups in indexes.groups.values():
        yield from groups.values()
    for order in indexes.orders.values():
        if order.order is not None:
            yield order.order
        yield order.dates
        yield from order.columns.values()
    for among, kept in indexes.parts.values():
        if among is not None:
            yield among
        yield from kept.values()


def _entries(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every array entry of a manifest, in the order ``_arrays`` yields the arrays."""
    yield from manifest["columns"].values()
    for groups in manifest["groups"].values():
        yield from groups.values()
    for order in manifest["orders"].values():
        if order["order"] is not None:
            yield order["order"]
        yield order["dates"]
        yield from order["columns"].values()
    for part in manifest["parts"]:
        if part["among"] is not None:
            yield part["among"]
        yield from part["kept"].values()
