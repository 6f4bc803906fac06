"""The pipeline waterfall: how a period's open pipeline went from what it was at one moment to
what it is at another, deal by deal.

Inputs are two states of the deals, each a DataFrame with the columns ``id``, ``status``
('open'|'won'|'lost'|'deleted'), ``amount`` (int64 minor units of the base currency), ``close``
(``datetime64``), ``rep``, ``team``, ``region``. A deal absent from the start did not exist
then; one absent from the end was deleted. ``changed_waterfalls`` takes the end from the
current facts and the start only for the deals that changed in between (``bot.store.history``
reads them): a deal that did not change moves nothing, so the work grows with the changes, not
with the deals. Movements name their largest deals by id; ``with_names`` puts the names in.

Each deal moves at most once per movement, in this order: it changes hands (``reassigned``,
between scopes only), its amount changes (``increased``/``decreased``), then it leaves the
period's pipeline (``pushed`` out by its close date, ``lost``, ``won``, ``removed``) or enters
it (``created``, ``moved_in`` by its close date or a reopening). So for every scope

    start + Σ movements = end, to the minor unit,

and the movements of the children of a scope add up to the scope's (a deal changing teams
inside a region is ``reassigned`` out of one team and into the other, and not at all for the
region)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

import numpy as np
import pandas as pd

from metrics.facts import OPEN, Facts, day, within
from metrics.periods import Period
from metrics.scopes import Scope

COLUMNS = ("id", "status", "amount", "close", "rep", "team", "region")
LARGEST = 3


class Movement(StrEnum):
    CREATED = "created"
    MOVED_IN = "moved_in"
    INCREASED = "increased"
    DECREASED = "decreased"
    REASSIGNED = "reassigned"
    PUSHED = "pushed"
    LOST = "lost"
    WON = "won"
    REMOVED = "removed"


@dataclass(frozen=True)
class DealMove:
    """One deal's part in a movement: signed amount in minor units. ``name`` is put in by
    ``with_names`` (the CRM's name, or its id when it has none)."""

    id: int
    rep: str
    amount: int
    name: str = ""


@dataclass(frozen=True)
class Step:
    movement: Movement
    amount: int  # signed, minor units
    count: int
    largest: tuple[DealMove, ...]  # by absolute amount, only deals the viewer may see named


@dataclass(frozen=True)
class Waterfall:
    scope: Scope
    period: Period
    start: int
    steps: tuple[Step, ...]  # in ``Movement`` order, every movement listed
    end: int

    def step(self, movement: Movement) -> Step:
        return next(s for s in self.steps if s.movement is movement)


@dataclass(frozen=True)
class Pair:
    """The union of deals of both states, aligned: ``*0`` at the start, ``*1`` at the end;
    built once for a scope and all its children."""

    period: Period
    id: np.ndarray
    rep: np.ndarray
    exists0: np.ndarray
    exists1: np.ndarray
    status0: np.ndarray
    status1: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    in_period0: np.ndarray
    in_period1: np.ndarray
    frame: pd.DataFrame  # the merged rows, for scope membership


def pair(start: pd.DataFrame, end: pd.DataFrame, period: Period) -> Pair:
    merged = start[list(COLUMNS)].merge(
        end[list(COLUMNS)], on="id", how="outer", suffixes=("0", "1"), indicator=True
    )
    exists0 = (merged["_merge"] != "right_only").to_numpy()
    exists1 = (merged["_merge"] != "left_only").to_numpy()
    first, last = day(period.start), day(period.end)

    def in_period(column: str) -> np.ndarray:
        close = merged[column].to_numpy(dtype="datetime64[D]")
        return (close >= first) & (close <= last)

    rep = merged["rep1"].astype(object).where(exists1, merged["rep0"].astype(object))
    return Pair(
        period=period,
        id=merged["id"].to_numpy(dtype="int64"),
        rep=rep.fillna("").astype(str).to_numpy(),
        exists0=exists0,
        exists1=exists1,
        status0=merged["status0"].astype(object).fillna("").to_numpy(),
        status1=merged["status1"].astype(object).fillna("").to_numpy(),
        a0=merged["amount0"].fillna(0).to_numpy(dtype="int64"),
        a1=merged["amount1"].fillna(0).to_numpy(dtype="int64"),
        in_period0=in_period("close0"),
        in_period1=in_period("close1"),
        frame=merged,
    )


def _member(pair: Pair, scope: Scope, side: str) -> np.ndarray:
    if scope.column is None:
        return np.ones(len(pair.frame), dtype=bool)
    values = pair.frame[f"{scope.column}{side}"].astype(object)
    return (values == scope.name).to_numpy()


def _step(
    pair: Pair, movement: Movement, mask: np.ndarray, amounts: np.ndarray, named: Named
) -> Step:
    positions = np.flatnonzero(mask)
    chosen = amounts[positions]
    # Largest first; only as many names are asked about as it takes to find LARGEST visible.
    largest: list[DealMove] = []
    for i in np.argsort(-np.abs(chosen), kind="stable"):
        position = positions[i]
        rep = str(pair.rep[position])
        if named(rep):
            largest.append(DealMove(int(pair.id[position]), rep, int(chosen[i])))
            if len(largest) == LARGEST:
                break
    return Step(movement, int(chosen.sum()), len(positions), tuple(largest))


Named = Callable[[str], bool]


def waterfall(
    start: pd.DataFrame,
    end: pd.DataFrame,
    period: Period,
    scope: Scope,
    named: Named = lambda rep: True,
) -> Waterfall:
    """The movements of ``scope``'s open pipeline closing in ``period`` between the two states.
    ``named(rep)`` says whether the viewer may see that rep's deals by name."""
    return scope_waterfall(pair(start, end, period), scope, named)


def scope_waterfall(pair: Pair, scope: Scope, named: Named = lambda rep: True) -> Waterfall:
    """``scope``'s waterfall over the deals of ``pair``."""
    m0, m1 = _member(pair, scope, "0"), _member(pair, scope, "1")
    open0 = pair.exists0 & (pair.status0 == "open")
    open1 = pair.exists1 & (pair.status1 == "open")
    in0 = open0 & pair.in_period0 & m0
    in1 = open1 & pair.in_period1 & m1
    gone1 = ~pair.exists1 | (pair.status1 == "deleted")
    a0, a1 = pair.a0, pair.a1

    # In the scope's pipeline at the start.
    handed_out = in0 & pair.exists1 & ~m1
    stays = in0 & ~handed_out
    removed_a = stays & gone1
    live_a = stays & ~gone1
    # Not in it at the start: enters it, or passes through (enters and closes in between).
    fresh = ~pair.exists0 | open0
    through = ~in1 & pair.exists1 & m1 & ~open1 & pair.in_period1 & fresh & ~in0
    enters = ~in0 & (in1 | through)
    handed_in = enters & open0 & pair.in_period0 & ~m0
    created = enters & ~pair.exists0
    moved_in = enters & ~handed_in & ~created
    removed_b_at_start = handed_in & gone1  # leaves at the amount it came with
    changes = (live_a | (handed_in & ~gone1)) & (a1 != a0)
    closing = (live_a & ~in1) | (enters & through & ~removed_b_at_start)
    zero = np.zeros_like(a0)
    delta = np.where(changes, a1 - a0, zero)
    status1 = pair.status1
    masks = {
        Movement.CREATED: (created, a1),
        Movement.MOVED_IN: (moved_in, a1),
        Movement.INCREASED: (changes & (delta > 0), delta),
        Movement.DECREASED: (changes & (delta < 0), delta),
        Movement.REASSIGNED: (handed_out | handed_in, np.where(handed_out, -a0, a0)),
        Movement.PUSHED: (closing & open1, -a1),
        Movement.LOST: (closing & (status1 == "lost"), -a1),
        Movement.WON: (closing & (status1 == "won"), -a1),
        Movement.REMOVED: (
            removed_a | removed_b_at_start | (closing & (status1 == "deleted")),
            np.where(removed_a | removed_b_at_start, -a0, -a1),
        ),
    }
    steps = tuple(_step(pair, m, mask, amounts, named) for m, (mask, amounts) in masks.items())
    return Waterfall(scope, pair.period, int(a0[in0].sum()), steps, int(a1[in1].sum()))


def changed_waterfalls(
    facts: Facts,
    start: pd.DataFrame,
    changed: np.ndarray,
    period: Period,
    scopes: Sequence[Scope],
    named: Named = lambda rep: True,
) -> tuple[Waterfall, ...]:
    """The waterfall of each of ``scopes`` from the deals as they stood at a past moment to
    ``facts`` (the deals now). ``changed``: the ids of every deal whose state may have changed
    since (any superset will do); ``start``: those of them that existed then, as they stood.
    Every other deal stands in both states as in ``facts``: it adds the same amount to a
    scope's start and end, read from the facts' own columns."""
    now = facts.opportunities.iloc[np.sort(facts.deal_rows(changed))]
    result = pair(start, now.reset_index(drop=True), period)
    waterfalls: list[Waterfall] = []
    for scope in scopes:
        columns = facts.columns("opportunities", scope, ("status_code", "amount", "close"))
        pipeline = (columns["status_code"] == OPEN) & within(columns["close"], period)
        whole = int(columns["amount"][pipeline].sum())
        moved = scope_waterfall(result, scope, named)
        unchanged = whole - moved.end
        waterfalls.append(replace(moved, start=unchanged + moved.start, end=whole))
    return tuple(waterfalls)


@dataclass(frozen=True)
class PipelineChanges:
    """The answer to "pipeline changes since …": the scope's waterfall and its children's."""

    waterfall: Waterfall
    breakdown: tuple[Waterfall, ...]
    since: date  # the day asked for
    # The day of the first recorded state when the history starts after ``since``: the
    # movements are then counted from it, and the answer says so.
    history_from: date | None
    minor_digits: int = 2  # amounts are in minor units of the base currency


def deal_ids(changes: PipelineChanges) -> set[int]:
    """The deals ``changes`` names, whose names ``with_names`` needs."""
    whole = (changes.waterfall, *changes.breakdown)
    return {deal.id for w in whole for step in w.steps for deal in step.largest}


def with_names(changes: PipelineChanges, names: Mapping[int, str]) -> PipelineChanges:
    """``changes`` with each named deal's name from ``names`` (by id)."""

    def named(w: Waterfall) -> Waterfall:
        steps = tuple(
            replace(s, largest=tuple(replace(d, name=names.get(d.id, "")) for d in s.largest))
            for s in w.steps
        )
        return replace(w, steps=steps)

    return replace(
        changes,
        waterfall=named(changes.waterfall),
        breakdown=tuple(named(w) for w in changes.breakdown),
    )
