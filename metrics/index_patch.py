"""A table's published indexes brought up to date by the rows a refresh changed, instead of
built again: what makes a sync's publish follow its changes rather than the table's size.

Building the usual indexes (``metrics.kpis.prepared_indexes``) sorts the whole table by each
date column and groups every scope's rows: 0.45 s at each publish of a million deals, for a
sync that changed a thousand. When the refresh kept every other row at its position (rows
updated in place, new ones added at the end, as ``bot.store.facts_loader`` merges them), the
old indexes hold everything but those rows: each date order loses their old places and takes
them at their new ones (binary searches for the thousand, one pass that shifts the rest), and
each scope's places are those it had, shifted, with the changed rows that are its now. An
array nothing changed in stays the old one (the mapped snapshot's); one whose values changed
but whose rows stayed in place is copied with the values written over. What comes out is,
array for array, what building them again gives (a property test checks it); the
whole-table passes left are copies and shifts, not sorts: 0.05-0.13 s instead of 0.27-0.64 s
for a thousand deals changed among a million.

A record deleted is the exception: its row, emptied, would move to the end of each order
with the rows without a date, and every entry after its old place would shift by one (every
chunk of the order written again for one deletion). Its entries stay where they are, marked
dead (``DateOrder.dead``), which every read leaves out; so the indexes are what building
them again gives once the dead entries are left out of them (a property test checks the
KPIs read through them against a mask over every row). A record back after its deletion,
or more dead rows than ``_DEAD_SHARE`` allows, has the indexes built again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from metrics.facts import LIVE_COLUMNS, Facts, level_column, whole_column
from metrics.index import DateOrder, Only, Part, TableIndexes
from metrics.kpis import usual_scopes
from metrics.scopes import Scope

# Patching costs about as much per changed row as building costs per twenty rows of the table
# (0.8-1.0 s against 0.3-0.6 s for 100,000 deals changed among a million): beyond a twentieth
# of the table, and a thousand rows, the indexes are built instead.
_SHARE = 20
_FEW = 1_000
# Every read of a period holding a dead entry copies its rows (``metrics.index``) instead of
# taking a view: at a million deals and two million leads the benchmark's answers took a p95
# of 16 ms without dead entries, 18-19 ms with 100 a table and 18 ms with 1,000. Beyond a
# thousandth of the table, and a thousand rows, the indexes are built again (the emptied rows
# of deleted records then go with the rows without a date, where no read reaches them).
_DEAD_SHARE = 1_000


def patched_indexes(
    old: TableIndexes, facts: Facts, table: str, rows: np.ndarray
) -> TableIndexes | None:
    """``old``, the indexes of ``table`` before, for ``facts``' ``table``, of which only the
    rows at positions ``rows`` (ascending) are new or changed: every other row is at the same
    position as before, and the new ones are at the end. None when the old ones cannot be
    patched into what building them would give (but for the dead entries of records
    deleted): a scope is usual now that was not then (a new team), the old ones grouped rows
    by scope (none of the usual indexes do) or lack the whole date column of an order (they
    always hold it), a deleted record is back; and when so many rows changed that building
    them costs less (``_SHARE``, ``_FEW``), or so many are dead that reads would
    (``_DEAD_SHARE``)."""
    frame: pd.DataFrame = getattr(facts, table)
    if len(rows) > max(_FEW, len(frame) // _SHARE):
        return None
    scopes = {scope for scope, _, _ in old.parts if scope.column is not None}
    if old.groups or scopes != {s for s in usual_scopes(facts) if s.column is not None}:
        return None
    if any(by not in old.columns for by in old.orders):
        return None  # no old dates to find the changed rows' old places by
    written = frame.take(rows)
    count = len(frame)
    dead = _dead_rows(old)
    emptied = np.zeros(len(rows), dtype=bool)
    if table in LIVE_COLUMNS:
        emptied = written[LIVE_COLUMNS[table]].isna().to_numpy()
    was_dead = np.isin(rows, dead)
    if (was_dead & ~emptied).any():
        return None  # a deleted record back: its dead entries are not where its dates say
    # Rows deleted now are marked dead where they are; rows dead before stay as they were.
    held = min((len(order.dates) for order in old.orders.values()), default=0)
    gone = emptied & ~was_dead & (rows < held)
    deleted = rows[gone]
    if len(dead) + len(deleted) > max(_FEW, count // _DEAD_SHARE):
        return None
    columns = {
        name: _written(array, count, rows, whole_column(written, name))
        for name, array in old.columns.items()
    }
    rows = rows[~was_dead & ~gone]
    changed = frame.take(rows)
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        """The changed rows' ``name`` as the KPIs read it."""
        if name not in values:
            values[name] = whole_column(changed, name)
        return values[name]

    splices: dict[str, _Splice] = {}
    orders: dict[str, DateOrder] = {}
    for by, order in old.orders.items():
        splice = _order_splice(order, old.columns[by], rows, value(by))
        splices[by] = splice
        newly = np.sort(_place(order, old.columns[by][deleted], deleted))
        dead_now = splice.moved(np.union1d(order.dead, newly)).astype(np.int32)
        orders[by] = _spliced_order(by, order, splice, rows, value, dead_now)
    levels: dict[str, tuple[np.ndarray, dict[str, int]]] = {}  # the rows' scope, as numbers
    ordered: dict[tuple[str, str], np.ndarray] = {}  # the changed rows' values, as inserted
    parts: dict[tuple[Scope, str, Only], Part] = {}
    for (scope, by, only), (among, kept) in old.parts.items():
        if among is None:
            parts[(scope, by, only)] = (None, {})
            continue
        splice = splices[by]
        member = np.ones(len(rows), dtype=bool)
        if scope.column is not None:
            column = level_column(table, scope)
            if column not in levels:
                codes, names = pd.factorize(changed[column].astype("object"))
                levels[column] = (codes, {str(name): n for n, name in enumerate(names)})
            codes, numbers = levels[column]
            member &= codes == numbers.get(scope.name, -2)  # -1: no value; -2: none of them
        if only is not None:
            member &= value(only[0]) == only[1]
        joined = member[splice.ascending]
        places, within = splice.part(among, joined)
        for name in kept:
            if (by, name) not in ordered:
                ordered[(by, name)] = value(name)[splice.ascending]
        parts[(scope, by, only)] = (
            places,
            {
                name: within.apply(array, ordered[(by, name)][joined])
                for name, array in kept.items()
            },
        )
    return TableIndexes(columns=columns, groups={}, orders=orders, parts=parts)


