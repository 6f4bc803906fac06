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
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

import numpy as np
import pandas as pd

from metrics.facts import Facts, day
from metrics.periods import Period
from metrics.scopes import Scope

COLUMNS = ("id", "status", "amount", "close", "rep", "team", "region")
# A state's status as a small code: comparisons on codes, not strings (absent deals: NONE).
NONE, OPEN, WON, LOST, DELETED = range(5)
_STATUS_CODES = pd.Index(["open", "won", "lost", "deleted"])
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


_LABELS = ("rep", "team", "region")


@dataclass(frozen=True)
class Pair:
    """The union of deals of both states, aligned by id: ``*0`` at the start, ``*1`` at the
    end (``labels``: rep, team and region on each side, "" where the deal is absent)."""

    period: Period
    id: np.ndarray
    rep: np.ndarray  # the deal's rep at the end, else at the start
    exists0: np.ndarray
    exists1: np.ndarray
    status0: np.ndarray  # int8 codes: NONE, OPEN, WON, LOST, DELETED
    status1: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    in_period0: np.ndarray
    in_period1: np.ndarray
    labels: dict[tuple[str, int], np.ndarray]
    _groups: dict[tuple[str, int], dict[str, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _codes: dict[tuple[str, int, tuple[str, ...]], np.ndarray] = field(
        default_factory=dict, compare=False, repr=False
    )

    def take(self, rows: np.ndarray) -> Pair:
        """The deals at positions ``rows``."""
        arrays = {
            name: getattr(self, name)[rows]
            for name in ("id", "rep", "exists0", "exists1", "status0", "status1", "a0", "a1",
                         "in_period0", "in_period1")
        }  # fmt: skip
        labels = {key: values[rows] for key, values in self.labels.items()}
        return Pair(period=self.period, labels=labels, **arrays)

    def codes(self, column: str, side: int, names: tuple[str, ...]) -> np.ndarray:
        """Each deal's position in ``names`` by its ``column`` on ``side`` (-1: in none), kept:
        every viewer of a breakdown asks for the same."""
        key = (column, side, names)
        if key not in self._codes:
            labels = pd.Index(self.labels[(column, side)])
            self._codes[key] = pd.Index(names).get_indexer(labels).astype("int64")
        return self._codes[key]

    def members(self, column: str, side: int, name: str) -> np.ndarray:
        """Positions of the deals whose ``column`` is ``name`` on ``side`` (one grouping per
        column and side, so fifty teams cost one pass)."""
        key = (column, side)
        if key not in self._groups:
            grouped = pd.Series(self.labels[key]).groupby(self.labels[key], sort=False).indices
            self._groups[key] = {str(k): np.asarray(v) for k, v in grouped.items()}
        return self._groups[key].get(name, np.empty(0, dtype="int64"))


def _side(
    frame: pd.DataFrame, ids: np.ndarray, first: np.datetime64, last: np.datetime64
) -> dict[str, np.ndarray]:
    """One state's columns aligned on ``ids`` (sorted): absent deals have no status, no
    amount, no close date and no labels."""
    at = np.searchsorted(ids, frame["id"].to_numpy(dtype="int64"))
    n = len(ids)
    exists = np.zeros(n, dtype=bool)
    exists[at] = True
    status = np.full(n, NONE, dtype="int8")
    status[at] = _STATUS_CODES.get_indexer(pd.Index(frame["status"].astype(object))) + 1
    amount = np.zeros(n, dtype="int64")
    amount[at] = frame["amount"].to_numpy(dtype="int64")
    close = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    close[at] = frame["close"].to_numpy(dtype="datetime64[D]")
    columns = {"exists": exists, "status": status, "amount": amount,
               "in_period": (close >= first) & (close <= last)}  # fmt: skip
    for label in _LABELS:
        values = np.full(n, "", dtype=object)
        values[at] = frame[label].astype(object).fillna("").to_numpy()
        columns[label] = values
    return columns


def pair(start: pd.DataFrame, end: pd.DataFrame, period: Period) -> Pair:
    ids = np.union1d(start["id"].to_numpy(dtype="int64"), end["id"].to_numpy(dtype="int64"))
    first, last = day(period.start), day(period.end)
    s0, s1 = _side(start, ids, first, last), _side(end, ids, first, last)
    return Pair(
        period=period,
        id=ids,
        rep=np.where(s1["exists"], s1["rep"], s0["rep"]),
        exists0=s0["exists"],
        exists1=s1["exists"],
        status0=s0["status"],
        status1=s1["status"],
        a0=s0["amount"],
        a1=s1["amount"],
        in_period0=s0["in_period"],
        in_period1=s1["in_period"],
        labels={(label, side): s[label] for label in _LABELS for side, s in ((0, s0), (1, s1))},
    )


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


_Masks = dict[Movement, tuple[np.ndarray, np.ndarray]]


def _movements(pair: Pair, m0: np.ndarray, m1: np.ndarray) -> tuple[_Masks, np.ndarray, np.ndarray]:
    """Each movement's deals and signed amounts for a scope the deals are in (``m0`` at the
    start, ``m1`` at the end), and the deals in its pipeline at the start and at the end."""
    open0 = pair.status0 == OPEN
    open1 = pair.status1 == OPEN
    in0 = open0 & pair.in_period0 & m0
    in1 = open1 & pair.in_period1 & m1
    gone1 = ~pair.exists1 | (pair.status1 == DELETED)
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
        Movement.LOST: (closing & (status1 == LOST), -a1),
        Movement.WON: (closing & (status1 == WON), -a1),
        Movement.REMOVED: (
            removed_a | removed_b_at_start | (closing & (status1 == DELETED)),
            np.where(removed_a | removed_b_at_start, -a0, -a1),
        ),
    }
    return masks, in0, in1


def scope_waterfall(pair: Pair, scope: Scope, named: Named = lambda rep: True) -> Waterfall:
    """``scope``'s waterfall over the deals of ``pair``."""
    if scope.column is None:
        m0 = m1 = np.ones(len(pair.id), dtype=bool)
    else:
        # Only the deals in the scope at one end or the other can move its pipeline.
        p0 = pair.members(scope.column, 0, scope.name)
        p1 = pair.members(scope.column, 1, scope.name)
        rows = np.union1d(p0, p1)
        m0, m1 = np.isin(rows, p0), np.isin(rows, p1)
        pair = pair.take(rows)
    masks, in0, in1 = _movements(pair, m0, m1)
    steps = tuple(_step(pair, m, mask, amounts, named) for m, (mask, amounts) in masks.items())
    return Waterfall(scope, pair.period, int(pair.a0[in0].sum()), steps, int(pair.a1[in1].sum()))


def _segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The sums of ``values`` between consecutive ``bounds``, in int64 (exact, where a float
    weight would round past 2**53)."""
    running = np.concatenate(([0], np.cumsum(values, dtype="int64")))
    sums: np.ndarray = running[bounds[1:]] - running[bounds[:-1]]
    return sums


def _grouped_sum(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """The sum of ``values`` for each code in 0..n-1."""
    order = np.argsort(codes, kind="stable")
    return _segment_sums(values[order], np.searchsorted(codes[order], np.arange(n + 1)))


def level_waterfalls(
    pair: Pair, scopes: Sequence[Scope], named: Named = lambda rep: True
) -> list[Waterfall]:
    """The waterfalls of ``scopes``, all of one level (a breakdown's children), in one pass
    rather than one per scope: a deal that stays in one scope moves in it as it would for the
    company; one that changes scopes leaves the first (in it at the start only) and enters the
    second (at the end only). So three passes over the deals serve every scope, and the sums
    are grouped by scope."""
    if not scopes:
        return []
    column = scopes[0].column
    assert column is not None and all(s.column == column for s in scopes), scopes
    names = tuple(s.name for s in scopes)
    n = len(names)
    code0, code1 = pair.codes(column, 0, names), pair.codes(column, 1, names)
    same = code0 == code1
    yes = np.ones(len(pair.id), dtype=bool)
    no = ~yes
    # (movements for such a deal, which deals, the scope each counts in)
    passes = [
        (_movements(pair, yes, yes), same & (code0 >= 0), code0),
        (_movements(pair, yes, no), ~same & (code0 >= 0), code0),
        (_movements(pair, no, yes), ~same & (code1 >= 0), code1),
    ]
    start, end = np.zeros(n, dtype="int64"), np.zeros(n, dtype="int64")
    for (_, in0, in1), member, code in passes:
        start += _grouped_sum(code[member & in0], pair.a0[member & in0], n)
        end += _grouped_sum(code[member & in1], pair.a1[member & in1], n)
    steps: list[list[Step]] = [[] for _ in range(n)]
    for movement in Movement:
        positions, codes, amounts = [], [], []
        for (masks, _, _), member, code in passes:
            mask, signed = masks[movement]
            chosen = np.flatnonzero(member & mask)
            positions.append(chosen)
            codes.append(code[chosen])
            amounts.append(signed[chosen])
        position, code, amount = (np.concatenate(a) for a in (positions, codes, amounts))
        # By scope, then largest first (ties in deal order, as ``_step`` does).
        order = np.lexsort((position, -np.abs(amount), code))
        bounds = np.searchsorted(code[order], np.arange(n + 1))
        sums = _segment_sums(amount[order], bounds)
        counts = np.diff(bounds)
        for k in range(n):
            largest: list[DealMove] = []
            for i in order[bounds[k] : bounds[k + 1]]:
                rep = str(pair.rep[position[i]])
                if named(rep):
                    largest.append(DealMove(int(pair.id[position[i]]), rep, int(amount[i])))
                    if len(largest) == LARGEST:
                        break
            steps[k].append(Step(movement, int(sums[k]), int(counts[k]), tuple(largest)))
    return [
        Waterfall(scope, pair.period, int(start[k]), tuple(steps[k]), int(end[k]))
        for k, scope in enumerate(scopes)
    ]


def changed_pair(facts: Facts, start: pd.DataFrame, changed: np.ndarray, period: Period) -> Pair:
    """The deals that may have moved since a past moment, aligned: ``changed``, the ids of
    every deal whose state may have changed since (any superset will do); ``start``, those of
    them that existed then, as they stood; their end, from ``facts`` (the deals now). The same
    for every scope and viewer: built once for a question, kept by the shell per data version."""
    now = facts.opportunities.iloc[np.sort(facts.deal_rows(changed))]
    return pair(start, now.reset_index(drop=True), period)


def changed_waterfalls(
    facts: Facts,
    moved: Pair,
    scope: Scope,
    children: Sequence[Scope] = (),
    named: Named = lambda rep: True,
) -> tuple[Waterfall, tuple[Waterfall, ...]]:
    """The waterfall of ``scope`` and of each of its ``children`` (all of one level) over the
    deals of ``moved`` (``changed_pair``) and ``facts``. Every deal not in ``moved`` stands in
    both states as in ``facts``: it adds the same amount to a scope's start and end, the
    scope's pipeline in the facts less what the moved deals hold of it at the end."""
    computed = [scope_waterfall(moved, scope, named), *level_waterfalls(moved, children, named)]
    waterfalls = []
    for w in computed:
        whole = facts.pipeline(w.scope, moved.period)
        waterfalls.append(replace(w, start=whole - w.end + w.start, end=whole))
    return waterfalls[0], tuple(waterfalls[1:])


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
            Step(
                s.movement,
                s.amount,
                s.count,
                tuple(DealMove(d.id, d.rep, d.amount, names.get(d.id, "")) for d in s.largest),
            )
            if s.largest
            else s
            for s in w.steps
        )
        return Waterfall(w.scope, w.period, w.start, steps, w.end)

    return replace(
        changes,
        waterfall=named(changes.waterfall),
        breakdown=tuple(named(w) for w in changes.breakdown),
    )
