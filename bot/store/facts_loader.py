"""Facts as DataFrames, loaded from the store once per data version, published as a snapshot
(``bot.store.facts_snapshot``) and kept in memory, so a question never reloads whole tables."""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session

from bot.store.database import data_version
from bot.store.facts_snapshot import Snapshots, SnapshotUnreadable, snapshot_key
from bot.store.history import first_recorded, slips, states_at, utc
from bot.store.models import FxRate, Lead, Opportunity, Rep, Spend, Survey, Team
from bot.worded import WordedError
from metrics.facts import SLIP_COLUMNS, DealHistory, Facts
from metrics.waterfall import COLUMNS as WATERFALL_COLUMNS

log = logging.getLogger(__name__)

_CATEGORIES = ("team", "region", "kind")
_OPPORTUNITY_COLUMNS = (
    "rep", "team", "region", "account", "status", "amount", "created", "close", "probability",
)  # fmt: skip
# Past states kept in memory: an answer's comparisons and trend read up to six days (a month's
# previous period, the same month last year and four more); a waterfall, its start.
_PAST_STATES_KEPT = 8


_CHUNK = 200_000


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
    with engine.connect() as connection:
        sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
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


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def _categories(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _CATEGORIES:
        if column in frame:
            frame[column] = frame[column].astype("category")
    return frame


def _owned(frame: pd.DataFrame, owners: pd.DataFrame) -> pd.DataFrame:
    """Replace ``rep_id`` by categorical rep, team and region names (one byte or two a row,
    where a merge would copy a string per row)."""
    position = pd.Index(owners["rep_id"]).get_indexer(frame["rep_id"])
    for column in ("rep", "team", "region"):
        names = pd.Categorical(owners[column])
        codes = np.full(len(position), -1, dtype=names.codes.dtype)
        known = position >= 0  # none when there are no reps at all
        codes[known] = names.codes[position[known]]
        frame[column] = pd.Categorical.from_codes(codes, categories=names.categories)
    return frame.drop(columns="rep_id")


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
    with Session(engine) as session:
        rows = session.execute(select(FxRate).order_by(FxRate.valid_from)).scalars()
        return {row.currency: row.rate for row in rows}


def _to_minor(frame: pd.DataFrame, fx: FxTable, minor_digits: int) -> pd.Series:
    currencies = frame["currency"]
    rates = currencies.map({c: fx.rate(str(c)) for c in currencies.unique()})
    scaled = frame["amount"].astype("float64").fillna(0.0) * rates * 10**minor_digits
    minor: pd.Series = scaled.round().astype("int64")
    return minor


def _teams_and_reps(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    teams = _frame(engine, select(Team.id.label("team_id"), Team.name, Team.region, Team.manager))
    reps = _frame(
        engine,
        select(
            Rep.id.label("rep_id"), Rep.name, Rep.email, Rep.team_id, Rep.active_from,
            Rep.active_to,
        ),
    )  # fmt: skip
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
    version = _version(engine)
    fx = FxTable(currency, configured_rates, _stored_rates(engine))
    teams, reps = _teams_and_reps(engine)
    owners = _owners(reps)

    def deals(chunk: pd.DataFrame) -> pd.DataFrame:
        closed = chunk.pop("is_closed").astype(bool)
        won = chunk.pop("is_won").astype(bool)
        status = np.where(closed, np.where(won, "won", "lost"), "open")
        chunk["status"] = pd.Categorical(status, categories=["open", "won", "lost"])
        chunk["amount"] = _to_minor(chunk, fx, minor_digits)
        chunk["probability"] = chunk["probability"].astype("float64").fillna(default_probability)
        # The account's id, not its name: two customers may share a name.
        chunk["account"] = chunk["account"].astype("Int64")
        return _dates(chunk.drop(columns="currency"), "created", "close")

    opps = _frame(
        engine,
        select(
            Opportunity.owner_id.label("rep_id"), Opportunity.account_id.label("account"),
            Opportunity.is_closed, Opportunity.is_won, Opportunity.amount, Opportunity.currency,
            Opportunity.created_at.label("created"), Opportunity.close_date.label("close"),
            Opportunity.probability,
        ).where(Opportunity.deleted_at.is_(None)),
        deals,
    )  # fmt: skip
    opps = _owned(opps, owners)[list(_OPPORTUNITY_COLUMNS)]

    leads = _frame(
        engine,
        select(
            Lead.owner_id.label("rep_id"), Lead.created_at.label("created"),
            Lead.converted_at.label("converted"),
        ),
        lambda chunk: _dates(chunk, "created", "converted"),
    )  # fmt: skip
    leads = _owned(leads, owners)[["rep", "team", "region", "created", "converted"]]

    def costs(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk["region"] = chunk["team_region"].fillna(chunk["spend_region"])
        chunk["amount"] = _to_minor(chunk, fx, minor_digits)
        return _dates(chunk, "date")[["date", "team", "region", "amount"]]

    spend = _frame(
        engine,
        select(Spend.date, Spend.amount, Spend.currency, Team.name.label("team"),
               Spend.region.label("spend_region"), Team.region.label("team_region"))
        .outerjoin(Team, Spend.team_id == Team.id),
        costs,
    )  # fmt: skip

    surveys = _frame(
        engine,
        select(Survey.date, Survey.rep_id, Survey.kind, Survey.score),
        lambda chunk: _dates(chunk, "date"),
    )
    surveys = _owned(surveys, owners)[["date", "rep", "team", "region", "kind", "score"]]

    def pushes(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk["amount"] = _to_minor(chunk, fx, minor_digits)
        moments = pd.to_datetime(chunk["date"], utc=True).dt.tz_convert(zone)
        chunk["date"] = moments.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
        _dates(chunk, "previous_close", "close_date")
        chunk["days"] = (chunk.pop("close_date") - chunk.pop("previous_close")).dt.days
        return chunk.drop(columns="currency")

    slip_rows = _owned(_frame(engine, slips(), pushes), owners)[list(SLIP_COLUMNS)]

    facts = Facts(
        opportunities=opps,
        leads=leads,
        spend=_categories(spend),
        surveys=_categories(surveys),
        reps=reps[["name", "email", "team", "region", "active_from", "active_to"]],
        teams=teams[["name", "region", "manager"]],
        currency=currency,
        minor_digits=minor_digits,
        version=version,
        slips=slip_rows,
    )
    if past is None:
        past = PastStates(engine, currency, configured_rates, default_probability, minor_digits)
    return _with_history(engine, facts, zone, past, owners)


def _with_history(
    engine: Engine,
    facts: Facts,
    zone: tzinfo,
    past: PastStates,
    owners: pd.DataFrame | None = None,
) -> Facts:
    """``facts`` given their lookup of the past in the store's history (also to facts mapped
    from a snapshot, whose owners are read again from the store's small reps table: the past
    days are read from the store when first asked for)."""
    if owners is None:
        owners = current_owners(engine)
    facts.history = _history(engine, facts, zone, past, owners)
    return facts


def _states(
    engine: Engine, at: datetime, fx: FxTable, default_probability: float, minor_digits: int
) -> pd.DataFrame:
    """The deals as the history says they stood at ``at``, owners as ``rep_id``: the columns of
    ``metrics.waterfall`` and those of the facts' opportunities."""
    states = states_at(at).subquery()

    def compact(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk["amount"] = _to_minor(chunk, fx, minor_digits)
        chunk["status"] = chunk["status"].astype("category")
        chunk["probability"] = chunk["probability"].astype("float64").fillna(default_probability)
        chunk["account"] = chunk["account"].astype("Int64")
        return _dates(chunk.drop(columns="currency"), "close", "created")

    return _frame(
        engine,
        select(
            # A deal without a name is shown by its CRM id.
            states.c.opportunity_id.label("id"),
            func.coalesce(states.c.name, states.c.source_id).label("name"), states.c.status,
            states.c.amount, states.c.currency, states.c.close_date.label("close"),
            states.c.owner_id.label("rep_id"), states.c.account_id.label("account"),
            states.c.created_at.label("created"), states.c.probability,
        ),
        compact,
    )  # fmt: skip


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
    """The deals as the history says they stood at ``at``, in the columns of
    ``metrics.waterfall`` (owners placed in today's teams)."""
    fx = FxTable(currency, configured_rates, _stored_rates(engine))
    frame = _states(engine, at, fx, 0.0, minor_digits)
    return _owned(frame, current_owners(engine))[list(WATERFALL_COLUMNS)]


class PastStates:
    """The deals as they stood at past moments, each read from the history once and kept
    across data versions, a few at a time: the history only appends, so a past moment's state
    never changes. Owners are placed in today's teams (a rep who changed teams counts in their
    team of today, as in the facts) and amounts converted at today's rates: a state is read
    again only when those change."""

    def __init__(
        self,
        engine: Engine,
        currency: str,
        configured_rates: dict[str, Decimal],
        default_probability: float,
        minor_digits: int = 2,
    ) -> None:
        self._engine = engine
        self._currency = currency
        self._configured = configured_rates
        self._default_probability = default_probability
        self._minor_digits = minor_digits
        self._frames: OrderedDict[tuple[datetime, Hashable], pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def _placed(self, at: datetime, owners: pd.DataFrame) -> pd.DataFrame:
        """Every column, owners placed; shared between callers, so never modified."""
        stored = _stored_rates(self._engine)
        placement = int(pd.util.hash_pandas_object(owners, index=False).sum())
        key = (utc(at), (tuple(sorted(stored.items())), placement, len(owners)))
        with self._lock:
            if key in self._frames:
                self._frames.move_to_end(key)
                return self._frames[key]
        fx = FxTable(self._currency, self._configured, stored)
        raw = _states(self._engine, at, fx, self._default_probability, self._minor_digits)
        frame = _owned(raw, owners)
        with self._lock:
            self._frames[key] = frame
            while len(self._frames) > _PAST_STATES_KEPT:
                self._frames.popitem(last=False)
        return frame

    def deals(self, at: datetime, owners: pd.DataFrame) -> pd.DataFrame:
        """The deals at ``at`` in the columns of ``metrics.waterfall``."""
        return self._placed(at, owners)[list(WATERFALL_COLUMNS)]

    def opportunities(self, at: datetime, owners: pd.DataFrame) -> pd.DataFrame:
        """The opportunities that existed at ``at`` (not deleted then), as they stood, in the
        column contract of the facts' ``opportunities``."""
        frame = self._placed(at, owners)
        frame = frame[frame["status"] != "deleted"].reset_index(drop=True)
        statuses = frame["status"].astype("object")
        frame["status"] = pd.Categorical(statuses, categories=["open", "won", "lost"])
        return frame[list(_OPPORTUNITY_COLUMNS)]


def _history(
    engine: Engine, facts: Facts, zone: tzinfo, past: PastStates, owners: pd.DataFrame
) -> DealHistory:
    """What ``facts`` know of the past: from the first recorded day, the facts with the
    opportunities as they stood at the end of a day (a few kept with this data version)."""
    with engine.connect() as connection:
        first = first_recorded(connection)

    @functools.lru_cache(maxsize=_PAST_STATES_KEPT)
    def stood(day: date) -> Facts:
        end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
        return facts.as_stood(past.opportunities(end_of_day, owners))

    return DealHistory(None if first is None else first.astimezone(zone).date(), stood)


def _version(engine: Engine) -> int:
    with Session(engine) as session:
        return data_version(session)


def snapshot_folder(engine: Engine) -> Path | None:
    """Where the snapshots of ``engine``'s facts live: beside an SQLite file (``kpibot.db`` →
    ``kpibot.db.facts/``); None for a store without a file of its own (an in-memory SQLite,
    PostgreSQL), whose processes then each build their facts from the store."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename: no plain path to stand beside
        return None
    path = Path(database)
    return path.with_name(path.name + ".facts")


class FactsCache:
    """The current facts. Answers never wait for a load: a process maps the published
    snapshot of the store's data version (milliseconds); when none is published yet, the facts
    are built from the store in a background thread, published, and swapped in when ready,
    while answers keep coming from the facts in hand. Only the very first call of a process
    that finds no snapshot waits for the store."""

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
        self._facts: Facts | None = None
        self._lock = threading.Lock()  # one load at a time
        self._refreshing: threading.Thread | None = None
        # Past states outlive data versions: a sync does not change what the deals were.
        self.past = PastStates(engine, currency, configured_rates, default_probability)

    def get(self) -> Facts:
        version = _version(self._engine)
        facts = self._facts
        if facts is None:
            with self._lock:
                if self._facts is None:
                    self._facts = self._load(version)
                return self._facts
        if facts.version == version:
            return facts
        published = self._mapped(version)
        if published is not None:
            self._facts = published
            return published
        self._refresh_in_background()
        return facts

    def refresh(self) -> Facts:
        """Bring the facts to the store's data version now, publishing the snapshot: what a
        writer calls after committing a change (the sync job, ``kpibot import``)."""
        with self._lock:
            version = _version(self._engine)
            if self._facts is None or self._facts.version != version:
                self._facts = self._load(version)
            return self._facts

    def wait(self) -> None:
        """Wait for a background refresh under way, if any."""
        thread = self._refreshing
        if thread is not None:
            thread.join()

    def _mapped(self, version: int) -> Facts | None:
        if self._snapshots is None:
            return None
        try:
            mapped = self._snapshots.read(version)
        except SnapshotUnreadable as error:
            log.warning("facts snapshot unreadable, rebuilding it from the store: %s", error)
            self._snapshots.discard(version)
            return None
        if mapped is None:
            return None
        return _with_history(self._engine, mapped, self._zone, self.past)

    def _load(self, version: int) -> Facts:
        """The facts of ``version``: mapped from its snapshot, else built from the store and
        published. The store may have moved on since ``version`` was read: the facts carry
        the version they were built at."""
        mapped = self._mapped(version)
        if mapped is not None or self._snapshots is None:
            return mapped or self._built()
        with self._snapshots.publishing():
            mapped = self._mapped(version)  # published while this process waited
            if mapped is not None:
                return mapped
            facts = self._built()
            self._snapshots.write(facts)
            return self._mapped(facts.version) or facts  # share the mapped pages

    def _built(self) -> Facts:
        return load_facts(self._engine, *self._args, zone=self._zone, past=self.past)

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
            self.refresh()
        except Exception:
            log.exception("refreshing the facts failed; answering from version %s",
                          self._facts.version if self._facts else None)  # fmt: skip
