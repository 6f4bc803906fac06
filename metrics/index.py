"""Date-ordered indexes of the facts: one scope's rows of a table sorted by one date column.

An answer reads a dozen periods (the period asked about, its comparisons, the trend) for its
scope and for each child of its breakdown. A mask over every row per period made each of those
reads cost the whole table; in date order the rows of a period are one contiguous run, found
by two binary searches (``np.searchsorted``), and a KPI's remaining conditions (won, open at
``as_of``) only look at that run.

``Facts.ordered`` builds one per (table, scope, date column) when first asked and keeps it for
the data version, whichever way those facts were made (loaded, mapped from a snapshot, or as a
past day stood). What is kept is small, because a serving process keeps one per usual scope
(the company, every team, every region) for the data version:

- once per table and date column (``DateOrder``): the order that sorts the table by the date
  (int32; none when the table is already in that order), the dates and the columns the KPIs
  read, gathered in that order when first read, so that the company's periods are views;
- per scope (``Ordered.part``): the positions of its rows in that order (int32, ascending), so
  all the teams of a table together cost four bytes a row; a read gathers its period's rows,
  except from the columns the scope keeps gathered whole (``Ordered.keep``: the deals by close
  date, which every answer reads for every team of its breakdown).

A snapshot publishes all of it (``TableIndexes``), so that serving processes map it instead.

A record deleted since the order was built keeps its entries where they were, marked dead
(``DateOrder.dead``), and every read leaves them out: taking them out, or moving them with
the rows without a date, would shift every entry after them, and a sync's snapshot would
write the whole order again for one deletion (``metrics.index_patch``). For the same reason
a row whose date moved far since leaves a dead entry at its old place and takes a new one
in the order's tail (``DateOrder.tail``): a second, short run in date order after the
settled entries, which a read searches as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from datetime import date
from typing import Literal

import numpy as np

from metrics.periods import Period
from metrics.scopes import Scope


def searched(
    array: np.ndarray, values: object, side: Literal["left", "right"] = "left"
) -> np.ndarray:
    """``np.searchsorted(array, values, side)`` with ``values`` (indexes, as Python or numpy
    integers) taken as ``array``'s type: given another, even a Python int, numpy converts
    the whole of an int32 ``array`` to theirs first, a pass over every entry for a binary
    search (6 ms at five million entries against microseconds)."""
    found: np.ndarray = np.searchsorted(array, np.asarray(values, dtype=array.dtype), side)
    return found


@dataclass
class DateOrder:
    """A table in the order of one of its date columns, shared by every scope's index."""

    order: np.ndarray | None  # the table's positions in date order; None: already in order
    dates: np.ndarray  # the dates in that order, NaT last
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # gathered in that order
    known_dated: InitVar[int | None] = None  # ``dated`` when known (a snapshot's manifest)
    # The settled entries with a date: the first ``dated`` of the order.
    dated: int = field(init=False)
    # The entries of records deleted since, and the old entries of rows whose date moved far
    # since (ascending int32), in their places (settled or in the tail) with their dates and
    # values then: no read counts them.
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    # The last ``tail`` entries: rows placed since the order was built whose place among the
    # settled entries would have shifted many of them (``metrics.index_patch``), in date
    # order among themselves (NaT last).
    tail: int = 0
    tail_dated: int = field(init=False)  # the tail's entries with a date: its first ones

    def __post_init__(self, known_dated: int | None) -> None:
        # Else a binary search (NaT sorts last), not a count over every date. A serving
        # process that maps published indexes is given it: even a binary search maps
        # megabytes of a cold file (the kernel maps the neighbours of each page it faults in).
        if known_dated is None:
            known_dated = int(self.dates[: self.settled].searchsorted(np.datetime64("NaT")))
        self.dated = known_dated
        self.tail_dated = int(self.dates[self.settled :].searchsorted(np.datetime64("NaT")))

    @property
    def settled(self) -> int:
        """The entries before the tail."""
        return len(self.dates) - self.tail

    def settled_span(self, first: date | None, last: date | None) -> tuple[int, int]:
        """The settled entries dated from ``first`` to ``last``, both included (None: no bound
        on that side), as the first's index and the last's plus one."""
        return _span(self.dates[: self.dated], 0, first, last)

    def tail_span(self, first: date | None, last: date | None) -> tuple[int, int] | None:
        """The tail's entries dated from ``first`` to ``last``, as ``settled_span``; None: no
        entry of the tail is."""
        if not self.tail_dated:
            return None
        settled = self.settled
        lo, hi = _span(self.dates[settled : settled + self.tail_dated], settled, first, last)
        return (lo, hi) if lo < hi else None

    def earliest(self) -> np.datetime64 | None:
        """The first date of a live entry; None: no entry has one."""
        found = []
        for start, dated in ((0, self.dated), (self.settled, self.tail_dated)):
            # The dead entries are ascending and distinct: those at the run's start, the next
            # and so on lead it.
            dead = self.dead[int(searched(self.dead, start)) :][:dated] - start
            first = int(np.count_nonzero(dead == np.arange(len(dead))))
            if first < dated:
                found.append(self.dates[start + first])
        return min(found) if found else None

    def holes(self, lo: int, hi: int, entries: np.ndarray | None = None) -> np.ndarray | None:
        """The indexes among ``entries`` (ascending entries from ``lo`` to below ``hi``; None:
        all of those) of the dead ones, ascending; None when none is (a read then takes the
        entries as they are)."""
        dead = self.dead
        if not len(dead) or lo >= hi:
            return None
        first, last = searched(dead, [lo, hi]).tolist()
        if first == last:
            return None
        among = dead[first:last]
        if entries is None:
            return among - lo
        places = entries.searchsorted(among)
        hit = places < len(entries)
        hit[hit] = entries[places[hit]] == among[hit]
        return places[hit] if hit.any() else None


