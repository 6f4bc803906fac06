"""Opportunity history: what each deal's pipeline fields were, and when.

Every change of facts ends with ``bump_data_version``, which calls ``record_history`` in the
same transaction, so every writer (CSV import, CRM sync, demo) keeps the history without
knowing of it. Recording compares the opportunities changed in the transaction (those
``bot.store.changes`` marks pending, found through an index) with their current interval in
two set-based statements, so its cost follows the sync's changes, not the number of deals: the
intervals of changed deals are closed at ``at`` and new ones opened, so a re-import with
nothing changed adds nothing. ``states_at`` rebuilds the deals as they
stood at any moment since the first record."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Select,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from bot.store.changes import pending_in, pending_scanned
from bot.store.day_numbers import day_number
from bot.store.models import Opportunity, OpportunityHistory
from bot.store.moments import as_utc

STATUSES = ("open", "won", "lost", "deleted")


def _status() -> ColumnElement[str]:
    return case(
        (Opportunity.deleted_at.is_not(None), "deleted"),
        (Opportunity.is_won, "won"),
        (Opportunity.is_closed, "lost"),
        else_="open",
    )


def _tracked() -> list[tuple[str, Any]]:
    """History column name → the opportunity expression it records."""
    return [
        ("status", _status()),
        ("stage", Opportunity.stage),
        ("amount", Opportunity.amount),
        ("currency", Opportunity.currency),
        ("close_date", Opportunity.close_date),
        ("probability", Opportunity.probability),
        ("owner_id", Opportunity.owner_id),
    ]


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC: SQLite keeps date-times as naive text, compared as written."""
    if moment.tzinfo is None:
        raise ValueError("history moments must be timezone-aware")
    return moment.astimezone(UTC)


def record_history(session: Session, at: datetime, version: int) -> int:
    """Close the current interval of every opportunity changed in this transaction (the one
    that makes ``version``) whose tracked fields differ from it and open a new one at ``at``
    (also for opportunities never recorded); returns how many intervals were opened."""
    at = utc(at)
    history = OpportunityHistory
    tracked = _tracked()
    pending = pending_in(Opportunity, version)
    # A first import finds no history: every pending deal opens its first interval, and the
    # check for a current one (which makes SQLite buffer the rows of an INSERT that reads its
    # own table: 2.2 s instead of 1.2 s for a million deals) is left out. Every deal is
    # pending in a first import, so the table is read in order rather than through the index.
    opening = pending_scanned(Opportunity, version)
    if session.execute(select(history.id).limit(1)).first() is not None:
        changed = or_(
            *(expression.is_distinct_from(history.__table__.c[n]) for n, expression in tracked)
        )
        session.execute(
            update(history)
            .where(
                # The IN drives the statement from the pending deals' index to the history's.
                history.opportunity_id.in_(select(Opportunity.id).where(pending)),
                history.valid_to.is_(None),
                exists().where(Opportunity.id == history.opportunity_id, changed),
            )
            .values(valid_to=at)
            .execution_options(synchronize_session=False)
        )
        current = exists().where(
            history.opportunity_id == Opportunity.id, history.valid_to.is_(None)
        )
        opening = and_(pending, ~current)
    names = ["opportunity_id", "valid_from", *(name for name, _ in tracked)]
    opened = session.execute(
        insert(history).from_select(
            names,
            select(
                Opportunity.id,
                literal(at, DateTime(timezone=True)),
                *(expression for _, expression in tracked),
            ).where(opening),
        )
    )
    return int(opened.rowcount)  # type: ignore[attr-defined]


def _holds_at(at: datetime) -> ColumnElement[bool]:
    """The history interval that holds at ``at`` (UTC): opened at or before it, closed after."""
    history = OpportunityHistory
    return and_(history.valid_from <= at, or_(history.valid_to.is_(None), history.valid_to > at))


def states_at(at: datetime) -> Select[*tuple[Any, ...]]:
    """Each recorded opportunity as it stood at ``at`` (deleted ones with status "deleted"):
    opportunity id, source, source id, name, created_at, account_id and the tracked fields."""
    at = utc(at)
    history = OpportunityHistory
    return (
        select(
            history.opportunity_id,
            Opportunity.source,
            Opportunity.source_id,
            Opportunity.name,
            Opportunity.created_at,
            Opportunity.account_id,
            history.status,
            history.stage,
            history.amount,
            history.currency,
            history.close_date,
            history.probability,
            history.owner_id,
        )
        .join(Opportunity, Opportunity.id == history.opportunity_id)
        .where(_holds_at(at))
    )


