"""Facts as DataFrames, loaded from the store once per data version, published as a snapshot
(``bot.store.facts_snapshot``) and kept in memory, so a question never reloads whole tables."""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Numeric,
    Select,
    String,
    func,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from bot.store.array_files import Earlier, copier
from bot.store.database import VersionStamp, sqlite_file, version_stamp, version_token
from bot.store.day_numbers import day_number
from bot.store.facts_merge import Merged, merged, patched, same_categories
from bot.store.facts_snapshot import TABLES, Snapshots, SnapshotUnreadable, snapshot_key
from bot.store.history import (
    changed_between,
    changed_states_at,
    first_recorded,
    last_recorded,
    slips,
    states_at,
    utc,
)
from bot.store.models import (
    Account,
    FactDeletion,
    FxRate,
    Lead,
    Opportunity,
    Rep,
    Spend,
    Survey,
    Team,
)
from bot.store.sqlite_columns import ColumnsUnreadable, read_tables
from bot.worded import WordedError
from metrics.facts import LIVE_COLUMNS, SLIP_COLUMNS, DealHistory, Facts
from metrics.index_patch import Copier
from metrics.kpis import prepare_indexes, usual_scopes
from metrics.waterfall import COLUMNS as WATERFALL_COLUMNS

log = logging.getLogger(__name__)

_CATEGORIES = ("team", "region", "kind", "channel", "segment")
_OPPORTUNITY_COLUMNS = (
    "id", "rep", "team", "region", "account", "status", "amount", "created", "close",
    "probability",
)  # fmt: skip
_LEAD_COLUMNS = (
    "id", "rep", "team", "region", "created", "converted", "channel", "account", "rep_id",
)  # fmt: skip
# Past days kept with a data version: an answer's comparisons and trend read up to six days (a
# month's previous period, the same month last year and four more).
_PAST_DAYS_KEPT = 8
# What the past states kept across data versions may take: each holds only the deals that
# changed since its moment (about 50 bytes a deal), so a week at 1 % of 1M deals a day is 4 MB.
_PAST_STATES_BYTES = 64 * 2**20
_PAST_STATUSES = ("open", "won", "lost", "deleted")


_CHUNK = 200_000
# Where the child process's start (0.2-0.5 s) costs less than the driver's Python objects
# (2-3 µs a row): smaller stores are read in process.
_CHILD_FROM_ROWS = 200_000


def _frame(
    engine: Engine,
    statement: Select[*tuple[Any, ...]],
    compact: Callable[[pd.DataFrame], pd.DataFrame] = lambda chunk: chunk,
) -> pd.DataFrame:
    """Read ``statement`` in chunks, each turned into compact dtypes by ``compact`` before the
    next is read: rows arrive as Python objects, and a million of them at once would cost
    gigabytes.

    The rows come straight from the driver's cursor, as the database gives them (on SQLite,
    dates as ISO text and amounts as floats): ``compact`` converts whole columns at once,
    where SQLAlchemy's result processing converted each value, which was most of the time."""
    columns = [c.name for c in statement.selected_columns]
    sql = _sql(engine, statement)
    with engine.connect() as connection:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql)
            chunks = []
            while rows := cursor.fetchmany(_CHUNK):
                chunks.append(compact(pd.DataFrame.from_records(rows, columns=columns)))
        finally:
            cursor.close()
    if not chunks:
        return compact(pd.DataFrame({c: pd.Series(dtype="object") for c in columns}))
    return pd.concat(chunks, ignore_index=True)


class _Read(NamedTuple):
    """A statement and how its rows become the facts' dtypes (``_frame``)."""

    statement: Select[*tuple[Any, ...]]
    compact: Callable[[pd.DataFrame], pd.DataFrame]


def _whole_frames(engine: Engine, reads: list[_Read], ids: list[Any]) -> list[pd.DataFrame]:
    """The frames of whole tables, as ``_frame`` makes them. From an SQLite file holding
    ``_CHILD_FROM_ROWS`` rows or more (by the largest of ``ids``, the tables' row ids: no
    count) they are read by a child process straight into Arrow
    (``bot.store.sqlite_columns``), each column cast to the type its statement declares, so
    that they come out as the driver's rows come out of ``_frame``."""
    path = sqlite_file(engine)
    if path is None:
        return [_frame(engine, *read) for read in reads]
    with engine.connect() as connection:
        rows = sum(connection.scalar(select(func.max(column))) or 0 for column in ids)
    if rows < _CHILD_FROM_ROWS:
        return [_frame(engine, *read) for read in reads]
    try:
        tables = read_tables(path, [_sql(engine, read.statement) for read in reads])
    except (OSError, ColumnsUnreadable) as error:
        # Only slower through the engine's driver: the answers must not wait for a fix.
        log.warning("reading the facts in a child process failed, reading them here: %s", error)
        return [_frame(engine, *read) for read in reads]
    frames = []
    for read in reads:
        table = tables.pop(0)  # each Arrow table let go once it is a frame
        frames.append(read.compact(_declared(table, read.statement).to_pandas()))
    return frames


def _sql(engine: Engine, statement: Select[*tuple[Any, ...]]) -> str:
    return str(statement.compile(engine, compile_kwargs={"literal_binds": True}))


def _declared(table: pa.Table, statement: Select[*tuple[Any, ...]]) -> pa.Table:
    """``table``'s columns named as ``statement`` selects them and cast to the Arrow type of
    their declared type: a column whose values are all NULL comes from the driver as
    integers, and an amount column of whole numbers as integers."""
    columns = list(statement.selected_columns)
    arrays = []
    for array, column in zip(table.columns, columns, strict=True):
        wanted = _arrow_type(column.type)
        arrays.append(array if wanted is None or array.type == wanted else array.cast(wanted))
    return pa.table(arrays, names=[column.name for column in columns])


