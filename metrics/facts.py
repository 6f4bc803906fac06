"""The canonical facts as DataFrames, and the few selections every KPI is built from.

The shell (``bot.store``) loads these once per data version. KPIs read them through
``Facts.columns(table, scope)``: plain numpy arrays of one scope's rows (dates as
``datetime64[D]``, where NaT compares false), cut once per scope and cached, because pandas'
per-operation overhead dominates when a breakdown asks for fifty teams. KPIs over a date
(revenue, pipeline, conversion...) read ``Facts.ordered(table, scope, by)`` instead: the
scope's rows sorted by that date, so that a period's rows are one slice (``metrics.index``).
Column contract (dates are ``datetime64`` at midnight in the organisation's time zone, money is
int64 minor units of the base currency, ``rep``/``team``/``region`` are categorical names):

- ``opportunities``: id, rep, team, region, account, status ('open'|'won'|'lost'), amount,
  created, close, probability (0..1)
- ``leads``: rep, team, region, created, converted (NaT while unconverted), channel (the lead
  source: "Salon", "Site web"…; NaN when unknown), account (the account it converted into)
- ``spend``: date, team, region (NaN for company-wide spend), amount, channel (NaN: none)
- ``accounts``: id, name, segment (the CRM's, e.g. "Grands comptes"; NaN when unknown)
- ``surveys``: date, rep, team, region, kind ('csat'|'nps'), score
- ``reps``: name, email, team, region, active_from, active_to (NaT while employed)
- ``teams``: name, region, manager
- ``slips``: id, name, date (the day, in the organisation's time zone, an open deal's close date was
  pushed later), days (how far), amount, rep, team, region (its owner then); in push order

The shell's tables may carry more columns that no KPI reads: the store's ``id`` of each row
and its owner's ``rep_id`` (-1 for none), which its refresh after a sync finds rows by.

A deal or a lead deleted since the facts were loaded whole may still have its row, **emptied**:
the refresh after a sync leaves it in place (``bot.store.facts_merge``), so that the rows after
it keep their places and the indexes are patched rather than built again. Every column of an
emptied row but its id is empty (no status, no dates, no owner, no account, no channel, no
probability; an amount of 0 and a ``rep_id`` of -1), so that no KPI counts it: every one
selects deals by status or a date and leads by a date, scopes by owner, cuts by account or
channel. ``LIVE_COLUMNS`` names the column that tells a record from an emptied row;
``deal_rows`` finds records only.

``history`` gives the same facts with the opportunities as they stood at the end of a past day,
as far as the recorded history goes, so that a level read in the past (pipeline, forecast) is
not rebuilt from records that already know the outcome.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from metrics.index import DateOrder, Only, Ordered, Part, TableIndexes
from metrics.periods import Period
from metrics.scopes import Level, Scope

STATUS_CODES = {"open": 0, "won": 1, "lost": 2}
OPEN, WON, LOST = 0, 1, 2
Columns = dict[str, np.ndarray]
SLIP_COLUMNS = ("id", "name", "date", "days", "amount", "rep", "team", "region")
ACCOUNT_COLUMNS = ("id", "name", "segment")
# Rows kept by a restriction of the facts (``Facts.restricted``): a boolean mask per table cut.
Selection = dict[str, np.ndarray]
# The column every record of a table holds and an emptied row (above) does not.
LIVE_COLUMNS = {"opportunities": "status", "leads": "created"}


def day(d: date) -> np.datetime64:
    return np.datetime64(d, "D")


def within(column: np.ndarray, period: Period) -> np.ndarray:
    """Rows whose date falls in ``period`` (NaT never does)."""
    return (column >= day(period.start)) & (column <= day(period.end))


def _array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.to_numpy(dtype="datetime64[D]")
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype("object").to_numpy()
    return series.to_numpy()


def whole_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """``frame``'s column ``name`` as the KPIs read it: dates as days, categories as their
    values, and ``status_code`` (the status as a number, ``STATUS_CODES``) made from
    ``status``."""
    if name == "status_code":
        # One vectorised comparison per status: mapping a million strings one by one took
        # seconds of the first answer after the facts were loaded.
        codes = np.full(len(frame), -1, dtype="int8")
        for status, code in STATUS_CODES.items():
            codes[(frame["status"] == status).to_numpy(dtype=bool, na_value=False)] = code
        return codes
    return _array(frame[name])


def _positions_by_value(
    column: pd.Series, within: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The positions of ``column``'s rows holding each value (missing values in none), as
    int32 (the positions of every level are kept for the data version), ascending; with
    ``within`` (row positions), the places in it of those rows instead.

    A categorical column (the facts' rep, team and region) is grouped by its codes with one
    stable sort, which numpy does as a radix sort: a tenth of the time of pandas' groupby of
    the names, which hashes a million strings."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        if within is not None:
            column = column.take(within)
        grouped = column.groupby(column.astype("object"), sort=False).indices
        return {str(k): np.asarray(v, dtype=np.int32) for k, v in grouped.items()}
    codes = column.cat.codes.to_numpy()  # -1: missing; int8 or int16, so radix-sorted
    if within is not None:
        codes = codes[within]
    order = np.argsort(codes, kind="stable").astype(np.int32)
    counts = np.bincount(codes.astype(np.intp) + 1, minlength=len(column.cat.categories) + 1)
    ends = np.cumsum(counts)
    return {
        str(name): order[ends[code] : ends[code + 1]]
        for code, name in enumerate(column.cat.categories)
        if ends[code + 1] > ends[code]
    }


def level_column(table: str, scope: Scope) -> str:
    """The column of ``table`` naming the scopes of ``scope``'s level (not the company)."""
    assert scope.column is not None, "the company is every row"
    if table == "reps" and scope.column == "rep":
        return "name"  # the reps table names its rep "name"
    return scope.column


