"""Date-ordered indexes of the facts: one scope's rows of a table sorted by one date column.

An answer reads a dozen periods (the period asked about, its comparisons, the trend) for its
scope and for each child of its breakdown. A mask over every row per period made each of those
reads cost the whole table; in date order the rows of a period are one contiguous slice, found
by two binary searches (``np.searchsorted``), and a KPI's remaining conditions (won, open at
``as_of``) only look at that slice. The slices are views: reading a period copies nothing.

``Facts.ordered`` builds one per (table, scope, date column) when first asked and keeps it for
the data version, whichever way those facts were made (loaded, mapped from a snapshot, or as a
past day stood). Only the row order is kept up front (int32 positions); each column is gathered
in that order the first time a KPI reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np

from metrics.periods import Period


class Ordered:
    """The rows of one scope of a table in the order of the date column ``by``; rows without
    a date (NaT) come last and fall in no period."""

    def __init__(
        self, whole: Callable[[str], np.ndarray], rows: np.ndarray | None, by: str
    ) -> None:
        """``whole`` gives a column of the whole table; ``rows`` are the scope's positions in
        it (None: every row)."""
        dates = whole(by) if rows is None else whole(by)[rows]
        order = np.argsort(dates, kind="stable")  # NaT sorts last
        positions = order if rows is None else rows[order]
        # int32 halves what the index costs; a table of 2**31 rows would not fit in memory.
        self._positions = positions.astype(np.int32)
        self._whole = whole
        self._columns: dict[str, np.ndarray] = {by: dates[order]}
        self._dated = len(dates) - int(np.count_nonzero(np.isnat(dates)))
        self.by = by

    def _column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = self._whole(name)[self._positions]
        return self._columns[name]

    def span(self, first: date | None, last: date | None) -> slice:
        """Positions of the rows dated from ``first`` to ``last``, both included (None: no
        bound on that side)."""
        dates = self._columns[self.by][: self._dated]
        lo = 0 if first is None else int(dates.searchsorted(np.datetime64(first, "D"), "left"))
        hi = (
            self._dated
            if last is None
            else int(dates.searchsorted(np.datetime64(last, "D"), "right"))
        )
        return slice(lo, max(lo, hi))

    def between(
        self, first: date | None, last: date | None, names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated from ``first`` to ``last``."""
        rows = self.span(first, last)
        return {name: self._column(name)[rows] for name in (self.by, *names)}

    def within(self, period: Period, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The ``names`` columns (and ``by``) of the rows dated in ``period``."""
        return self.between(period.start, period.end, names)