def _arrow_type(declared: TypeEngine[Any]) -> pa.DataType | None:
    """The Arrow type the driver's values of a ``declared`` column take in pandas' hands
    (None: as they come, date-times as text on SQLite)."""
    if isinstance(declared, Boolean):
        return pa.bool_()
    if isinstance(declared, Integer):
        return pa.int64()
    if isinstance(declared, Numeric):  # Float too
        return pa.float64()
    if isinstance(declared, String):
        return pa.string()
    return None


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The ``columns`` selected as day numbers (``day_number``) as dates (datetime64[ns], NaT
    for NULL)."""
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], unit="D").astype("datetime64[ns]")
    return frame


def _categories(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _CATEGORIES:
        if column in frame:
            values = frame[column].astype("category")
            if values.cat.categories.empty:
                # No name at all: the same categories however the column came (text typed
                # by its declaration, or the driver's Nones), so the snapshots agree.
                values = values.cat.set_categories(pd.Index([], dtype=object))
            frame[column] = values
    return frame


def _owned(frame: pd.DataFrame, owners: pd.DataFrame) -> pd.DataFrame:
    """Categorical rep, team and region names for ``rep_id`` (one byte or two a row, where a
    merge would copy a string per row); ``rep_id`` stays, as int64 with -1 for no owner, so
    that a refresh can place the rows again when reps change teams."""
    frame["rep_id"] = frame["rep_id"].fillna(-1).astype("int64")
    position = pd.Index(owners["rep_id"]).get_indexer(frame["rep_id"])
    for column in ("rep", "team", "region"):
        names = pd.Categorical(owners[column])
        codes = np.full(len(position), -1, dtype=names.codes.dtype)
        known = position >= 0  # none when there are no reps at all
        codes[known] = names.codes[position[known]]
        frame[column] = pd.Categorical.from_codes(codes, categories=names.categories)
    return frame


class MissingExchangeRate(WordedError, LookupError):
    """A fact in a currency the config has no rate for: a configuration problem."""


class FxTable:
    """Rates to the base currency: the store's latest rate per currency, else the config's."""

    def __init__(self, base: str, configured: dict[str, Decimal], stored: dict[str, Decimal]):
        self.base = base
        self.rates = {**configured, **stored, base: Decimal(1)}

    def rate(self, currency: str) -> float:
        if currency not in self.rates:
            raise MissingExchangeRate("fx.missing", currency=currency, base=self.base)
        return float(self.rates[currency])


def _stored_rates(engine: Engine) -> dict[str, Decimal]:
    with engine.connect() as connection:
        return _rates(connection)


def _rates(connection: Connection) -> dict[str, Decimal]:
    """The latest stored rate of each currency."""
    rows = connection.execute(
        select(FxRate.currency, FxRate.rate).order_by(FxRate.valid_from)
    ).all()
    return {currency: rate for currency, rate in rows}


def _to_minor(frame: pd.DataFrame, fx: FxTable, minor_digits: int) -> pd.Series:
    # Each currency found once: a map of a million strings hashed each (0.56 s), this 0.04 s.
    # A missing currency is one of them, and refused by its rate as before.
    codes, currencies = pd.factorize(frame["currency"], use_na_sentinel=False)
    rates = np.array([fx.rate(str(c)) for c in currencies], dtype="float64")[codes]
    scaled = frame["amount"].astype("float64").fillna(0.0) * rates * 10**minor_digits
    minor: pd.Series = scaled.round().astype("int64")
    return minor


def _teams_and_reps(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    teams = _frame(
        engine,
        select(Team.id.label("team_id"), Team.name, Team.region, Team.manager).order_by(Team.id),
    )
    reps = _frame(
        engine,
        select(
            Rep.id.label("rep_id"), Rep.name, Rep.email, Rep.team_id,
            day_number(Rep.active_from, "active_from"), day_number(Rep.active_to, "active_to"),
        ).order_by(Rep.id),
    )  # fmt: skip
    reps["rep_id"] = reps["rep_id"].astype("int64")
    # Nullable ints on both sides: a column of reps none of whom has a team is all NULL.
    teams["team_id"] = teams["team_id"].astype("Int64")
    reps["team_id"] = reps["team_id"].astype("Int64")
    reps = reps.merge(
        teams[["team_id", "name", "region"]].rename(columns={"name": "team"}),
        on="team_id",
        how="left",
    )
    return teams, _dates(reps, "active_from", "active_to")


def _owners(reps: pd.DataFrame) -> pd.DataFrame:
    return reps[["rep_id", "name", "team", "region"]].rename(columns={"name": "rep"})


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    frame["id"] = frame["id"].astype("int64")
    return frame


class _Reader:
    """Reads the fact tables from the store into the column contract of ``metrics.facts``,
    whole or only the rows a condition selects (a refresh's changed rows). The facts' tables
    also keep the store's ``id`` of each row and its owner's ``rep_id``, ordered by ``id``:
    what a refresh finds rows and places owners by."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        configured_rates: dict[str, Decimal],
        default_probability: float,
        minor_digits: int,
        zone: tzinfo,
    ) -> None:
        self.engine = engine
        self.rates = _stored_rates(engine)
        self.fx = FxTable(currency, configured_rates, self.rates)
        self.teams, self.reps = _teams_and_reps(engine)
        self.owners = _owners(self.reps)
        self.currency = currency
        self.default_probability = default_probability
        self.minor_digits = minor_digits
        self.zone = zone

    def _minor(self, frame: pd.DataFrame) -> pd.Series:
        return _to_minor(frame, self.fx, self.minor_digits)

    def _opportunity_read(self, *where: ColumnElement[bool]) -> _Read:
        def deals(chunk: pd.DataFrame) -> pd.DataFrame:
            closed = chunk.pop("is_closed").astype(bool)
            won = chunk.pop("is_won").astype(bool)
            # The categories' codes, not their names: no million strings to hash.
            status = np.where(closed, np.where(won, 1, 2), 0).astype(np.int8)
            chunk["status"] = pd.Categorical.from_codes(status, pd.Index(["open", "won", "lost"]))
            chunk["amount"] = self._minor(chunk)
            chunk["probability"] = (
                chunk["probability"].astype("float64").fillna(self.default_probability)
            )
            # The account's id, not its name: two customers may share a name.
            chunk["account"] = chunk["account"].astype("Int64")
            return _dates(_ids(chunk.drop(columns="currency")), "created", "close")

        statement = (
            select(
                Opportunity.id, Opportunity.owner_id.label("rep_id"),
                Opportunity.account_id.label("account"), Opportunity.is_closed,
                Opportunity.is_won, Opportunity.amount, Opportunity.currency,
                day_number(Opportunity.created_at, "created"),
                day_number(Opportunity.close_date, "close"), Opportunity.probability,
            )
            .where(Opportunity.deleted_at.is_(None), *where)
            # Whole, in id order (SQLite's own); changed rows are put in order by the merge,
            # and ordering them here could make a planner walk the table instead.
            .order_by(*() if where else (Opportunity.id,))
        )  # fmt: skip
        return _Read(statement, deals)

    def placed_deals(self, opportunities: pd.DataFrame) -> pd.DataFrame:
        """Deals as read (with ``rep_id``) placed among today's reps, as the facts hold them."""
        return _owned(opportunities, self.owners)[[*_OPPORTUNITY_COLUMNS, "rep_id"]]

    def opportunities(self, *where: ColumnElement[bool]) -> pd.DataFrame:
        return self.placed_deals(_frame(self.engine, *self._opportunity_read(*where)))

    def _lead_read(self, *where: ColumnElement[bool]) -> _Read:
        def sourced(chunk: pd.DataFrame) -> pd.DataFrame:
            chunk["account"] = chunk["account"].astype("Int64")
            return _dates(_ids(chunk), "created", "converted")

        statement = select(
            Lead.id, Lead.owner_id.label("rep_id"), day_number(Lead.created_at, "created"),
            day_number(Lead.converted_at, "converted"), Lead.channel,
            Lead.account_id.label("account"),
        ).where(*where).order_by(*() if where else (Lead.id,))  # fmt: skip
        return _Read(statement, sourced)

    def placed_leads(self, leads: pd.DataFrame) -> pd.DataFrame:
        """Leads as read (with ``rep_id``) placed among today's reps, as the facts hold them."""
        return _categories(_owned(leads, self.owners)[list(_LEAD_COLUMNS)])

    def leads(self, *where: ColumnElement[bool]) -> pd.DataFrame:
        return self.placed_leads(_frame(self.engine, *self._lead_read(*where)))

    def spend(self) -> pd.DataFrame:
        def costs(chunk: pd.DataFrame) -> pd.DataFrame:
            chunk["region"] = chunk["team_region"].fillna(chunk["spend_region"])
            chunk["amount"] = self._minor(chunk)
            return _dates(_ids(chunk), "date")[
                ["id", "date", "team", "region", "amount", "channel"]
            ]

        spend = _frame(
            self.engine,
            select(Spend.id, day_number(Spend.date, "date"), Spend.amount, Spend.currency,
                   Team.name.label("team"), Spend.region.label("spend_region"),
                   Team.region.label("team_region"), Spend.channel)
            .outerjoin(Team, Spend.team_id == Team.id)
            .order_by(Spend.id),
            costs,
        )  # fmt: skip
        return _categories(spend)

    def surveys(self) -> pd.DataFrame:
        surveys = _frame(
            self.engine,
            select(
                Survey.id, day_number(Survey.date, "date"), Survey.rep_id, Survey.kind, Survey.score
            ).order_by(Survey.id),
            lambda chunk: _dates(_ids(chunk), "date"),
        )
        surveys = _owned(surveys, self.owners)
        return _categories(surveys[["id", "date", "rep", "team", "region", "kind", "score",
                                    "rep_id"]])  # fmt: skip

    def accounts(self) -> pd.DataFrame:
        """The accounts (a small table, read whole): their segment makes the key accounts."""

        def accounts_of(chunk: pd.DataFrame) -> pd.DataFrame:
            chunk["name"] = chunk["name"].astype("object")
            return _ids(chunk)

        query = select(Account.id, Account.name, Account.segment).order_by(Account.id)
        return _categories(_frame(self.engine, query, accounts_of))

    def slips(self, deals: Select[int] | None = None) -> pd.DataFrame:
        """The pushes (of ``deals`` only, if given), by day then deal, each deal's in push
        order: the order a refresh can keep by replacing the pushes of the deals it changed."""

        def pushes(chunk: pd.DataFrame) -> pd.DataFrame:
            chunk["amount"] = self._minor(chunk)
            moments = pd.to_datetime(chunk["date"], utc=True).dt.tz_convert(self.zone)
            chunk["date"] = moments.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
            chunk["days"] = chunk.pop("close_date") - chunk.pop("previous_close")  # day numbers
            return _ids(chunk.drop(columns="currency"))

        rows = _owned(_frame(self.engine, slips(deals), pushes), self.owners)
        return _by_day_and_deal(rows[[*SLIP_COLUMNS, "rep_id"]])

    def facts(
        self,
        version: int,
        opportunities: pd.DataFrame,
        leads: pd.DataFrame,
        spend: pd.DataFrame,
        surveys: pd.DataFrame,
        slip_rows: pd.DataFrame,
    ) -> Facts:
        reps = self.reps.rename(columns={"rep_id": "id"})
        return Facts(
            opportunities=opportunities,
            leads=leads,
            spend=spend,
            surveys=surveys,
            reps=reps[["id", "name", "email", "team", "region", "active_from", "active_to"]],
            teams=self.teams[["name", "region", "manager"]],
            currency=self.currency,
            minor_digits=self.minor_digits,
            version=version,
            slips=slip_rows,
            accounts=self.accounts(),
        )

    def whole(self, version: int) -> Facts:
        opportunities, leads = _whole_frames(
            self.engine, [self._opportunity_read(), self._lead_read()], [Opportunity.id, Lead.id]
        )
        return self.facts(
            version, self.placed_deals(opportunities), self.placed_leads(leads),
            self.spend(), self.surveys(), self.slips(),
        )  # fmt: skip