def _span(dates: np.ndarray, start: int, first: date | None, last: date | None) -> tuple[int, int]:
    """The run of ``dates`` (ascending, no NaT; the order's from ``start``) dated from
    ``first`` to ``last``, as indexes in the order."""
    lo = 0 if first is None else int(dates.searchsorted(np.datetime64(first, "D"), "left"))
    hi = len(dates) if last is None else int(dates.searchsorted(np.datetime64(last, "D"), "right"))
    return start + lo, start + max(lo, hi)


_DAYS = np.iinfo(np.uint16).max  # days a radix sort can order; the largest stands for NaT


def date_order(dates: np.ndarray) -> np.ndarray:
    """The positions that sort ``dates`` (datetime64 of any unit; the facts' whole columns
    are in days) stably, NaT last, as int32 (half what int64 costs; a table of 2**31 rows
    would not fit in memory).

    Dates that are whole days less than 179 years apart (every date of the facts) are sorted
    as 16-bit day numbers, which numpy's stable sort does by radix: 30 ms instead of 75 ms
    for a million deals, at every publish of their facts. Any other column takes the
    general stable sort, with the same result."""
    missing = np.isnat(dates)
    whole_days = dates.astype("datetime64[D]")
    days = whole_days.view(np.int64)
    known = days[~missing]
    if (
        len(known)
        and known.max() - known.min() < _DAYS
        and bool((whole_days[~missing] == dates[~missing]).all())
    ):
        key = (days - known.min()).astype(np.uint16)
        key[missing] = _DAYS
        return np.argsort(key, kind="stable").astype(np.int32)
    return np.argsort(dates, kind="stable").astype(np.int32)  # NaT sorts last


