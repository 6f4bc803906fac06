"""Marketing sources: a KPI broken down by lead source / spend channel ("conversion par
source", "cpa par canal", "nouveau pipeline par source"), the figures a CSO and a CMO review
together.

Each channel's figure is the KPI computed on the facts restricted to that channel: its leads,
its spend, and the deals of the accounts whose first converted lead came from it. So a
channel's CPA is its spend ÷ the new customers it brought, and the CPA's attribution rules
(team, region, company) apply inside each channel unchanged. What has no channel (spend
without one, leads without a source, customers that came from no lead) is one more row,
``channel=None``, shown when it counts something (leads, new customers, deals) or has spend
that no new customer can be set against: the rows' spend, leads, customers and deals add up
to the whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from metrics.facts import Facts, Selection
from metrics.kpis import Context, Kpi, KpiValue, Reason
from metrics.periods import Period
from metrics.scopes import Scope


@dataclass(frozen=True)
class SourceRow:
    channel: str | None  # None: no channel known
    value: KpiValue


def _of(channel: str | None) -> Callable[[Facts], Selection]:
    def select(facts: Facts) -> Selection:
        masks = {}
        for table in ("opportunities", "leads", "spend"):
            named = facts.channel(table)
            chosen = named.isna() if channel is None else named == channel
            masks[table] = chosen.to_numpy(dtype=bool, na_value=False)
        return masks

    return select


def by_channel(
    kpi: Kpi, facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context
) -> tuple[SourceRow, ...]:
    """``kpi`` for ``scope`` and ``period`` per channel, then the unattributed row when it
    has something to show."""
    rows = []
    for channel in (*facts.channels(), None):
        only = facts.restricted(("channel", channel), _of(channel))
        value = kpi.compute(only, scope, period, as_of, ctx)
        if channel is not None or _counts(value):
            rows.append(SourceRow(channel, value))
    return tuple(rows)


def _counts(value: KpiValue) -> bool:
    return bool(value.sample) or value.reason is Reason.NO_NEW_CUSTOMER