def _by_day_and_deal(rows: pd.DataFrame) -> pd.DataFrame:
    order = np.lexsort((rows["id"].to_numpy(), rows["date"].to_numpy()))  # stable
    return rows.take(order).reset_index(drop=True)


def load_facts(
    engine: Engine,
    currency: str,
    configured_rates: dict[str, Decimal],
    default_probability: float,
    minor_digits: int = 2,
    zone: tzinfo = UTC,
    past: PastStates | None = None,
) -> Facts:
    """Read every fact table once into the column contract of ``metrics.facts``; ``past``
    keeps the past states the history is read for across data versions."""
    return _loaded(
        engine, currency, configured_rates, default_probability, minor_digits, zone, past
    ).facts


@dataclass(frozen=True)
class _Loaded:
    """Facts with the store's exchange rates they were converted at: a refresh applies
    changed rows only to facts converted at the rates still stored."""

    facts: Facts
    rates: dict[str, Decimal] | None  # None: not known (a snapshot that did not say)
    token: str  # the store's token of their version (``VersionStamp``)
    # A refresh's tables whose rows kept their positions: the positions of those it wrote
    written: Mapping[str, np.ndarray] = field(default_factory=dict)
    # Facts mapped from their snapshot: each table's arrays as mapped (``Mapped.columns``)
    columns: Mapping[str, Earlier] = field(default_factory=dict)

    @property
    def stamp(self) -> VersionStamp:
        return VersionStamp(self.facts.version, self.token)


