"""New against tenured reps ("montée en puissance"): how the reps in their first months
(``Context.new_rep_months``, 6 by default) attain their revenue targets against the reps
who have been there longer, and how many days each new rep took to win a first deal.

A group's attainment is its reps' revenue ÷ their revenue targets for the period, over the reps
of the group that have one; a rep counts as new while their start (``active_from``) is less
than the configured months before the period's end, or ``as_of`` while it runs. Reps who are
not active on that day are in neither group; a rep without a start date is tenured."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from metrics.facts import WON, Facts, day, within
from metrics.kpis import Context
from metrics.periods import Period
from metrics.scopes import Level, Scope


@dataclass(frozen=True)
class RepGroup:
    """New or tenured reps of a scope, as one figure."""

    reps: tuple[str, ...]  # every rep of the group, by name
    revenue: Decimal  # revenue to date of the reps with a target
    target: Decimal | None  # the sum of their targets; None when none of them has one
    targeted: int  # how many reps of the group have a target

    @property
    def attainment(self) -> Decimal | None:
        if not self.target:
            return None
        return self.revenue / self.target


@dataclass(frozen=True)
class NewRep:
    name: str
    started: date
    first_win: date | None  # None: no deal won yet
    days: int | None  # from the start to the first win


@dataclass(frozen=True)
class RampUp:
    months: int  # a rep is new in their first ``months`` months
    # None: withheld from an audience that could read a rep's figure from it
    # (``conversation.authorization.visible_answer``).
    new: RepGroup | None
    tenured: RepGroup | None
    new_reps: tuple[NewRep, ...]  # quickest to a first win first, then those still waiting


def months_before(d: date, months: int) -> date:
    """The same day ``months`` months before ``d`` (the month's last day when it is shorter)."""
    index = d.year * 12 + d.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _group(facts: Facts, names: list[str], period: Period, as_of: date, ctx: Context) -> RepGroup:
    elapsed = period.to_date(min(as_of, period.end)) if as_of >= period.start else None
    revenue = Decimal(0)
    target = Decimal(0)
    targeted = 0
    for name in names:
        scope = Scope(Level.REP, name)
        own = ctx.target("revenue", scope, period)
        if own is None:
            continue
        targeted += 1
        target += own
        if elapsed is not None:
            deals = facts.columns("opportunities", scope, ("status_code", "amount", "close"))
            won = (deals["status_code"] == WON) & within(deals["close"], elapsed)
            revenue += Decimal(int(deals["amount"][won].sum())).scaleb(-facts.minor_digits)
    return RepGroup(tuple(names), revenue, target if targeted else None, targeted)


def _first_wins(facts: Facts, scope: Scope, started: pd.Series, as_of: date) -> pd.Series:
    """Each rep's first won deal closed on or after their start and by ``as_of``."""
    if started.empty:
        return pd.Series(dtype="datetime64[ns]")
    deals = facts.columns("opportunities", scope, ("rep", "status_code", "close"))
    won = (deals["status_code"] == WON) & (deals["close"] <= day(as_of))
    owner, close = deals["rep"][won], deals["close"][won]
    start = pd.Series(owner).map(started).to_numpy(dtype="datetime64[D]")
    after = close >= start  # NaT (not a new rep) compares false
    return pd.Series(close[after]).groupby(owner[after]).min()


def ramp_up_groups(facts: Facts, scope: Scope, period: Period, as_of: date, ctx: Context) -> RampUp:
    """The new and the tenured reps of ``scope`` for ``period`` at ``as_of``."""
    on = min(as_of, period.end)
    reps = facts.columns("reps", scope, ("name", "active_from", "active_to"))
    joined, left = reps["active_from"], reps["active_to"]
    active = (np.isnat(joined) | (joined <= day(on))) & (np.isnat(left) | (left >= day(on)))
    new = active & (joined > day(months_before(on, ctx.new_rep_months)))
    names = reps["name"]
    started = pd.Series(joined[new], index=names[new])
    firsts = _first_wins(facts, scope, started, as_of)
    new_reps = []
    for name, start in started.items():
        first = firsts.get(name)
        begun = pd.Timestamp(start).date()
        won = None if first is None or pd.isna(first) else pd.Timestamp(first).date()
        days = None if won is None else (won - begun).days
        new_reps.append(NewRep(str(name), begun, won, days))
    new_reps.sort(key=lambda r: (r.days is None, r.days or 0, r.name))
    return RampUp(
        ctx.new_rep_months,
        _group(facts, sorted(str(n) for n in names[new]), period, as_of, ctx),
        _group(facts, sorted(str(n) for n in names[active & ~new]), period, as_of, ctx),
        tuple(new_reps),
    )
