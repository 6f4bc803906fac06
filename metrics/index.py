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

- the table's index (``Ordered.of_table``): the order that sorts the whole table by the date
  (int32; none when the table is already in that order) and the dates in that order;
- a scope's index (``Ordered.part``): the positions of its rows in the table's index (int32,
  ascending), so all the teams of a table together cost four bytes a row.

A read gathers the columns asked for of the period's rows only (``between``), so it costs the
period's rows, not the table's; over a table already in date order the company's reads are
views of the table's columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from metrics.periods import Period
from metrics.scopes import Scope


class Ordered:
    """The rows of one scope of a table in the order of the date column ``by``; rows without
    a date (NaT) come last and fall in no period."""

    def __init__(
        self,
        whole: Callable[[str], np.ndarray],
        by: str,
        order: np.ndarray | None,
        dates: np.ndarray,
        among: np.ndarray | None = None,
    ) -> None:
        """Use ``of_table`` and ``part``. ``order``: the table's positions in date order (None:
        the table is in date order); ``dates``: the table's dates in that order; ``among``:
        this scope's positions among them (None: the whole table)."""
        self._whole = whole
        self.by = by
        self._order = order
        self._dates = dates
        self._among = among
        self._dated = len(dates) - int(np.count_nonzero(np.isnat(dates)))

    @property
    def order(self) -> np.ndarray | None:
        """The table's positions in date order (None: the table is in date order)."""
        return self._order

    @property
    def dates(self) -> np.ndarray:
        """The table's dates in date order."""
        return self._dates

    @property
    def among(self) -> np.ndarray | None:
        """This scope's positions among the table's rows in date order (None: every row)."""
        return self._among

    @classmethod
    def of_table(cls, whole: Callable[[str], np.ndarray], by: str) -> Ordered:
        """The whole table's index: ``whole`` gives a column of the table."""
        dates = whole(by)
        known = dates[: len(dates) - int(np.count_nonzero(np.isnat(dates)))]
        # In date order already, NaT last (as a snapshot may store it): no order to keep.
        if not np.isnat(known).any() and bool((known[1:] >= known[:-1]).all()):
            return cls(whole, by, None, dates)
        # int32 halves what the order costs; a table of 2**31 rows would not fit in memory.
        order = np.argsort(dates, kind="stable").astype(np.int32)  # NaT sorts last
        return cls(whole, by, order, dates[order])

    def part(self, rows: np.ndarray) -> Ordered:
        """The index of the rows at the table positions ``rows`` (ascending), in the same
        date order."""
        if self._order is None:
            among = np.asarray(rows, dtype=np.int32)  # the scope's positions, not a copy
        else:
            chosen = np.zeros(len(self._order), dtype=bool)
            chosen[rows] = True
            among = np.flatnonzero(chosen[self._order]).astype(np.int32)
        return Ordered(self._whole, self.by, self._order, self._dates, among)

    def rows_where(self, column: str, value: int) -> Ordered:
        """The index of this scope's rows whose ``column`` holds ``value``."""
        rows = self.positions(slice(None))
        return self._narrowed(self._whole(column)[rows] == value)

    def _narrowed(self, kept: np.ndarray) -> Ordered:
        among = np.flatnonzero(kept) if self._among is None else self._among[kept]
        return Ordered(self._whole, self.by, self._order, self._dates, among.astype(np.int32))

    def span(self, first: date | None, last: date | None) -> slice:
        """This scope's run of rows dated from ``first`` to ``last``, both included (None: no
        bound on that side), as positions in this index."""
        dates = self._dates[: self._dated]
        lo = 0 if first is None else int(dates.searchsorted(np.datetime64(first, "D"), "left"))
        hi = (
            self._dated
            if last is None
            else int(dates.searchsorted(np.datetime64(last, "D"), "right"))
        )
        hi = max(lo, hi)
        if self._among is None:
            return slice(lo, hi)
        # The scope's positions are ascending in the table's date order: its rows in the
        # table's run [lo, hi) are one run of its own.
        return slice(int(self._among.searchsorted(lo)), int(self._among.searchsorted(hi)))

    def positions(self, run: slice) -> slice | np.ndarray:
        """The table positions of this index's ``run`` of rows, in date order."""
        among = run if self._among is None else self._among[run]
        if self._order is None:
            return among
        return self._order[among]

    def between(
        self, first: date | None, last: date | None, names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated from ``first`` to ``last``."""
        run = self.span(first, last)
        dates = self._dates[run if self._among is None else self._among[run]]
        rows = self.positions(run)
        return {self.by: dates} | {name: self._whole(name)[rows] for name in names}

    def within(self, period: Period, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated in ``period``."""
        return self.between(period.start, period.end, names)


Only = tuple[str, int] | None  # rows holding one value of a column (``Ordered.rows_where``)


@dataclass(frozen=True)
class TableIndexes:
    """One table's prepared arrays as plain numpy arrays, for a process to publish and others
    to adopt (``Facts.indexes``, ``Facts.adopt``; a facts snapshot maps them): the whole
    columns in the form the KPIs read, the row positions of each scope of a level, and the
    date-ordered indexes."""

    columns: dict[str, np.ndarray]  # name -> the whole column (numbers, codes, days)
    groups: dict[str, dict[str, np.ndarray]]  # scope column -> scope name -> row positions
    orders: dict[str, tuple[np.ndarray | None, np.ndarray]]  # date column -> (order, dates)
    parts: dict[tuple[Scope, str, Only], np.ndarray | None]  # (scope, date, only) -> among