def _loaded(
    engine: Engine,
    currency: str,
    configured_rates: dict[str, Decimal],
    default_probability: float,
    minor_digits: int = 2,
    zone: tzinfo = UTC,
    past: PastStates | None = None,
) -> _Loaded:
    current = _version(engine)
    reader = _Reader(engine, currency, configured_rates, default_probability, minor_digits, zone)
    facts = reader.whole(current.version)
    if past is None:
        past = PastStates(engine, currency, configured_rates, default_probability, minor_digits)
    facts = _with_history(engine, facts, zone, past, reader.owners)
    return _Loaded(facts, reader.rates, current.token)


def _named(frame: pd.DataFrame, keys: tuple[str, ...]) -> list[tuple[object, ...]]:
    """The rows of a small frame as comparable tuples, missing values as None (a mapped
    frame and a loaded one may hold them differently)."""
    columns = [frame[key].astype("object") for key in keys]
    return [
        tuple(None if pd.isna(value) else value for value in row)
        for row in zip(*columns, strict=True)
    ]


def _replaced_slips(old: pd.DataFrame, changed: pd.DataFrame, deals: np.ndarray) -> pd.DataFrame:
    """The pushes of ``old`` but those of ``deals``, with ``changed`` (their pushes now) in
    their place, by day then deal (each deal's in push order), as sorting both would put
    them. Merged, not sorted again: the pushes kept are in that order already and a sync's
    are a few (sorting a million pushes again took 0.2-0.3 s at every sync). Usually they
    all go at the end (today's), and the pushes are the old ones with them added."""
    if not len(deals):
        return old
    old, changed = same_categories(old, changed)
    gone = old["id"].isin(deals).to_numpy()
    kept = old[~gone] if gone.any() else old
    changed = _by_day_and_deal(changed)
    days, ids = kept["date"].to_numpy(), kept["id"].to_numpy()
    new_days, new_ids = changed["date"].to_numpy(), changed["id"].to_numpy()
    # After the kept pushes of earlier days, and of its day and lower deals (none is its deal's).
    first = np.searchsorted(days, new_days, "left")
    last = np.searchsorted(days, new_days, "right")
    at = np.asarray(
        [
            start + int(np.searchsorted(ids[start:stop], deal, "right"))
            for start, stop, deal in zip(first.tolist(), last.tolist(), new_ids, strict=True)
        ],
        dtype=np.int64,
    )
    both = pd.concat([kept, changed], ignore_index=True)
    if bool((at == len(kept)).all()):
        return both
    order = np.insert(np.arange(len(kept)), at, len(kept) + np.arange(len(changed)))
    return both.take(order).reset_index(drop=True)


def _moved_reps(before: pd.DataFrame, now: pd.DataFrame) -> np.ndarray:
    """The ids of the reps of ``before`` (the facts' reps table) that ``now`` (the store's)
    names or places otherwise, or no longer holds: the rows they own are placed again. A rep
    added owns no row of the facts yet (rows given to them were changed, and read placed)."""
    places = ("name", "team", "region")
    today = dict(zip(now["rep_id"].tolist(), _named(now, places), strict=True))
    return np.asarray(
        [
            rep
            for rep, place in zip(before["id"].tolist(), _named(before, places), strict=True)
            if today.get(rep) != place
        ],
        dtype="int64",
    )


def _placed_again(
    table: Merged,
    moved: np.ndarray,
    place: Callable[[pd.DataFrame], pd.DataFrame],
    copy: Copier,
) -> Merged:
    """``table`` with the rows of the reps ``moved`` placed again by ``place`` (the reader's,
    among today's reps), its owner columns then typed exactly as ``place`` types them (today's
    names as categories, as a whole load). When the merge kept every other row in place,
    those rows are patched in and written like changed ones, so that the indexes are patched
    too: a new rep, or one moving team, costs their rows, not the table. Otherwise every row
    is placed again."""
    frame, written = table
    if written is None or not _categorical(frame):
        # A shallow copy: the old facts' frames are still being answered from.
        return Merged(place(frame.copy(deep=False)), None)
    rows = np.flatnonzero(np.isin(frame["rep_id"].to_numpy(), moved))
    again = place(frame.take(rows).reset_index(drop=True))
    if len(rows):
        frame, placed = same_categories(frame, again)
        frame = patched(frame, rows, placed, copy)
        written = np.union1d(written, rows)
    frame = frame.copy(deep=False)
    for column in ("rep", "team", "region"):
        if frame[column].dtype != again[column].dtype:
            # No row holds a name that is not today's any more: those rows were placed again.
            frame[column] = frame[column].cat.set_categories(again[column].cat.categories)
    return Merged(frame, written)


def _categorical(frame: pd.DataFrame) -> bool:
    """Whether the owner columns survived a merge as categories (they do when both sides
    were placed among the same reps)."""
    return all(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in ("rep", "team", "region"))


def _touched(engine: Engine, model: type[Any], table: str, since: int) -> np.ndarray:
    """The ids of the rows of ``model`` changed or deleted after version ``since``: through
    the ``changed_in`` and tombstone indexes, in time proportional to their number."""
    with engine.connect() as connection:
        changed = connection.scalars(select(model.id).where(model.changed_in > since)).all()
        gone = connection.scalars(
            select(FactDeletion.row_id).where(
                FactDeletion.version > since, FactDeletion.table_name == table
            )
        ).all()
    return np.asarray([*changed, *gone], dtype="int64")