class Ordered:
    """The rows of one scope of a table in the order of the date column ``by``; rows without
    a date (NaT) come last and fall in no period."""

    def __init__(
        self,
        whole: Callable[[str], np.ndarray],
        by: str,
        table: DateOrder,
        among: np.ndarray | None = None,
        kept: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Use ``of_table`` and ``part``. ``whole`` gives a column of the whole table;
        ``among``: this scope's positions in ``table``'s order (None: the whole table);
        ``kept``: this scope's columns gathered whole in that order (``keep``)."""
        self._whole = whole
        self.by = by
        self.table = table
        self.among = among
        self.kept = {} if kept is None else kept

    @classmethod
    def of_table(cls, whole: Callable[[str], np.ndarray], by: str) -> Ordered:
        """The whole table's index."""
        dates = whole(by)
        known = dates[: len(dates) - int(np.count_nonzero(np.isnat(dates)))]
        # In date order already, NaT last (as a snapshot may store it): no order to keep.
        if not np.isnat(known).any() and bool((known[1:] >= known[:-1]).all()):
            return cls(whole, by, DateOrder(None, dates))
        order = date_order(dates)
        return cls(whole, by, DateOrder(order, dates[order]))

    def part(self, among: np.ndarray) -> Ordered:
        """The index of the rows at the places ``among`` (ascending, int32) of this table's
        date order: a scope's rows."""
        return Ordered(self._whole, self.by, self.table, among)

    def rows_where(self, column: str, value: int) -> Ordered:
        """The index of this scope's rows whose ``column`` holds ``value``."""
        values = self._column(column)
        kept = values == value if self.among is None else values[self.among] == value
        among = np.flatnonzero(kept) if self.among is None else self.among[kept]
        return Ordered(self._whole, self.by, self.table, among.astype(np.int32))

    def _column(self, name: str) -> np.ndarray:
        """The whole table's ``name`` column in date order, gathered once."""
        if name == self.by:
            return self.table.dates
        columns = self.table.columns
        if name not in columns:
            whole = self._whole(name)
            columns[name] = whole if self.table.order is None else whole[self.table.order]
        return columns[name]

    def _positions(self, lo: int, hi: int) -> slice:
        """This scope's positions of the table's entries from ``lo`` to below ``hi``."""
        if self.among is None:
            return slice(lo, hi)
        # The scope's positions are ascending in the table's date order: its rows among the
        # table's entries from lo to hi are one run of its own.
        start, stop = searched(self.among, [lo, hi]).tolist()
        return slice(start, stop)

    def gather(self, names: tuple[str, ...]) -> None:
        """Gather the whole table's ``names`` columns in date order now, for the answers'
        reads to find them ready."""
        for name in names:
            self._column(name)

    def keep(self, names: tuple[str, ...]) -> None:
        """Gather this scope's ``names`` columns (and ``by``) whole, in date order, and keep
        them, so that its periods' reads of them are views: for the reads every answer makes
        for every team (a snapshot publishes them, so serving processes map them)."""
        if self.among is None:
            return  # the table's columns in date order are views already
        for name in (self.by, *names):
            if name not in self.kept:
                self.kept[name] = self._column(name)[self.among]

    def between(
        self, first: date | None, last: date | None, names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated from ``first`` to ``last``:
        views for the whole table and for the columns a scope keeps, the run's rows gathered
        for the others; copies that leave them out when dead entries fall in the run, and
        that join the tail's rows when it holds some."""
        names = (self.by, *names)
        settled = self._run(self._positions(*self.table.settled_span(first, last)), names)
        span = self.table.tail_span(first, last)
        tail = None if span is None else self._positions(*span)
        if tail is None or tail.start == tail.stop:
            return settled
        read = self._run(tail, names)
        return {name: np.concatenate([settled[name], read[name]]) for name in names}

    def _run(self, run: slice, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The ``names`` columns of the rows at the positions ``run`` of this index, the dead
        entries left out (under one mask for every column)."""
        if self.among is None:
            holes = self.table.holes(run.start, run.stop)
            if holes is None:
                return {name: self._column(name)[run] for name in names}
            live = _live(run.stop - run.start, holes)
            return {name: self._column(name)[run][live] for name in names}
        rows = self.among[run]
        holes = self.table.holes(int(rows[0]), int(rows[-1]) + 1, rows) if len(rows) else None
        if holes is None:
            return {
                name: self.kept[name][run] if name in self.kept else self._column(name)[rows]
                for name in names
            }
        live = _live(len(rows), holes)
        rows = rows[live]
        return {
            name: self.kept[name][run][live] if name in self.kept else self._column(name)[rows]
            for name in names
        }

    def within(self, period: Period, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated in ``period``."""
        return self.between(period.start, period.end, names)


def _live(length: int, holes: np.ndarray) -> np.ndarray:
    """A mask over ``length`` entries, false at the indexes ``holes``: made once for every
    column a read takes (a third to two thirds of the time of copying the runs between the
    holes, column by column, for 5 holes among 1,250 entries to 300 among 200,000)."""
    live = np.ones(length, dtype=bool)
    live[holes] = False
    return live


Only = tuple[str, int] | None  # rows holding one value of a column (``Ordered.rows_where``)
# A scope's positions in the date order (None: every row) and the columns it keeps gathered
Part = tuple[np.ndarray | None, dict[str, np.ndarray]]


@dataclass(frozen=True)
class TableIndexes:
    """One table's prepared arrays as plain numpy arrays, for a process to publish and others
    to adopt (``Facts.indexes``, ``Facts.adopt``; a facts snapshot maps them): the whole
    columns in the form the KPIs read, the row positions of each scope of a level, the table
    in each date order, and each scope's positions in it."""

    columns: dict[str, np.ndarray]  # name -> the whole column (numbers, codes, days)
    groups: dict[str, dict[str, np.ndarray]]  # scope column -> scope name -> row positions
    orders: dict[str, DateOrder]  # date column -> the table in that order
    parts: dict[tuple[Scope, str, Only], Part]  # (scope, date column, only) -> its part