def _dead_rows(indexes: TableIndexes) -> np.ndarray:
    """The row positions of the dead entries of ``indexes``' orders (the same rows in each)."""
    for order in indexes.orders.values():
        return order.dead if order.order is None else order.order[order.dead]
    return np.zeros(0, dtype=np.int32)


def _written(array: np.ndarray, count: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A copy of ``array`` made ``count`` long, ``values`` written at ``rows``."""
    out = np.empty(count, dtype=array.dtype)
    out[: len(array)] = array
    out[rows] = values
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fmM"))


class _Splice:
    """How an array changes: the entries at the indexes ``removed`` (ascending) taken out,
    then new ones put at ``at`` (insertion points among those left, ascending, as
    ``np.insert`` takes them). For a date order, ``ascending`` is the order of the changed
    rows that puts them so."""

    def __init__(self, removed: np.ndarray, at: np.ndarray, ascending: np.ndarray) -> None:
        self.removed = removed
        self.at = at
        self.ascending = ascending
        self.placed = at + np.arange(len(at))  # where the new entries end up
        # Every new entry where an old one was: nothing else moves (the entries at those
        # places may be others than before: two rows that swapped their dates).
        self.still = bool(np.array_equal(self.placed, removed))

    def apply(self, array: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``array`` spliced with ``values`` (in their order of insertion): ``array`` itself
        when that changes nothing, a copy with the values written over when nothing moves."""
        if self.still:
            if _same(array[self.placed], values.astype(array.dtype)):
                return array
            out = array.copy()
            out[self.placed] = values
            return out
        return _spliced(array, self.removed, self.at, values)

    def moved(self, entries: np.ndarray) -> np.ndarray:
        """The new indexes of old ``entries`` (ascending, none removed)."""
        left = entries - np.searchsorted(self.removed, entries)
        return left + np.searchsorted(self.at, left, "right")

    def part(self, among: np.ndarray, joined: np.ndarray) -> tuple[np.ndarray, _Splice]:
        """A scope's places ``among`` (ascending) in the date order this splice changes, with
        the new entries ``joined`` (by their order of insertion) that are its now; and the
        splice of the scope's own arrays that goes with it."""
        found = np.searchsorted(among, self.removed)
        there = found < len(among)
        there[there] = among[found[there]] == self.removed[there]
        gone = found[there]
        new_places = self.placed[joined]
        if self.still and np.array_equal(self.removed[there], new_places):
            # The scope keeps the same rows at the same places: only values are written.
            return among, _Splice(gone, gone - np.arange(len(gone)), np.arange(len(gone)))
        left = np.delete(among, gone).astype(np.int64)
        if not self.still:
            # Places before the first one the splice touches stay where they were.
            touched = min(
                int(self.removed[0]) if len(self.removed) else len(left),
                int(self.at[0]) if len(self.at) else len(left),
            )
            start = int(np.searchsorted(left, touched))
            left[start:] = self.moved(left[start:])
        at = np.searchsorted(left, new_places)
        places = np.insert(left, at, new_places).astype(np.int32)
        return places, _Splice(gone, at, np.arange(len(at)))


# Beyond this many entries removed and put, a splice masks (numpy's delete and insert) rather
# than copying run by run in Python: at a million entries the loop costs as much from about
# a thousand (2-3 ms either way) and a tenth of it for ten.
_RUNS = 512


def _spliced(
    array: np.ndarray, removed: np.ndarray, at: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """``np.insert(np.delete(array, removed), at, values)`` (``removed`` and ``at``
    ascending), made by copying the runs between the entries removed and put: one copy of
    each entry instead of two passes under a mask of the whole array (``_RUNS``)."""
    if len(removed) + len(at) > _RUNS:
        return np.insert(np.delete(array, removed), at, values)
    values = np.asarray(values, dtype=array.dtype)  # as numpy's insert casts them
    out = np.empty(len(array) - len(removed) + len(at), dtype=array.dtype)
    gone = removed.tolist()
    src = dst = kept = 0  # where the next entry is read, where it goes, and entries kept
    next_gone = 0

    def copy_kept(until: int) -> None:
        """Copy the entries kept, in order, until ``until`` of them are."""
        nonlocal src, dst, kept, next_gone
        while kept < until:
            while next_gone < len(gone) and gone[next_gone] == src:
                src += 1
                next_gone += 1
            stop = gone[next_gone] if next_gone < len(gone) else len(array)
            count = min(stop - src, until - kept)
            out[dst : dst + count] = array[src : src + count]
            src += count
            dst += count
            kept += count

    for n, place in enumerate(at.tolist()):
        copy_kept(place)
        out[dst] = values[n]
        dst += 1
    copy_kept(len(array) - len(removed))
    return out


def _order_splice(
    order: DateOrder, old_dates: np.ndarray, rows: np.ndarray, dates: np.ndarray
) -> _Splice:
    """The splice of ``order`` (of the table before, whose dates by row were ``old_dates``)
    that takes the changed ``rows`` out of their old places and puts them where the stable
    sort by date (NaT last, then by position) puts them with their ``dates`` now."""
    existing = rows[rows < len(order.dates)]
    removed = np.sort(_place(order, old_dates[existing], existing))
    found = _place(order, dates, rows)  # the first old entry after each
    at = found - np.searchsorted(removed, found)
    # The same dates as ``_place`` compares, NaT after every one of them.
    ticks = dates.astype(order.dates.dtype).view(np.int64).copy()
    ticks[ticks == _NAT] = np.iinfo(np.int64).max
    ascending = np.lexsort((rows, ticks, at))
    return _Splice(removed, at[ascending], ascending)


def _place(order: DateOrder, dates: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each (date, row position) falls in ``order``, which the stable sort by date (NaT
    last) made: the index of the first entry not before it. By binary searches, for all of
    them at once: the run of entries of each date, then the position within that run (the
    sort was stable: a run's positions ascend). Searching the order's own arrays, rather than
    sort keys made for every one of its entries, keeps a patch of k rows from a pass over the
    whole table per date order (40% of a patch of 100 rows at 1M)."""
    dates = dates.astype(order.dates.dtype)
    low = np.searchsorted(order.dates, dates, "left")
    high = np.searchsorted(order.dates, dates, "right")
    if order.order is None:  # the entries are the positions themselves
        placed: np.ndarray = np.clip(rows, low, high)
        return placed
    while (searching := low < high).any():
        middle = (low + high) // 2
        before = np.zeros(len(rows), dtype=bool)
        before[searching] = order.order[middle[searching]] < rows[searching]
        low = np.where(searching & before, middle + 1, low)
        high = np.where(searching & ~before, middle, high)
    return low


_NAT = np.iinfo(np.int64).min  # NaT's int64


def _same_rows(order: DateOrder, splice: _Splice, rows: np.ndarray) -> bool:
    """Whether every changed row is at its old place in ``order`` again."""
    if not splice.still:
        return False
    before = splice.removed if order.order is None else order.order[splice.removed]
    return bool(np.array_equal(before, rows[splice.ascending]))


def _spliced_order(
    by: str,
    order: DateOrder,
    splice: _Splice,
    rows: np.ndarray,
    value: Callable[[str], np.ndarray],
    dead: np.ndarray,
) -> DateOrder:
    """``order`` (by the date column ``by``) with its positions, dates and gathered columns
    spliced by the changed ``rows``, and its entries ``dead`` (after the splice)."""
    ascending = splice.ascending
    same = _same_rows(order, splice, rows)
    positions: np.ndarray | None = None
    if order.order is not None or not same:
        old = np.arange(len(order.dates)) if order.order is None else order.order
        positions = splice.apply(old, rows[ascending]).astype(np.int32, copy=False)
        # In date order now, as building the order would find (an order kept before whose
        # rows all stayed where they were was not).
        if not same and bool((positions == np.arange(len(positions))).all()):
            positions = None
    return DateOrder(
        positions,
        splice.apply(order.dates, value(by)[ascending]),
        {
            name: splice.apply(column, value(name)[ascending])
            for name, column in order.columns.items()
        },
        dead=dead,
    )