def _refreshed(
    engine: Engine,
    held: _Loaded,
    currency: str,
    configured_rates: dict[str, Decimal],
    default_probability: float,
    minor_digits: int = 2,
    zone: tzinfo = UTC,
    past: PastStates | None = None,
) -> _Loaded | None:
    """``held`` brought to the store's data version by reading only the rows changed since its
    version (``bot.store.changes``), or None when that cannot be done (the stored exchange
    rates changed, or the store is behind the facts): then the facts are loaded whole.

    The store is read in time proportional to the changes; a changed table's arrays are
    copied with the changed rows in place (whole columns, no Python per row). When reps or teams
    changed, the rows of the reps placed otherwise now (another name, team or region, or gone)
    are placed again from their ``rep_id``, as changed rows (``_placed_again``), and the spend
    (placed by team) is read again; the spend and the surveys, small tables, are read whole
    when one of their rows changed."""
    old = held.facts
    current = _version(engine)
    reader = _Reader(engine, currency, configured_rates, default_probability, minor_digits, zone)
    if current.version < old.version or reader.rates != held.rates:
        return None
    since = old.version
    placed = _named(old.reps, ("id", "name", "team", "region")) == _named(
        reader.reps, ("rep_id", "name", "team", "region")
    )
    teams_same = _named(old.teams, ("name", "region")) == _named(reader.teams, ("name", "region"))

    # The changed columns are written over the mapped snapshot's copies on write.
    copies = {table: copier(held.columns.get(table)) for table in ("opportunities", "leads")}
    deals = _touched(engine, Opportunity, "opportunities", since)
    changed_deals = reader.opportunities(Opportunity.changed_in > since)
    opps = merged(
        old.opportunities, changed_deals, deals, LIVE_COLUMNS["opportunities"],
        copies["opportunities"],
    )  # fmt: skip
    lead_ids = _touched(engine, Lead, "leads", since)
    leads = merged(
        old.leads, reader.leads(Lead.changed_in > since), lead_ids, LIVE_COLUMNS["leads"],
        copies["leads"],
    )  # fmt: skip
    changed_slips = select(Opportunity.id).where(Opportunity.changed_in > since)
    slip_rows = _replaced_slips(old.slips, reader.slips(changed_slips), deals)
    spend, surveys = old.spend, old.surveys
    if not teams_same or len(_touched(engine, Spend, "spend", since)):
        spend = reader.spend()
    if len(_touched(engine, Survey, "surveys", since)):
        surveys = reader.surveys()
    if not placed or not all(_categorical(frame) for frame in (opps.frame, leads.frame, slip_rows)):
        moved = _moved_reps(old.reps, reader.reps)
        opps = _placed_again(opps, moved, reader.placed_deals, copies["opportunities"])
        leads = _placed_again(leads, moved, reader.placed_leads, copies["leads"])
        # A shallow copy: the old facts' frames are still being answered from. The pushes and
        # the surveys are not indexed: placed again whole.
        slip_rows = _owned(slip_rows.copy(deep=False), reader.owners)
        if surveys is old.surveys:
            surveys = _categories(_owned(surveys.copy(deep=False), reader.owners))
    facts = reader.facts(current.version, opps.frame, leads.frame, spend, surveys, slip_rows)
    if past is None:
        past = PastStates(engine, currency, configured_rates, default_probability, minor_digits)
    facts = _with_history(engine, facts, zone, past, reader.owners)
    written = {"opportunities": opps.written, "leads": leads.written}
    kept = {table: rows for table, rows in written.items() if rows is not None}
    return _Loaded(facts, reader.rates, current.token, kept)


def _with_history(
    engine: Engine,
    facts: Facts,
    zone: tzinfo,
    past: PastStates,
    owners: pd.DataFrame | None = None,
) -> Facts:
    """``facts`` given their lookup of the past in the store's history (also to facts mapped
    from a snapshot, whose owners are their own reps table, which keeps each rep's id: the
    past days are read from the store when first asked for)."""
    if owners is None:
        owners = facts.reps[["id", "name", "team", "region"]].rename(
            columns={"id": "rep_id", "name": "rep"}
        )
    facts.history = _history(engine, facts, zone, past, owners)
    return facts


def current_owners(engine: Engine) -> pd.DataFrame:
    """Each rep's id with their name, team and region today."""
    _, reps = _teams_and_reps(engine)
    return _owners(reps)


