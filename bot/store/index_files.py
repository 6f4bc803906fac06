"""A facts snapshot's indexes on disk (``metrics.index.TableIndexes``), for serving processes
to map instead of building them.

``<table>.index.json`` says where each array is (``bot.store.array_files``: packed in
``<table>.index.v<version>``, or in chunks in ``<table>.index.chunks.v<version>``, or kept in
the files of an earlier snapshot, linked). A snapshot refreshed from an earlier one keeps
what ``metrics.index_patch`` left unchanged where that one had it: an array kept whole, and
each chunk of a large one whose bytes did not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.array_files import (
    Earlier,
    Entry,
    Key,
    bytes_used,
    matched,
    read_arrays,
    write_arrays,
)
from metrics.index import DateOrder, Only, Part, TableIndexes
from metrics.scopes import Level, Scope


def _manifest_path(folder: Path, table: str) -> Path:
    return folder / f"{table}.index.json"


def index_files(folder: Path, table: str) -> list[str]:
    """The names of the files of ``table``'s indexes in ``folder`` (none when it has none):
    the manifest and the data files it names."""
    path = _manifest_path(folder, table)
    if not path.exists():
        return []
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return [path.name, *sorted(bytes_used(entries(manifest).values()))]


@dataclass(frozen=True)
class Reusable:
    """The indexes of ``table`` a snapshot in ``folder`` published, as mapped (``old``): the
    arrays, and the chunks of the large ones, a new snapshot may keep where they are. ``old``
    must be the object ``read_indexes`` gave, unchanged since (``Facts.adopted`` keeps it so)."""

    folder: Path
    table: str
    old: TableIndexes

    def earlier(self) -> Earlier | None:
        """Each old array by its place, with its manifest entry; None when the snapshot is
        gone or its manifest unreadable (then every array is written)."""
        try:
            text = _manifest_path(self.folder, self.table).read_text(encoding="utf-8")
            return Earlier(self.folder, matched(_keyed(self.old), entries(json.loads(text))))
        except (OSError, ValueError, KeyError):
            return None


def write_indexes(
    folder: Path,
    table: str,
    indexes: TableIndexes,
    rows: int,
    version: int,
    earlier: Earlier | None = None,
) -> None:
    """``indexes`` (of a table ``rows`` long) into ``folder``: the manifest, and the arrays
    (``bot.store.array_files``), what ``earlier`` (``Reusable.earlier``) holds unchanged
    kept where it is."""
    written = write_arrays(folder, f"{table}.index", version, _keyed(indexes), earlier)
    manifest = _manifest(indexes, rows, written)
    _manifest_path(folder, table).write_text(json.dumps(manifest), encoding="utf-8")


def read_indexes(folder: Path, table: str, rows: int) -> TableIndexes | None:
    """The indexes published for ``table`` (``rows`` long), mapped; None when there are none."""
    path = _manifest_path(folder, table)
    if not path.exists():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest["rows"] != rows:
        raise ValueError(f"{table}'s indexes are for {manifest['rows']} rows, not {rows}")
    return _unkeyed(manifest, read_arrays(folder, entries(manifest)))


def _keyed(indexes: TableIndexes) -> dict[Key, np.ndarray]:
    """Every array of ``indexes`` by its place (the same keys as ``entries``)."""
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


def entries(manifest: dict[str, Any]) -> dict[Key, Entry]:
    """Every array entry of a manifest by its array's place (the keys of ``_keyed``)."""
    found: dict[Key, Entry] = {}
    for name, entry in manifest["columns"].items():
        found[("columns", name)] = entry
    for column, groups in manifest["groups"].items():
        for name, entry in groups.items():
            found[("groups", column, name)] = entry
    for by, order in manifest["orders"].items():
        if order["order"] is not None:
            found[("orders", by, "order")] = order["order"]
        found[("orders", by, "dates")] = order["dates"]
        for name, entry in order["columns"].items():
            found[("orders", by, "columns", name)] = entry
    for part in manifest["parts"]:
        key = _part_key(part)
        if part["among"] is not None:
            found[(*key, "among")] = part["among"]
        for name, entry in part["kept"].items():
            found[(*key, "kept", name)] = entry
    return found


def _manifest(indexes: TableIndexes, rows: int, written: dict[Key, Entry]) -> dict[str, Any]:
    """The manifest of ``indexes``, each array's entry taken from ``written`` by its place."""
    return {
        "rows": rows,
        "columns": {name: written[("columns", name)] for name in indexes.columns},
        "groups": {
            column: {name: written[("groups", column, name)] for name in groups}
            for column, groups in indexes.groups.items()
        },
        "orders": {
            by: {
                "order": written.get(("orders", by, "order")),
                "dates": written[("orders", by, "dates")],
                "dated": order.dated,
                "dead": order.dead.tolist(),  # a few, at most a thousandth of the entries
                "tail": order.tail,
                "columns": {n: written[("orders", by, "columns", n)] for n in order.columns},
            }
            for by, order in indexes.orders.items()
        },
        "parts": [
            {
                "scope": [scope.level.value, scope.name],
                "by": by,
                "only": None if only is None else list(only),
                "among": written.get(("parts", scope.level.value, scope.name, by, only, "among")),
                "kept": {
                    name: written[("parts", scope.level.value, scope.name, by, only, "kept", name)]
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
                np.asarray(order["dead"], dtype=np.int32),
                int(order["tail"]),
            )
            for by, order in manifest["orders"].items()
        },
        parts=parts,
    )
