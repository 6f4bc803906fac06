"""The demo company's pipeline history, as kpibot would have recorded it had it been syncing
the demo CRM since its first deal: each deal opens at its creation, climbs the open stages as
its cycle runs, has its close date pushed when a date passes undecided (a deal that slips was
first expected earlier), and closes won or lost on the day its fate was drawn. So the
waterfall, the slipped deals and the comparisons "as it stood" have something to show, and a
past forecast does not know how its deals ended.

Changes are dated at the start of the day they happen (the demo knows days, not hours): the
pipeline "as it stood at the start of Monday" has none of Monday's changes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from bot.store.history import utc
from bot.store.models import Opportunity, OpportunityHistory

# Open stages by how far a deal is through its cycle: (up to, stage, probability, category).
OPEN_STAGES = (
    (0.2, "Qualification", 0.10, "Pipeline"),
    (0.45, "Découverte", 0.25, "Pipeline"),
    (0.7, "Proposition", 0.50, "Best case"),
    (0.9, "Négociation", 0.75, "Commit"),
    (math.inf, "Accord verbal", 0.90, "Commit"),
)
_RECORDED_AT = time(0, 15)

Row = dict[str, Any]


@dataclass(frozen=True)
class DealLife:
    """What the demo drew for a deal at its creation: its planned close date and the day its
    fate (won or lost) is decided, which may be after the planned date (it slips)."""

    created: date
    planned: date
    decided: date


def open_stage(created: date, planned: date, on: date) -> tuple[str, float, str]:
    """The stage, probability and forecast category of a deal still open ``on`` that day."""
    progress = (on - created).days / max(1, (planned - created).days)
    _, stage, probability, category = next(s for s in OPEN_STAGES if progress < s[0])
    return stage, probability, category


def _states(row: Row, life: DealLife, today: date) -> list[tuple[date, Row]]:
    """The deal's tracked fields from each day they changed, ending with ``row``'s."""
    closed = bool(row["is_closed"])
    span = max(1, (life.planned - life.created).days)
    last_open = life.decided - timedelta(days=1) if closed else today
    # The days a stage may start, and today (an open deal's row holds today's stage).
    days = {life.created, *(life.created + timedelta(days=math.ceil(t * span))
                            for t, *_ in OPEN_STAGES[:-1])}  # fmt: skip
    if not closed:
        days.add(today)
    # A deal that slips was first expected earlier than planned: halfway between the two
    # slips, pushed to the planned date when that first date passes; and, once decided, to
    # the day of its decision when the planned date passes.
    slips = life.decided > life.planned
    guess = life.planned - timedelta(days=max(1, (life.decided - life.planned).days // 2))
    early = slips and life.created < guess <= last_open
    if early:
        days.add(guess)
    if closed and slips:
        days.add(life.planned)
    states: list[tuple[date, Row]] = []
    for day in sorted(d for d in days if d <= last_open):
        stage, probability, _ = open_stage(life.created, life.planned, day)
        close = life.planned
        if early and day < guess:
            close = guess
        elif closed and slips and day >= life.planned:
            close = life.decided
        state = {**_tracked(row), "status": "open", "stage": stage, "probability": probability,
                 "close_date": close}  # fmt: skip
        if not states or states[-1][1] != state:
            states.append((day, state))
    if closed:
        states.append((life.decided, _tracked(row)))
    return states


def state_on(row: Row, life: DealLife, today: date, on: date) -> Row | None:
    """The deal's tracked fields as its CRM showed them at the end of ``on`` (``row`` is the
    deal as of ``today``, ``on`` no later); None if it did not exist yet."""
    states = [state for day, state in _states(row, life, today) if day <= on]
    return states[-1] if states else None


def _tracked(row: Row) -> Row:
    status = ("won" if row["is_won"] else "lost") if row["is_closed"] else "open"
    return {
        "status": status,
        "stage": row["stage"],
        "amount": row["amount"],
        "currency": row["currency"],
        "close_date": row["close_date"],
        "probability": row["probability"],
        "owner_id": row["owner_id"],
    }


def write_history(
    session: Session,
    source: str,
    rows: Iterable[Row],
    ids: Mapping[str, int],
    lives: Mapping[str, DealLife],
    today: date,
    zone: tzinfo,
) -> int:
    """Replace the history of ``source``'s opportunities by their simulated lives; ``rows``
    are the opportunities as written (owners resolved to ids). Returns the intervals written."""
    session.execute(
        delete(OpportunityHistory).where(
            OpportunityHistory.opportunity_id.in_(
                select(Opportunity.id).where(Opportunity.source == source)
            )
        )
    )
    intervals: list[Row] = []
    for row in rows:
        states = _states(row, lives[row["source_id"]], today)
        starts = [utc(datetime.combine(day, _RECORDED_AT, zone)) for day, _ in states]
        ends: list[datetime | None] = [*starts[1:], None]
        opportunity = ids[row["source_id"]]
        intervals.extend(
            {"opportunity_id": opportunity, "valid_from": start, "valid_to": end, **state}
            for start, end, (_, state) in zip(starts, ends, states, strict=True)
        )
    if intervals:
        session.execute(insert(OpportunityHistory), intervals)
    return len(intervals)