def load_deal_states(
    engine: Engine,
    at: datetime,
    currency: str,
    configured_rates: dict[str, Decimal],
    minor_digits: int = 2,
) -> pd.DataFrame:
    """Every deal as the history alone says it stood at ``at``, in the columns of
    ``metrics.waterfall`` (owners placed in today's teams): one pass over the history, the
    reference ``PastStates`` is checked against (tests, ``scripts/bench_history.py``)."""
    fx = FxTable(currency, configured_rates, _stored_rates(engine))
    states = states_at(at).subquery()

    def compact(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk["amount"] = _to_minor(chunk, fx, minor_digits)
        chunk["status"] = pd.Categorical(chunk["status"], categories=_PAST_STATUSES)
        return _dates(chunk.drop(columns="currency"), "close")

    frame = _frame(
        engine,
        select(
            states.c.opportunity_id.label("id"), states.c.status, states.c.amount,
            states.c.currency, day_number(states.c.close_date, "close"),
            states.c.owner_id.label("rep_id"),
        ),
        compact,
    )  # fmt: skip
    return _owned(frame, current_owners(engine))[list(WATERFALL_COLUMNS)]


@dataclass(frozen=True)
class _Patch:
    """The deals at ``at`` as a difference from the deals at any later moment up to
    ``covered``: every deal changed in between is in ``changed``, and those of them that
    existed at ``at`` are in ``states`` as they stood (owners as ``rep_id``); every other deal
    stood then as it stands at that later moment. A deal that was deleted is there with
    status "deleted"."""

    at: datetime
    covered: datetime
    changed: np.ndarray  # int64 ids, sorted
    states: pd.DataFrame

    @functools.cached_property
    def nbytes(self) -> int:
        return int(self.changed.nbytes + self.states.memory_usage(index=False).sum())

    def placed(self, owners: pd.DataFrame) -> pd.DataFrame:
        """``states`` with rep, team and region names for ``rep_id``, placed once per owners
        table (once per data version)."""
        cached = self.__dict__.get("_placed")
        if cached is None or cached[0] is not owners:
            cached = (owners, _owned(self.states.copy(deep=False), owners))
            self.__dict__["_placed"] = cached  # a cache, not state: the patch stays the same
        placed: pd.DataFrame = cached[1]
        return placed


class PastStates:
    """The deals as they stood at past moments, kept across data versions as differences from
    the current facts: the history only appends, so a past moment's state never changes, and
    only the deals that changed since differ from the facts in hand. A kept moment is brought
    forward after each data change by reading the deals changed in between (in time
    proportional to the changes); ``prepare`` does it in the background for the moments
    answers usually ask about. What is kept is bounded in bytes (``_PAST_STATES_BYTES``).
    Amounts are converted at today's rates (a moment is read again when they change) and
    owners placed in today's teams at each use."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        configured_rates: dict[str, Decimal],
        default_probability: float,
        minor_digits: int = 2,
        budget: int = _PAST_STATES_BYTES,
    ) -> None:
        self._engine = engine
        self._currency = currency
        self._configured = configured_rates
        self._default_probability = default_probability
        self._minor_digits = minor_digits
        self._budget = budget
        self._patches: OrderedDict[tuple[datetime, Hashable], _Patch] = OrderedDict()
        self._owners: tuple[int, pd.DataFrame] | None = None
        # One reader at a time: a request and the background preparation may ask together.
        self._lock = threading.Lock()

    def kept(self) -> list[datetime]:
        """The moments kept, least recently used first."""
        return [at for at, _ in self._patches]

    @property
    def nbytes(self) -> int:
        """What the kept moments take."""
        return sum(patch.nbytes for patch in self._patches.values())

    def _read(self, at: datetime, after: datetime, until: datetime, fx: FxTable) -> _Patch:
        """The deals changed in (``after``, ``until``] and their states at ``at``."""
        with self._engine.connect() as connection:
            ids = connection.scalars(changed_between(after, until)).all()
        changed = np.sort(np.fromiter(ids, dtype="int64", count=len(ids)))

        def compact(chunk: pd.DataFrame) -> pd.DataFrame:
            chunk["amount"] = _to_minor(chunk, fx, self._minor_digits)
            chunk["status"] = pd.Categorical(chunk["status"], categories=_PAST_STATUSES)
            chunk["probability"] = (
                chunk["probability"].astype("float64").fillna(self._default_probability)
            )
            chunk["account"] = chunk["account"].astype("Int64")
            chunk["id"] = chunk["id"].astype("int64")
            return _dates(chunk.drop(columns="currency"), "close", "created")

        states = changed_states_at(at, after, until).subquery()
        frame = _frame(
            self._engine,
            select(
                states.c.opportunity_id.label("id"), states.c.status, states.c.amount,
                states.c.currency, day_number(states.c.close_date, "close"),
                states.c.owner_id.label("rep_id"), states.c.account_id.label("account"),
                day_number(states.c.created_at, "created"), states.c.probability,
            ),
            compact,
        )  # fmt: skip
        return _Patch(at, until, changed, frame)

    def _patch(self, at: datetime) -> _Patch:
        """The deals changed since ``at`` and their states then. A moment before the
        history's first is read as that first moment: what the deals were before it is not
        known, and an answer counts from it (``bot.service.KpiService.changes`` says so).
        After a first import of a million deals, the quarter's first day would otherwise read
        every deal, changed since by the import, to find that none existed then."""
        with self._engine.connect() as connection:
            stored = _rates(connection)
            first = first_recorded(connection)
            last = last_recorded(connection)
        at = utc(at) if first is None else max(utc(at), first)
        until = at if last is None else max(last, at)
        key = (at, tuple(sorted(stored.items())))
        fx = FxTable(self._currency, self._configured, stored)
        with self._lock:
            patch = self._patches.get(key)
            if patch is None:
                patch = self._read(at, at, until, fx)
            elif until > patch.covered:
                later = self._read(at, patch.covered, until, fx)
                # A deal changed again keeps its state at ``at``, read the first time.
                fresh = ~np.isin(later.changed, patch.changed)
                added = later.states[later.states["id"].isin(later.changed[fresh])]
                patch = _Patch(
                    at,
                    until,
                    np.union1d(patch.changed, later.changed),
                    pd.concat([patch.states, added], ignore_index=True),
                )
            # A moment after the last recorded change may yet change (a change recorded
            # before it comes): kept only once the history has passed it.
            if last is not None and at <= last and self._patches.get(key) is not patch:
                self._keep(key, patch)
            elif key in self._patches:
                self._patches.move_to_end(key)
        return patch

    def _keep(self, key: tuple[datetime, Hashable], patch: _Patch) -> None:
        self._patches[key] = patch
        self._patches.move_to_end(key)
        total = self.nbytes
        while total > self._budget and len(self._patches) > 1:
            _, dropped = self._patches.popitem(last=False)
            total -= dropped.nbytes

    def owners(self, version: int) -> pd.DataFrame:
        """Each rep's id, name, team and region at data version ``version`` (the reps are
        facts too), read once per version."""
        owners = self._owners
        if owners is None or owners[0] != version:
            owners = self._owners = (version, current_owners(self._engine))
        return owners[1]

    def prepare(self, moments: list[datetime], version: int) -> None:
        """Read or bring forward each of ``moments`` and place their deals with the owners of
        ``version``, so that an answer finds them ready."""
        owners = self.owners(version)
        for at in moments:
            self._patch(at).placed(owners)

    def changed_since(self, at: datetime, version: int) -> tuple[np.ndarray, pd.DataFrame]:
        """The ids of the deals changed since ``at`` (sorted), and those of them that existed
        at ``at`` as they stood then, in the columns of ``metrics.waterfall`` with owners as
        at data ``version``: with the current facts, all
        ``metrics.waterfall.changed_waterfalls`` needs."""
        patch = self._patch(at)
        return patch.changed, patch.placed(self.owners(version))[list(WATERFALL_COLUMNS)]

    def opportunities(self, at: datetime, facts: Facts, owners: pd.DataFrame) -> pd.DataFrame:
        """The opportunities that existed at ``at`` (not deleted then), as they stood, in the
        column contract of the facts' ``opportunities``: ``facts`` (the current ones) with the
        deals changed since replaced by their past states."""
        patch = self._patch(at)
        deals = facts.opportunities
        keep = np.ones(len(deals), dtype=bool)
        keep[facts.deal_rows(patch.changed)] = False
        past = patch.placed(owners)
        past = past[past["status"] != "deleted"].copy()
        past["status"] = past["status"].cat.remove_categories("deleted")
        return pd.concat([deals[keep], past[list(deals.columns)]], ignore_index=True)


def usual_moments(today: date, zone: tzinfo) -> list[datetime]:
    """The starts of the days a waterfall is usually asked from: yesterday, a week ago (a weekly
    digest's), this week's Monday, the month's and the calendar quarter's first day."""
    monday = today - timedelta(days=today.weekday() or 7)
    days = {
        today - timedelta(days=1),
        today - timedelta(days=7),
        monday,
        today.replace(day=1),
        date(today.year, 3 * ((today.month - 1) // 3) + 1, 1),
    }
    return [datetime.combine(d, time(), tzinfo=zone) for d in sorted(days, reverse=True)]


def _history(
    engine: Engine, facts: Facts, zone: tzinfo, past: PastStates, owners: pd.DataFrame
) -> DealHistory:
    """What ``facts`` know of the past: from the first recorded day, the facts with the
    opportunities as they stood at the end of a day (a few kept with this data version)."""
    with engine.connect() as connection:
        first = first_recorded(connection)
    # The facts hold their history: a strong reference back would make a cycle, which keeps
    # replaced facts (and their mapped files) alive until the cycle collector happens to run.
    held = weakref.ref(facts)

    @functools.lru_cache(maxsize=_PAST_DAYS_KEPT)
    def stood(day: date) -> Facts:
        current = held()
        assert current is not None, "a history is reached through its facts"
        end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
        return current.as_stood(past.opportunities(end_of_day, current, owners))

    return DealHistory(None if first is None else first.astimezone(zone).date(), stood)


def _version(engine: Engine) -> VersionStamp:
    with Session(engine) as session:
        return version_stamp(session)


def _in_history(engine: Engine, stamp: VersionStamp) -> bool:
    """Whether the store's history holds ``stamp``'s version as it was made: not facts of a
    store since made again in its place, or restored from a backup."""
    with Session(engine) as session:
        return bool(stamp.token) and version_token(session, stamp.version) == stamp.token


def snapshot_folder(engine: Engine) -> Path | None:
    """Where the snapshots of ``engine``'s facts live: beside an SQLite file (``kpibot.db`` →
    ``kpibot.db.facts/``); None for a store without a file of its own (an in-memory SQLite,
    PostgreSQL), whose processes then each build their facts from the store."""
    path = sqlite_file(engine)
    return None if path is None else path.with_name(path.name + ".facts")


class FactsCache:
    """The current facts. Answers never wait for a load nor build an index: when the store's
    data version moves on, the facts are brought to it in a background thread (mapped from the
    published snapshot in milliseconds; else from the facts in hand, or the newest snapshot,
    by the rows changed since: ``_refreshed``, and published), their usual indexes built
    (``metrics.kpis.prepare_indexes``), and only then swapped in, while answers keep coming
    from the facts in hand. At a process's start there are none in hand: the snapshot is
    mapped at once and the indexes built in the background. Only the very first call of a
    process that finds no snapshot waits for the store."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        configured_rates: dict[str, Decimal],
        default_probability: float,
        zone: tzinfo = UTC,
        snapshots: Snapshots | Path | None = None,
    ) -> None:
        """``snapshots``: their folder (default: beside an SQLite file, else none)."""
        self._engine = engine
        self._args = (currency, configured_rates, default_probability)
        self._zone = zone
        folder = snapshots or snapshot_folder(engine)
        if isinstance(folder, Path):
            key = snapshot_key(currency, configured_rates, default_probability, zone)
            folder = Snapshots(folder, key)
        self._snapshots = folder
        self._held: _Loaded | None = None
        self._lock = threading.Lock()  # one load at a time
        self._refreshing: threading.Thread | None = None
        self._indexing: threading.Thread | None = None
        # Past states outlive data versions: a sync does not change what the deals were.
        self.past = PastStates(engine, currency, configured_rates, default_probability)
        self._preparing: threading.Thread | None = None

    def get(self) -> Facts:
        current = _version(self._engine)
        held = self._held
        if held is None:
            with self._lock:
                if self._held is None:
                    self._held = self._load(current)
                    self._index_in_background(self._held.facts)
                return self._held.facts
        if held.stamp == current:
            return held.facts
        self._refresh_in_background()
        return held.facts

    def warm(self) -> None:
        """Get the facts ready before the first question, at a process's start: map the
        published snapshot of the store's data version, else build it in the background (a
        first question then waits for that build instead of starting its own)."""
        if self._held is not None:
            return
        mapped = self._mapped(_version(self._engine))
        if mapped is None:
            self._refresh_in_background()
            return
        with self._lock:
            if self._held is None:
                self._held = mapped
                self._index_in_background(mapped.facts)

    def held(self) -> Facts | None:
        """The facts in hand, if any, without looking at the store."""
        held = self._held
        return None if held is None else held.facts

    def refresh(self, indexed: bool = False) -> Facts:
        """Bring the facts to the store's data version now, publishing the snapshot: what a
        writer calls after committing a change (the sync job, ``kpibot import``). With
        ``indexed``, the usual indexes are built before the new facts are held (what the
        background refresh of a serving process does); a writer goes without."""
        with self._lock:
            current = _version(self._engine)
            held = self._held
            if (
                held is not None
                and held.stamp != current
                and not _in_history(self._engine, held.stamp)
            ):
                # The store was made again, or restored, under this process: nothing held
                # (facts, past states) is of its history.
                self._held = None
                self.past = PastStates(self._engine, *self._args)
            if self._held is None or self._held.stamp != current:
                loaded = self._load(current)
                if indexed:
                    prepare_indexes(loaded.facts, usual_scopes(loaded.facts))
                self._held = loaded
            return self._held.facts

    def caught_up(self) -> None:
        """Hold the facts of the store's data version, waiting for their swap when the
        version moved (in the background, as for any question: the same swap, not a second)."""
        self.get()
        refreshing = self._refreshing
        if refreshing is not None:
            refreshing.join()

    def wait(self) -> None:
        """Wait for a background refresh or preparation under way, if any."""
        for thread in (self._refreshing, self._indexing, self._preparing):
            if thread is not None:
                thread.join()

    def _index_in_background(self, facts: Facts) -> None:
        """Build ``facts``' usual indexes in a background thread: for facts already held,
        which a question may read meanwhile (it then builds what it reads itself; both give
        the same index, and the last one kept is as good as the first)."""
        self._indexing = threading.Thread(
            target=self._index_quietly, args=(facts,), name="facts-indexes", daemon=True
        )
        self._indexing.start()

    def _index_quietly(self, facts: Facts) -> None:
        # A thread's exception would vanish: log it; a request builds what it reads itself.
        try:
            prepare_indexes(facts, usual_scopes(facts))
        except Exception:
            log.exception("building the indexes of facts version %s failed", facts.version)

    def prepare_past(self, now: datetime, facts: Facts) -> None:
        """In a background thread: bring the past moments answers usually ask about
        (``usual_moments``) up to the store's data, so that the first waterfall after a data
        change does not read the history inside its request (its ends read ``facts``' usual
        indexes)."""
        if self._preparing is not None and self._preparing.is_alive():
            return
        moments = usual_moments(now.astimezone(self._zone).date(), self._zone)
        self._preparing = threading.Thread(
            target=self._prepare_quietly, args=(moments, facts), name="past-states", daemon=True
        )
        self._preparing.start()

    def _prepare_quietly(self, moments: list[datetime], facts: Facts) -> None:
        # A thread's exception would vanish: log it; a request reads what it needs itself.
        try:
            self.past.prepare(moments, facts.version)
        except Exception:
            log.exception("preparing the past states failed; answers will read them")

    def _mapped(self, stamp: VersionStamp) -> _Loaded | None:
        """The facts of ``stamp`` mapped from its snapshot; None without one, and for a
        version without a token (no data yet), whose facts are never published."""
        if self._snapshots is None or not stamp.token:
            return None
        try:
            mapped = self._snapshots.mapped(stamp)
            rates = None if mapped is None else self._snapshots.rates(stamp)
        except SnapshotUnreadable as error:
            log.warning("facts snapshot unreadable, rebuilding it from the store: %s", error)
            self._snapshots.discard(stamp)
            return None
        if mapped is None:
            return None
        facts = _with_history(self._engine, mapped.facts, self._zone, self.past)
        return _Loaded(facts, rates, stamp.token, columns=mapped.columns)

    def _load(self, current: VersionStamp) -> _Loaded:
        """The facts of ``current``: mapped from its snapshot, else built and published. The
        store may have moved on since ``current`` was read: the facts carry the version they
        were built at."""
        mapped = self._mapped(current)
        if mapped is not None:
            return mapped
        if self._snapshots is None or not current.token:
            return self._built(self._held)
        with self._snapshots.publishing():
            mapped = self._mapped(current)  # published while this process waited
            if mapped is not None:
                return mapped
            built = self._published(self._snapshots)
            return self._mapped(built.stamp) or built  # share the mapped pages

    def publish(self) -> None:
        """Publish the snapshot of the store's data version, unless it is: for a writer that
        exits after its commit (``kpibot import``, ``kpibot sync``) and has no use for the
        facts afterwards, so neither holds nor maps them back (0.2 s of a sync at 1M deals),
        and builds none for a store without snapshots, whose serving processes each build
        their own (a PostgreSQL store without ``database.snapshots``)."""
        if self._snapshots is None:
            return
        with self._lock, self._snapshots.publishing():
            current = _version(self._engine)
            if current.token and not self._snapshots.path(current).is_dir():
                self._published(self._snapshots)

    def _published(self, snapshots: Snapshots) -> _Loaded:
        """The facts built from those in hand (else the newest snapshot of the store's
        history) and published; while holding ``snapshots.publishing()``."""
        base = self._held or self._newest_published()
        built = self._built(base)
        # The tables a refresh left as they were are the previous snapshot's files, indexes
        # included, unless the usual scopes changed (a new team): those lack its indexes.
        same_scopes = base is not None and usual_scopes(built.facts) == usual_scopes(base.facts)
        unchanged = [
            table for table in TABLES
            if base is not None and same_scopes
            and getattr(built.facts, table) is getattr(base.facts, table)
        ]  # fmt: skip
        previous = None if base is None else base.stamp
        # The indexes of a table whose rows kept their positions: the base's, patched.
        patches = {
            table: (indexes, rows)
            for table, rows in built.written.items()
            if base is not None and (indexes := base.facts.adopted(table)) is not None
        }
        columns = None if base is None else base.columns
        snapshots.write(
            built.facts, built.token, built.rates, previous, unchanged, patches, columns
        )
        return built

    def _newest_published(self) -> _Loaded | None:
        """The newest snapshot of a version the store's history holds: what a writer that
        has no facts in hand (``kpibot sync``, a new process) refreshes from."""
        assert self._snapshots is not None
        for earlier in reversed(self._snapshots.versions()):
            if _in_history(self._engine, earlier) and (mapped := self._mapped(earlier)):
                return mapped
        return None

    def _built(self, base: _Loaded | None) -> _Loaded:
        """``base`` refreshed by the rows changed since, else the facts read whole."""
        if base is not None and base.rates is not None:
            refreshed = _refreshed(self._engine, base, *self._args, zone=self._zone, past=self.past)
            if refreshed is not None:
                return refreshed
        return _loaded(self._engine, *self._args, zone=self._zone, past=self.past)

    def _refresh_in_background(self) -> None:
        if self._refreshing is not None and self._refreshing.is_alive():
            return
        self._refreshing = threading.Thread(
            target=self._refresh_quietly, name="facts-refresh", daemon=True
        )
        self._refreshing.start()

    def _refresh_quietly(self) -> None:
        # A thread's exception would vanish: log it; the next request starts another try.
        try:
            self.refresh(indexed=True)
        except Exception:
            held = self._held
            log.exception("refreshing the facts failed; answering from version %s",
                          held.facts.version if held else None)  # fmt: skip