def changed_between(after: datetime, until: datetime) -> Select[int]:
    """The opportunities with an interval opened in (``after``, ``until``]: the deals whose
    state at ``after`` may differ from their state at ``until`` (read on the ``valid_from``
    index, so in time proportional to the changes, not to the deals)."""
    history = OpportunityHistory
    return (
        select(history.opportunity_id)
        .where(history.valid_from > utc(after), history.valid_from <= utc(until))
        .distinct()
    )


def changed_states_at(at: datetime, after: datetime, until: datetime) -> Select[*tuple[Any, ...]]:
    """Of the deals ``changed_between(after, until)``, those that existed at ``at``, as they
    stood then: opportunity id, created_at, account_id and the tracked fields. Each deal's
    interval is found on the (opportunity, valid_to) index."""
    at = utc(at)
    history = OpportunityHistory
    return (
        select(
            history.opportunity_id,
            Opportunity.created_at,
            Opportunity.account_id,
            history.status,
            history.amount,
            history.currency,
            history.close_date,
            history.probability,
            history.owner_id,
        )
        .join(Opportunity, Opportunity.id == history.opportunity_id)
        .where(
            history.opportunity_id.in_(changed_between(after, until).scalar_subquery()),
            _holds_at(at),
        )
    )


def deal_names(ids: Iterable[int]) -> Select[int, str]:
    """The name of each of ``ids`` (its CRM id when it has none): the few deals an answer
    names are read by id, so no state keeps a million names."""
    return select(Opportunity.id, func.coalesce(Opportunity.name, Opportunity.source_id)).where(
        Opportunity.id.in_(sorted(ids))
    )


def last_recorded(connection: Connection) -> datetime | None:
    """The latest moment the history holds (read on the ``valid_from`` index): every later
    change is recorded after it."""
    return as_utc(connection.scalar(select(func.max(OpportunityHistory.valid_from))))


def slips(deals: Select[int] | None = None) -> Select[*tuple[Any, ...]]:
    """Every push of an open deal's close date to a later day, in push order: the deal, when
    (the moment the new interval starts), its close date before and after (day numbers,
    ``bot.store.day_numbers``), and its name (its CRM id when it has none), amount and owner
    then. ``deals``: only those of the deals it selects."""
    history = OpportunityHistory
    lagged = select(
        history.opportunity_id,
        history.valid_from,
        history.status,
        history.close_date,
        history.amount,
        history.currency,
        history.owner_id,
        func.lag(history.status)
        .over(partition_by=history.opportunity_id, order_by=history.valid_from)
        .label("previous_status"),
        func.lag(history.close_date)
        .over(partition_by=history.opportunity_id, order_by=history.valid_from)
        .label("previous_close"),
    )
    # A push needs an earlier interval: the window reads only the deals with two or more
    # (after a first import, none of a million), found by a scan of the index alone.
    changed = (
        select(history.opportunity_id).group_by(history.opportunity_id).having(func.count() > 1)
    )
    if deals is not None:
        changed = changed.where(history.opportunity_id.in_(deals))
    # Inside the window's query: a filter outside it would not reach the index.
    lagged = lagged.where(history.opportunity_id.in_(changed))
    steps = lagged.subquery()
    return (
        select(
            steps.c.opportunity_id.label("id"),
            func.coalesce(Opportunity.name, Opportunity.source_id).label("name"),
            steps.c.valid_from.label("date"),
            day_number(steps.c.previous_close, "previous_close"),
            day_number(steps.c.close_date, "close_date"),
            steps.c.amount,
            steps.c.currency,
            steps.c.owner_id.label("rep_id"),
        )
        .join(Opportunity, Opportunity.id == steps.c.opportunity_id)
        .where(
            steps.c.status == "open",
            steps.c.previous_status == "open",
            steps.c.close_date > steps.c.previous_close,
        )
        .order_by(steps.c.valid_from, steps.c.opportunity_id)
    )


def first_recorded(connection: Connection) -> datetime | None:
    """The earliest moment the history holds: before it, past pipelines are rebuilt from
    current records."""
    return as_utc(connection.scalar(select(func.min(OpportunityHistory.valid_from))))