@dataclass(frozen=True)
class DealHistory:
    """The deals as they stood at the end of past days. The shell reads each day from the
    store when first asked (``stood``); before ``since`` nothing was recorded."""

    since: date | None  # the first day whose end the history holds; None: nothing recorded
    stood: Callable[[date], Facts]  # the facts with the opportunities as at the end of a day

    def at(self, when: date) -> Facts | None:
        """The facts as they stood at the end of ``when``; None before the history starts."""
        if self.since is None or when < self.since:
            return None
        return self.stood(when)


@dataclass
class Facts:
    """Everything the KPIs read, for one data version."""

    opportunities: pd.DataFrame
    leads: pd.DataFrame
    spend: pd.DataFrame
    surveys: pd.DataFrame
    reps: pd.DataFrame
    teams: pd.DataFrame
    currency: str = "EUR"
    minor_digits: int = 2
    version: int = 0
    slips: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SLIP_COLUMNS)))
    history: DealHistory | None = None  # None: no recorded history to read the past from
    accounts: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(ACCOUNT_COLUMNS))
    )
    _columns: dict[tuple[str, Scope], Columns] = field(default_factory=dict, repr=False)
    _groups: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _ordered: dict[tuple[str, Scope, str, Only], Ordered] = field(default_factory=dict, repr=False)
    # (table, scope column, date column) -> scope name -> its positions in that date order
    _ranked: dict[tuple[str, str, str], dict[str, np.ndarray]] = field(
        default_factory=dict, repr=False
    )
    _children: dict[tuple[Scope, Level], list[Scope]] = field(default_factory=dict, repr=False)
    _pipelines: dict[tuple[Scope, Period], int] = field(default_factory=dict, repr=False)
    _restricted: dict[Hashable, Facts] = field(default_factory=dict, repr=False)
    _adopted: dict[str, TableIndexes] = field(default_factory=dict, repr=False)

    def as_stood(self, opportunities: pd.DataFrame) -> Facts:
        """These facts with the opportunities as they stood at some past moment (no history
        of their own, and none of this object's caches)."""
        return self._without_caches(opportunities=opportunities)

    def uncached(self) -> Facts:
        """These facts without history and caches: what they build is freed with the copy."""
        return self._without_caches()

    def _without_caches(self, **tables: Any) -> Facts:
        """These facts with ``tables`` in place, no history and none of this object's caches
        (each is kept per table contents)."""
        return replace(
            self,
            **tables,
            history=None,
            _columns={},
            _groups={},
            _ordered={},
            _ranked={},
            _children={},
            _pipelines={},
            _restricted={},
            _adopted={},
        )

    @cached_property
    def _deal_ids(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The opportunities' ids sorted, and the order that sorts them (None: already
        sorted, as the store reads them)."""
        ids = self.opportunities["id"].to_numpy(dtype="int64")
        if bool((ids[1:] > ids[:-1]).all()):
            return ids, None
        order = np.argsort(ids, kind="stable")
        return ids[order], order

    def deal_rows(self, ids: np.ndarray) -> np.ndarray:
        """The row positions in ``opportunities`` of those of the deals ``ids`` that are there
        (a binary search each: no pass over every deal); a deleted deal's emptied row is not."""
        ordered, order = self._deal_ids
        at = np.searchsorted(ordered, ids)
        found = at < len(ordered)
        found[found] = ordered[at[found]] == ids[found]
        rows = at[found] if order is None else order[at[found]]
        live = self.opportunities[LIVE_COLUMNS["opportunities"]].take(rows).notna().to_numpy()
        return rows[live]

    def pipeline(self, scope: Scope, period: Period) -> int:
        """``scope``'s open amount closing in ``period`` (minor units), kept: a waterfall's
        end, asked again by every viewer of the same question."""
        key = (scope, period)
        if key not in self._pipelines:
            deals = self.ordered("opportunities", scope, "close").within(
                period, ("status_code", "amount")
            )
            open_ = deals["status_code"] == OPEN
            self._pipelines[key] = int(deals["amount"][open_].sum())
        return self._pipelines[key]

    def restricted(self, key: Hashable, select: Callable[[Facts], Selection]) -> Facts:
        """These facts cut to the rows ``select`` keeps (the key accounts' deals, one lead
        source's leads, spend and deals), so that every KPI computes on them unchanged. Built
        once per ``key`` and data version; a restriction has no history (a level read in the
        past restricts the past facts instead)."""
        if key not in self._restricted:
            cut = {
                table: getattr(self, table)[mask].reset_index(drop=True)
                for table, mask in select(self).items()
            }
            self._restricted[key] = self._without_caches(**cut)
        return self._restricted[key]

    def channel(self, table: str) -> pd.Series:
        """Each row's lead source: a lead's and a spend's own, a deal's that of the lead its
        account converted from (the first to convert). NaN: unknown, or not from a lead."""
        if table == "opportunities":
            return self.deal_channels
        frame: pd.DataFrame = getattr(self, table)
        if "channel" not in frame:
            return pd.Series(np.nan, index=frame.index, dtype="object")
        return frame["channel"].astype("object")

    @cached_property
    def deal_channels(self) -> pd.Series:
        """Each deal's lead source (``channel``), mapped once: every source's cut reads it."""
        return self.opportunities["account"].map(self.account_channels).astype("object")

    @cached_property
    def account_channels(self) -> pd.Series:
        """Each account's lead source: the channel of its first converted lead."""
        leads = self.leads
        if "channel" not in leads or "account" not in leads:
            return pd.Series(dtype="object")
        converted = leads[leads["account"].notna() & leads["converted"].notna()]
        first = converted.sort_values("converted", kind="stable").drop_duplicates("account")
        return pd.Series(
            first["channel"].astype("object").to_numpy(), index=first["account"].to_numpy()
        )

    def channels(self) -> list[str]:
        """The lead sources and spend channels on record, for a breakdown by source."""
        names = set(self.channel("leads").dropna()) | set(self.channel("spend").dropna())
        return sorted(str(n) for n in names)

    def columns(self, table: str, scope: Scope, names: tuple[str, ...]) -> Columns:
        """The ``names`` columns of ``table`` for the rows in ``scope``, as numpy arrays."""
        key = (table, scope)
        if key not in self._columns:
            self._columns[key] = {}
        cached = self._columns[key]
        missing = [n for n in names if n not in cached]
        if missing:
            frame: pd.DataFrame = getattr(self, table)
            rows = self._rows(table, scope)
            for name in missing:
                whole = self._whole(table, name, frame)
                cached[name] = whole if rows is None else whole[rows]
        return cached

    def ordered(
        self, table: str, scope: Scope, by: str, only: tuple[str, int] | None = None
    ) -> Ordered:
        """The rows of ``table`` in ``scope`` sorted by its date column ``by``, so that a
        period's rows are one slice (``metrics.index``); with ``only`` (a column and a value,
        e.g. ``("status_code", WON)``), only the rows holding that value."""
        key = (table, scope, by, only)
        if key not in self._ordered:
            if only is not None:
                index = self.ordered(table, scope, by).rows_where(*only)
            elif scope.column is None:  # the company
                index = Ordered.of_table(self._gatherer(table), by)
            else:
                company = self.ordered(table, Scope.company(), by)
                index = company.part(self._ranks(table, scope, by, company.table))
            self._ordered[key] = index
        return self._ordered[key]

    def indexes(self, table: str) -> TableIndexes:
        """``table``'s whole columns, scope positions and date-ordered indexes built so far
        (by ``metrics.kpis.prepare_indexes``), as plain arrays a snapshot can store."""
        whole = self._columns.get((table, Scope.company()), {})
        orders: dict[str, DateOrder] = {}
        parts: dict[tuple[Scope, str, Only], Part] = {}
        for (of, scope, by, only), index in self._ordered.items():
            if of == table:
                orders[by] = index.table
                parts[(scope, by, only)] = (index.among, index.kept)
        return TableIndexes(
            # Numbers, codes and days this object made (a view of the table is the table's).
            columns={n: a for n, a in whole.items() if a.dtype.kind in "biufM" and a.flags.owndata},
            groups={column: g for (of, column), g in self._groups.items() if of == table},
            orders=orders,
            parts=parts,
        )

    def adopt(self, table: str, indexes: TableIndexes) -> None:
        """Take ``indexes`` (those ``indexes`` gave for the same table contents, e.g. mapped
        from a snapshot) as ``table``'s, instead of building them."""
        self._adopted[table] = indexes
        self._columns.setdefault((table, Scope.company()), {}).update(indexes.columns)
        for column, groups in indexes.groups.items():
            self._groups[(table, column)] = groups
        whole = self._gatherer(table)
        # Orders of their own: what the answers gather in them later is not ``indexes``'.
        orders = {
            by: DateOrder(
                order.order, order.dates, dict(order.columns), order.dated, order.dead, order.tail
            )
            for by, order in indexes.orders.items()
        }
        for (scope, by, only), (among, kept) in indexes.parts.items():
            index = Ordered(whole, by, orders[by], among, dict(kept))
            self._ordered[(table, scope, by, only)] = index

    def adopted(self, table: str) -> TableIndexes | None:
        """The indexes ``adopt`` took for ``table``, as they were taken; None: none were."""
        return self._adopted.get(table)

    def _gatherer(self, table: str) -> Callable[[str], np.ndarray]:
        """``table``'s whole columns, for its indexes. Through a weak reference: the facts
        hold their indexes, and a strong one back would make a cycle that keeps replaced
        facts (and their mapped files) alive until the cycle collector happens to run."""
        held = weakref.ref(self)
        frame: pd.DataFrame = getattr(self, table)

        def whole(name: str) -> np.ndarray:
            facts = held()
            assert facts is not None, "an index is reached through its facts"
            return facts._whole(table, name, frame)

        return whole

    def _whole(self, table: str, name: str, frame: pd.DataFrame) -> np.ndarray:
        key = (table, Scope.company())
        company = self._columns.setdefault(key, {})
        if name not in company:
            company[name] = whole_column(frame, name)
        return company[name]

    def _ranks(self, table: str, scope: Scope, by: str, order: DateOrder) -> np.ndarray:
        """The places of ``scope``'s rows of ``table`` in ``order``, the table's order by its
        date column ``by`` (ascending), found for every scope of its level at once: the
        level's column in that order grouped by one stable sort (a radix sort of the codes),
        where sorting each scope's places took a third of building the usual indexes (every
        team, every region) at each publish."""
        column = level_column(table, scope)
        key = (table, column, by)
        if key not in self._ranked:
            self._ranked[key] = _positions_by_value(getattr(self, table)[column], order.order)
        return self._ranked[key].get(scope.name, np.empty(0, dtype=np.int32))

    def _rows(self, table: str, scope: Scope) -> np.ndarray | None:
        """Row positions of ``scope`` in ``table``: one groupby per (table, level), so every
        team's rows are found in a single pass."""
        if scope.column is None:
            return None
        column = level_column(table, scope)
        key = (table, column)
        if key not in self._groups:
            self._groups[key] = _positions_by_value(getattr(self, table)[column])
        return self._groups[key].get(scope.name, np.empty(0, dtype="int64"))

    @cached_property
    def first_wins(self) -> pd.DataFrame:
        """Each account's first won deal (the deal that made it a customer): account, close,
        rep, team, region."""
        # The columns first: the mask then copies only them (the shell's tables carry more).
        deals = self.opportunities[["status", "account", "close", "rep", "team", "region"]]
        won = deals[(deals["status"] == "won") & deals["account"].notna()]
        if won.empty:
            return won[["account", "close", "rep", "team", "region"]]
        first = won.sort_values("close", kind="stable").drop_duplicates("account")
        return first[["account", "close", "rep", "team", "region"]]

    @cached_property
    def data_start(self) -> date | None:
        """The first day anything was recorded: earlier periods are "no data", not zero."""
        dates = [
            ("opportunities", "created"),
            ("opportunities", "close"),
            ("leads", "created"),
            ("spend", "date"),
            ("surveys", "date"),
        ]
        known = [first for table, column in dates if (first := self._first(table, column))]
        return min(known) if known else None

    def _first(self, table: str, column: str) -> date | None:
        """The earliest date of ``table``'s ``column``: the first of the table's order by it
        when one is in hand (mapped with a snapshot's indexes), so that no pass over the
        whole column brings every page of it into a serving process's memory."""
        index = self._ordered.get((table, Scope.company(), column, None))
        if index is None:
            first = getattr(self, table)[column].min()
            return None if pd.isna(first) else pd.Timestamp(first).date()
        first = index.table.earliest()
        return None if first is None else pd.Timestamp(first).date()

    def names(self, level: Level) -> list[str]:
        """Known names at ``level``, for parsing questions and breakdowns."""
        if level is Level.TEAM:
            return sorted(str(n) for n in self.teams["name"].dropna().unique())
        if level is Level.REGION:
            return sorted(str(n) for n in self.teams["region"].dropna().unique())
        if level is Level.REP:
            return sorted(str(n) for n in self.reps["name"].dropna().unique())
        return []

    def children(self, scope: Scope, level: Level) -> list[Scope]:
        """Scopes at ``level`` inside ``scope`` (teams of a region, reps of a team...)."""
        key = (scope, level)
        if key not in self._children:
            # Kept for the data version: pandas' filtering costs more than a small answer.
            self._children[key] = self._find_children(scope, level)
        return list(self._children[key])

    def _find_children(self, scope: Scope, level: Level) -> list[Scope]:
        if level is Level.REP:
            reps = self.reps
            if scope.column is not None:
                reps = reps[reps[scope.column] == scope.name]
            return [Scope(Level.REP, str(n)) for n in sorted(reps["name"].dropna().unique())]
        teams = self.teams
        if scope.level is Level.REGION:
            teams = teams[teams["region"] == scope.name]
        elif scope.level is not Level.COMPANY:
            return []
        column = "name" if level is Level.TEAM else "region"
        return [Scope(level, str(n)) for n in sorted(teams[column].dropna().unique())]
