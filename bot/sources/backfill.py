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
reported. Deals whose history the connector left unread (a ``HistoryCut``: Pipedrive's budget
kept for the syncs) are not rebuilt at all, not even "unchanged since created"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import and_, exists, insert, select
from sqlalchemy.orm import Session, aliased

from bot.formatting import Formatter
from bot.sources.connector import FieldChange, HistoryCut
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


@dataclass(frozen=True)
class Refusal:
    """A deal whose rebuild stopped at a change whose value the import refuses."""

    deal: str  # the CRM's id
    at: datetime  # the change's moment
    reason: str


@dataclass
class Backfilled:
    deals: int = 0  # deals given earlier states
    intervals: int = 0
    refused: list[Refusal] = field(default_factory=list)
    api_calls: int = 0
    error: str | None = None  # why the CRM's field history could not be read
    cut: HistoryCut | None = None  # deals whose history the connector left unread

    def summary(self, fmt: Formatter, shown: int) -> list[str]:
        """What the backfill did, in ``fmt``'s language: a line, then the deals it could not
        rebuild (``shown`` of them at most) and those it left unread."""
        calls = fmt.tn("sync.api_calls", self.api_calls)
        if self.error is not None:
            return [fmt.t("sync.backfill_failed", calls=calls, error=self.error)]
        states = fmt.tn("sync.backfill_states", self.intervals)
        deals = fmt.tn("sync.backfill_deals", self.deals)
        lines = [fmt.t("sync.backfill", states=states, deals=deals, calls=calls)]
        for refusal in self.refused[:shown]:
            at = f"{refusal.at.astimezone(UTC):%Y-%m-%d %H:%M}"
            text = fmt.t("sync.backfill_refused", deal=refusal.deal, at=at, reason=refusal.reason)
            lines.append(f"  {text}")
        if len(self.refused) > shown:
            lines.append("  " + fmt.tn("sync.backfill_more_refused", len(self.refused) - shown))
        if self.cut is not None:
            cut = self.cut
            kept, left, limit = (fmt.number(n, digits=0) for n in (cut.kept, cut.left, cut.limit))
            lines.append(
                fmt.tn("sync.backfill_cut", len(cut.records), kept=kept, left=left, limit=limit)
            )
        return lines


def earlier_states(
    current: Mapping[str, Any],
    changes: Iterable[FieldChange],
    first: datetime,
    began: datetime | None,
    read: Reader,
) -> tuple[list[Interval], tuple[datetime, str] | None]:
    """The states before ``current`` (first recorded at ``first``), newest first, that the
    deal's ``changes`` imply, the oldest from ``began`` (its creation) when that is earlier;
    and the change that stopped the rebuild early, with why, if one did."""
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
            return intervals, (moment, str(error))
        state, end = before, moment
    if began is not None and began < end:
        intervals.append(Interval(began, end, state))
    return intervals, None


def backfill_history(
    session: Session, source: str, changes: Iterable[FieldChange], first: datetime, read: Reader,
    cut: Callable[[], HistoryCut | None] = lambda: None,
) -> Backfilled:  # fmt: skip
    """Write the states before ``first`` of ``source``'s deals whose history starts at
    ``first`` (this sync recorded them first), but for those ``cut`` names once ``changes``
    are read: their history was left unread."""
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
    report = Backfilled(cut=cut())
    unread = report.cut.records if report.cut is not None else frozenset()
    if not per_deal:
        # An org that tracks none of the fields: "unchanged since created" would be a guess.
        return report
    written: list[dict[str, Any]] = []
    for record, row in sorted(current.items()):
        if record in unread:
            continue
        began = None if row.created_at is None else datetime.combine(row.created_at, time(), UTC)
        state = {name: getattr(row, name) for name in STATE}
        intervals, refused = earlier_states(state, per_deal[record], first, began, read)
        if refused is not None:
            report.refused.append(Refusal(record, *refused))
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
