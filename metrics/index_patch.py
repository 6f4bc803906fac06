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
array for array, what building them again gives (a property test checks it). A changed
array starts as a copy of the old one (given by the caller: a snapshot's arrays are mapped
again copy on write, ``bot.store.array_files.Earlier.copy``), and only the stretches whose
entries moved or changed are written over it, not the million entries around them: a sync
that changed ten deals among a million patches the deals' indexes in 0.02-0.06 s, against
0.11-0.26 s for a copy and two passes of every array.

A record deleted is the exception: its row, emptied, would move to the end of each order
with the rows without a date, and every entry after its old place would shift by one (every
chunk of the order written again for one deletion). Its entries stay where they are, marked
dead (``DateOrder.dead``), which every read leaves out; so the indexes are what building
them again gives once the dead entries are left out of them (a property test checks the
KPIs read through them against a mask over every row).

A row whose date moved far is the other: taking its entry out and putting it at its new
place would shift every entry between (a deal won today after a close date planned a year
ago shifts a year of deals, in every order and every scope's places), so a sync's cost
would follow the table, not its changes. Its old entry stays in place, marked dead, and it
takes a new one in the order's tail (``DateOrder.tail``): a short second run in date order
after the settled entries, which every read searches too. A move shifts at most ``_NEAR``
settled entries, else tail entries only; a record back after its deletion goes to the tail
as well. Past ``_UNSETTLED_SHARE`` of the table in dead entries and tails, the indexes are
built again: settled, with neither.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from metrics.facts import LIVE_COLUMNS, Facts, level_column, whole_column
from metrics.index import DateOrder, Only, Part, TableIndexes, searched
from metrics.kpis import usual_scopes
from metrics.scopes import Scope

# Patching costs about as much per changed row as building costs per twenty rows of the table
# (0.8-1.0 s against 0.3-0.6 s for 100,000 deals changed among a million): beyond a twentieth
# of the table, and a thousand rows, the indexes are built instead.
_SHARE = 20
_FEW = 1_000
# Every read of a period holding a dead entry, or rows of the tail, copies its rows
# (``metrics.index``) instead of taking a view. At a million deals and two million leads the
# benchmark's answers took a p95 of 11.4-11.8 ms with neither, 14.6-16.2 ms with 410 dead
# entries and 410 in the close order's tail (its "revenue" 14.5-16.6 ms against 8.9-9.7),
# 22 ms with ten times as many ("revenue" 23-34 ms: DuckDB's 32 ms). Beyond a thousandth of
# the table in dead entries and tails, and a thousand, the indexes are built again (0.5 s at
# a million deals, 2 s at four; the emptied rows of deleted records then go with the rows
# without a date, where no read reaches them).
_UNSETTLED_SHARE = 1_000
# A move within this many settled entries shifts them (in one or two 64 KiB chunks of each
# array of positions); a farther one goes to the tail.
_NEAR = 16_384


Copier = Callable[[np.ndarray, int], np.ndarray]


def copied(array: np.ndarray, length: int) -> np.ndarray:
    """A new array ``length`` long whose first items are ``array``'s (the others undefined):
    what a patch writes the changes over, unless its caller gives a copy that costs less (a
    mapped snapshot's arrays mapped again copy on write, ``bot.store.array_files``)."""
    out = np.empty(length, dtype=array.dtype)
    kept = min(length, len(array))
    out[:kept] = array[:kept]
    return out


def patched_indexes(
    old: TableIndexes, facts: Facts, table: str, rows: np.ndarray, copy: Copier = copied
) -> TableIndexes | None:
    """``old``, the indexes of ``table`` before, for ``facts``' ``table``, of which only the
    rows at positions ``rows`` (ascending) are new or changed: every other row is at the same
    position as before, and the new ones are at the end. None when the old ones cannot be
    patched into what building them would give (but for their dead entries and tails): a
    scope is usual now that was not then (a new team), the old ones grouped rows by scope
    (none of the usual indexes do) or lack the whole date column of an order (they always
    hold it); and when so many rows changed that building them costs less (``_SHARE``,
    ``_FEW``), or so many entries are dead or in tails that reads would
    (``_UNSETTLED_SHARE``). Every array that changes starts as ``copy`` of its old one, and
    only what moved or changed in it is written over."""
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
    emptied = np.zeros(len(rows), dtype=bool)
    if table in LIVE_COLUMNS:
        emptied = written[LIVE_COLUMNS[table]].isna().to_numpy()
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        """The changed rows' ``name`` as the KPIs read it."""
        if name not in values:
            values[name] = whole_column(written, name)
        return values[name]

    splices: dict[str, _Splice] = {}
    orders: dict[str, DateOrder] = {}
    for by, order in old.orders.items():
        splice, dead, tail = _order_splice(order, old.columns[by], rows, value(by), emptied, copy)
        if len(dead) + tail > max(_FEW, count // _UNSETTLED_SHARE):
            return None
        splices[by] = splice
        orders[by] = _spliced_order(by, order, splice, rows, value, dead, tail)
    columns = {
        name: _written(copy(array, count), rows, whole_column(written, name))
        for name, array in old.columns.items()
    }
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
                codes, names = pd.factorize(written[column].astype("object"))
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


def _written(out: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``out``, a copy of an array, with ``values`` written at ``rows``."""
    _put(out, rows, values)
    return out


def _put(out: np.ndarray, places: np.ndarray | slice, values: np.ndarray) -> None:
    """``values`` written at ``places`` of ``out`` (in its type), but where each is
    there already: a page of a copy on write that nothing changes in is not copied, and the
    snapshot written next keeps its chunk without comparing it (``bot.store.array_files``).
    A sync of a thousand deals rewrites their dates, their rows and their places as they
    were, and a run shifted among deals of one day holds the same dates."""
    values = values.astype(out.dtype, copy=False)
    differ = out[places] != values
    if isinstance(places, slice):
        out[places][differ] = values[differ]
    else:
        out[places[differ]] = values[differ]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fmM"))


class _Splice:
    """How an array changes: the entries at the indexes ``removed`` (ascending) taken out,
    then new ones put at ``at`` (insertion points among those left, ascending, as
    ``np.insert`` takes them). For a date order, ``ascending`` is the order of the changed
    rows that puts them so. A changed array starts as ``copy`` of the old one."""

    def __init__(
        self, removed: np.ndarray, at: np.ndarray, ascending: np.ndarray, copy: Copier
    ) -> None:
        self.removed = removed
        self.at = at
        self.ascending = ascending
        self.copy = copy
        self.placed = at + np.arange(len(at))  # where the new entries end up
        # A kept entry's old index is its index among those kept plus one from each of these.
        self.skips = removed - np.arange(len(removed))
        # Every new entry where an old one was: nothing else moves (the entries at those
        # places may be others than before: two rows that swapped their dates).
        self.still = bool(np.array_equal(self.placed, removed))

    def apply(self, array: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``array`` spliced with ``values`` (in their order of insertion): ``array`` itself
        when that changes nothing, a copy with the values written over when nothing moves."""
        if self.still:
            if _same(array[self.placed], values.astype(array.dtype)):
                return array
            out = self.copy(array, len(array))
            _put(out, self.placed, values)
            return out
        return _spliced(array, self.removed, self.at, values, self.copy)

    def moved(self, entries: np.ndarray) -> np.ndarray:
        """The new indexes of old ``entries`` (ascending, none removed)."""
        left = entries - np.searchsorted(self.removed, entries)
        return left + np.searchsorted(self.at, left, "right")

    def shift(self) -> _Shift:
        """How the indexes of the entries kept change (``moved``), as steps: each entry at
        an old index from a step's on moves by its amount more. A removal moves those after
        it down by one; an insertion moves up by one those from the kept entry it goes
        before (the ``at``-th kept one: its index is ``at`` plus the removals up to it)."""
        before = self.at + np.searchsorted(self.skips, self.at, "right")
        steps = np.concatenate([self.removed + 1, before])
        amounts = np.concatenate([np.full(len(self.removed), -1), np.ones(len(self.at), int)])
        order = np.argsort(steps, kind="stable")
        return steps[order], amounts[order]

    def part(self, among: np.ndarray, joined: np.ndarray) -> tuple[np.ndarray, _Splice]:
        """A scope's places ``among`` (ascending) in the date order this splice changes, with
        the new entries ``joined`` (by their order of insertion) that are its now; and the
        splice of the scope's own arrays that goes with it."""
        found = searched(among, self.removed)
        there = found < len(among)
        there[there] = among[found[there]] == self.removed[there]
        gone = found[there]
        new_places = self.placed[joined]
        if self.still and np.array_equal(self.removed[there], new_places):
            # The scope keeps the same rows at the same places: only values are written.
            same = _Splice(gone, gone - np.arange(len(gone)), np.arange(len(gone)), self.copy)
            return among, same
        # Each new place goes before the scope's kept places whose entries now follow it:
        # those from the first kept entry not ahead of it in the order now (by binary
        # searches, not by moving every place to compare).
        ahead = new_places - np.searchsorted(self.placed, new_places)  # kept entries before
        first = ahead + np.searchsorted(self.skips, ahead, "right")  # the next one's old index
        found = searched(among, first)
        at = found - np.searchsorted(gone, found)
        places = _spliced(among, gone, at, new_places, self.copy, self.shift())
        return places, _Splice(gone, at, np.arange(len(at)), self.copy)


# Steps by which the values of a spliced array's kept entries change (``_Splice.shift``): the
# values from each step's on (ascending) change by its amount more.
_Shift = tuple[np.ndarray, np.ndarray]

# Beyond this many runs of entries to move or change, a splice masks (numpy's delete and
# insert) rather than copying run by run in Python: at a million entries the loop costs as
# much from about a thousand (2-3 ms either way) and a tenth of it for ten. A changed row
# whose entry stays where it was (its date unchanged) is taken out and put back at one place:
# the runs around it stay, and only its value is written.
_RUNS = 512


def _spliced(
    array: np.ndarray,
    removed: np.ndarray,
    at: np.ndarray,
    values: np.ndarray,
    copy: Copier = copied,
    shift: _Shift | None = None,
) -> np.ndarray:
    """``np.insert(np.delete(array, removed), at, values)`` (``removed`` and ``at``
    ascending), the values of the entries kept changed by ``shift`` (``array`` then
    ascending). Made from ``copy`` of ``array`` by copying over it only the runs between the
    entries removed and put that move or change: a run that stays as it was is not touched
    (a copy mapped copy on write keeps its pages shared). Beyond ``_RUNS`` such runs, two
    passes under a mask of the whole array instead."""
    steps, amounts = shift if shift is not None else (np.zeros(0, int), np.zeros(0, int))
    raised = np.concatenate([[0], np.cumsum(amounts)])  # by the number of steps passed
    count = len(array) - len(removed)  # entries kept
    skips = removed - np.arange(len(removed))  # as ``_Splice.skips``
    # The steps, as numbers of kept entries before them.
    firsts = searched(array, steps)
    firsts = firsts - np.searchsorted(removed, firsts)
    # Runs of kept entries within which where each is read from, where it goes and what is
    # added to its value stay the same: bounded by the removals, the insertions and the steps.
    bounds = np.unique(np.concatenate([[0, count], skips, at, firsts]))
    bounds = bounds[bounds <= count]
    starts, stops = bounds[:-1], bounds[1:]
    sources = starts + np.searchsorted(skips, starts, "right")
    targets = starts + np.searchsorted(at, starts, "right")
    by = raised[np.searchsorted(firsts, starts, "right")]
    moving = (sources != targets) | (by != 0)
    if np.count_nonzero(moving) > _RUNS:
        kept = np.delete(array, removed)
        if len(steps):
            # Each raised by the steps at or below it. The entries are ascending: the runs
            # between the steps' places take one amount each (one pass, in their type),
            # rather than a binary search per entry (27 ms for four million, per scope).
            runs = np.diff(searched(kept, steps), prepend=0, append=len(kept))
            kept += np.repeat(raised.astype(kept.dtype), runs)
        return np.insert(kept, at, values).astype(array.dtype, copy=False)
    out = copy(array, count + len(at))
    for start, stop, source, target, step in zip(
        starts[moving].tolist(), stops[moving].tolist(), sources[moving].tolist(),
        targets[moving].tolist(), by[moving].tolist(), strict=True,
    ):  # fmt: skip
        run = array[source : source + stop - start]
        if step:  # every value changes
            np.add(run, step, out=out[target : target + stop - start], casting="unsafe")
        else:
            _put(out, slice(target, target + stop - start), run)
    _put(out, at + np.arange(len(at)), values)
    return out


def _order_splice(
    order: DateOrder,
    old_dates: np.ndarray,
    rows: np.ndarray,
    dates: np.ndarray,
    emptied: np.ndarray,
    copy: Copier,
) -> tuple[_Splice, np.ndarray, int]:
    """The splice of ``order`` (of the table before, whose dates by row were ``old_dates``)
    that takes the changed ``rows`` out of their old places and puts them back in date order
    with their ``dates`` now (the stable sort's place: NaT last, then by position), the rows
    ``emptied`` (records deleted) left out; with the order's dead entries and the length of
    its tail after it.

    A row whose new place among the settled entries is within ``_NEAR`` entries of its old
    one (or, new, of their end) goes there: the splice shifts the entries between. Any other
    leaves its old entry dead in place and goes to the tail, as a row back after its deletion
    does, and a row in the tail stays there: a move then shifts tail entries only, however
    far it goes in time. A row deleted leaves its entry dead wherever it is, so that every
    row keeps one, live or dead: a row of the table before without a live one was deleted."""
    settled = order.settled
    entries = np.arange(len(order.dates)) if order.order is None else order.order
    in_tail, tail_places = _in_tail(order, entries, rows)
    existing = rows < len(old_dates)
    was_dead = np.isin(rows, entries[order.dead]) & ~in_tail  # deleted: no live entry
    in_main = existing & ~in_tail & ~was_dead
    old = np.full(len(rows), settled)  # a new row's distance is counted from the tail
    old[in_main] = _place(order, old_dates[rows[in_main]], rows[in_main], 0, settled)
    old[in_tail] = tail_places
    placed = ~(existing & emptied)  # rows with a live entry after the splice
    main = _place(order, dates, rows, 0, settled)
    near = ((placed & in_main) | ~existing) & (np.abs(main - old) <= _NEAR)
    to_tail = placed & ~near
    removed = np.sort(old[(in_main & near) | (in_tail & placed)])
    found = np.where(near, main, _place(order, dates, rows, settled))
    at = found - np.searchsorted(removed, found)
    # The same dates as ``_place`` compares, NaT after every one of them; at one insertion
    # point (the settled entries' end), the settled ones before the tail's.
    ticks = dates.astype(order.dates.dtype).view(np.int64).copy()
    ticks[ticks == _NAT] = np.iinfo(np.int64).max
    chosen = np.flatnonzero(placed)
    keys = (rows[chosen], ticks[chosen], to_tail[chosen], at[chosen])
    ascending = chosen[np.lexsort(keys)]
    splice = _Splice(removed, at[ascending], ascending, copy)
    newly_dead = old[(in_main & (emptied | to_tail)) | (in_tail & emptied)]
    dead = splice.moved(np.union1d(order.dead, newly_dead)).astype(np.int32)
    tail_now = order.tail - int(np.count_nonzero(in_tail & placed)) + int(np.count_nonzero(to_tail))
    return splice, dead, tail_now


def _in_tail(
    order: DateOrder, entries: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``rows`` have a live entry in ``order``'s tail (whose entries are the rows
    ``entries``), and the places of those entries. Found by their rows, not by their dates
    (the tail is short): a row back after its deletion may have a dead entry with the same
    date beside its live one."""
    live = np.setdiff1d(np.arange(order.settled, len(entries)), order.dead, assume_unique=True)
    if not len(live):
        return np.zeros(len(rows), dtype=bool), live
    by_row = np.argsort(entries[live], kind="stable")
    tail_rows = entries[live][by_row]
    found = np.searchsorted(tail_rows, rows).clip(max=len(live) - 1)
    held = tail_rows[found] == rows
    return held, live[by_row][found[held]]


def _place(
    order: DateOrder, dates: np.ndarray, rows: np.ndarray, start: int, stop: int | None = None
) -> np.ndarray:
    """Where each (date, row position) falls among the entries of ``order`` from ``start``
    to ``stop`` (None: the last), which the stable sort by date (NaT last) ordered: the
    index of the first entry not before it. By binary searches, for all of them at once: the
    run of entries of each date, then the position within that run (the sort was stable: a
    run's positions ascend). Searching the order's own arrays, rather than sort keys made
    for every one of its entries, keeps a patch of k rows from a pass over the whole table
    per date order (40% of a patch of 100 rows at 1M)."""
    dates = dates.astype(order.dates.dtype)
    region = order.dates[start:stop]
    low = start + np.searchsorted(region, dates, "left")
    high = start + np.searchsorted(region, dates, "right")
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
    tail: int,
) -> DateOrder:
    """``order`` (by the date column ``by``) with its positions, dates and gathered columns
    spliced by the changed ``rows``, its entries ``dead`` and its last ``tail`` ones its
    tail (after the splice)."""
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
        tail=tail,
    )
