"""The pipeline history from before kpibot's first sync of a CRM, rebuilt from the CRM's own
field history (a ``FieldHistory`` connector).

The CRM keeps each change of a tracked field (from, to, when), not the states in between, and
kpibot knows each deal's state at its first sync. So the states are rebuilt backwards: starting
from the first recorded state, the changes are undone newest first, each giving the state that
held before it, and written as validity intervals ending where the first recorded one starts.
The oldest rebuilt state runs from the deal's creation, also for deals the CRM records no
change of (unless it records no change at all: an org that tracks none of the fields). Only
deals whose history this sync
started are backfilled, so another sync (or a reset high-water mark) never writes them twice.

A change whose value the import would refuse (a stage the mapping no longer knows, an owner
that is no rep) ends that deal's rebuild there: the states after it are kept, and the deal is
reported."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import and_, exists, insert, select
from sqlalchemy.orm import Session, aliased

from bot.sources.connector import FieldChange
from bot.store.history import utc
from bot.store.models import Opportunity, OpportunityHistory

# The history columns a deal's state holds (currency is the deal's, as the CRM's history
# records amounts in the record's currency).
STATE = ("status", "stage", "amount", "currency", "close_date", "probability", "owner_id")

# A canonical field and the CRM's raw value → the history columns it sets; raises ValueError
# saying why when the import would refuse the value.
Reader = Callable[[str, Any], Mapping[str, Any]]


@dataclass(frozen=True)
class Interval:
    valid_from: datetime
    valid_to: datetime
    state: Mapping[str, Any]


@dataclass
class Backfilled:
    deals: int = 0  # deals given earlier states
    intervals: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (deal's CRM id, reason)
    api_calls: int = 0
    error: str | None = None  # why the CRM's field history could not be read

    def summary(self, shown: int) -> list[str]:
        calls = f"{self.api_calls} API call{'s' if self.api_calls != 1 else ''}"
        if self.error is not None:
            return [f"history before the first sync NOT backfilled ({calls}): {self.error}"]
        lines = [
            f"history before the first sync backfilled from the CRM's field history: "
            f"{self.intervals} earlier state(s) of {self.deals} deal(s); {calls}"
        ]
        lines += [f"  not rebuilt before {why} (deal {deal})" for deal, why in self.refused[:shown]]
        if len(self.refused) > shown:
            lines.append(f"  and {len(self.refused) - shown} more deals not rebuilt")
        return lines


def earlier_states(
    current: Mapping[str, Any],
    changes: Iterable[FieldChange],
    first: datetime,
    began: datetime | None,
    read: Reader,
) -> tuple[list[Interval], str | None]:
    """The states before ``current`` (first recorded at ``first``), newest first, that the
    deal's ``changes`` imply, the oldest from ``began`` (its creation) when that is earlier;
    and why the rebuild stopped early, if it did."""
    by_moment: dict[datetime, list[FieldChange]] = defaultdict(list)
    for change in changes:
        if utc(change.at) < first:  # changes after the first read are the sync's own
            by_moment[utc(change.at)].append(change)
    intervals: list[Interval] = []
    state = dict(current)
    end = first
    for moment in sorted(by_moment, reverse=True):
        intervals.append(Interval(moment, end, state))
        before = dict(state)
        try:
            for change in by_moment[moment]:
                before.update(read(change.field, change.old))
        except ValueError as error:
            return intervals, f"its {moment:%Y-%m-%d %H:%M} UTC change: {error}"
        state, end = before, moment
    if began is not None and began < end:
        intervals.append(Interval(began, end, state))
    return intervals, None


def backfill_history(
    session: Session, source: str, changes: Iterable[FieldChange], first: datetime, read: Reader
) -> Backfilled:
    """Write the states before ``first`` of ``source``'s deals whose history starts at
    ``first`` (this sync recorded them first)."""
    first = utc(first)
    history = OpportunityHistory
    earlier = aliased(OpportunityHistory)
    rows = session.execute(
        select(
            Opportunity.source_id,
            Opportunity.created_at,
            history.opportunity_id,
            *(history.__table__.c[name] for name in STATE),
        )
        .join(Opportunity, Opportunity.id == history.opportunity_id)
        .where(
            Opportunity.source == source,
            history.valid_from == first,
            history.status != "deleted",
            ~exists().where(
                and_(earlier.opportunity_id == history.opportunity_id, earlier.valid_from < first)
            ),
        )
    )
    current = {str(row.source_id): row for row in rows}
    per_deal: dict[str, list[FieldChange]] = defaultdict(list)
    for change in changes:
        per_deal[change.record].append(change)
    report = Backfilled()
    if not per_deal:
        # An org that tracks none of the fields: "unchanged since created" would be a guess.
        return report
    written: list[dict[str, Any]] = []
    for record, row in sorted(current.items()):
        began = None if row.created_at is None else datetime.combine(row.created_at, time(), UTC)
        state = {name: getattr(row, name) for name in STATE}
        intervals, refused = earlier_states(state, per_deal[record], first, began, read)
        if refused is not None:
            report.refused.append((record, refused))
        if intervals:
            report.deals += 1
        written.extend(
            {
                "opportunity_id": row.opportunity_id,
                "valid_from": interval.valid_from,
                "valid_to": interval.valid_to,
                **interval.state,
            }
            for interval in intervals
        )
    if written:
        session.execute(insert(history), written)
    report.intervals = len(written)
    return report
