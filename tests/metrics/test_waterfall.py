"""The pipeline waterfall on a hand-made quarter: every movement computed by hand for the
company and each team, start + movements = end to the cent, and children adding up to their
parent for every movement."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from metrics.facts import Facts
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope
from metrics.waterfall import (
    Movement,
    PipelineChanges,
    Waterfall,
    changed_pair,
    changed_waterfalls,
    deal_ids,
    waterfall,
    with_names,
)

Q4 = period_containing(Grain.QUARTER, date(2026, 11, 1))
IN, OUT = "2026-11-15", "2027-01-15"  # close dates inside and after Q4
TEAMS = {"ana": ("A", "North"), "bob": ("A", "North"), "cyd": ("B", "North"), "dan": ("C", "South")}

# id: (name, start state or None, end state); a state is (status, amount in cents, close, rep).
DEALS = {
    1: ("Stay", ("open", 100_000, IN, "ana"), ("open", 100_000, IN, "ana")),
    2: ("Grow", ("open", 50_000, IN, "ana"), ("open", 80_000, IN, "ana")),
    3: ("Shrink", ("open", 40_000, IN, "bob"), ("open", 25_050, IN, "bob")),
    4: ("Push", ("open", 30_000, IN, "bob"), ("open", 30_000, OUT, "bob")),
    5: ("Lose", ("open", 20_000, IN, "ana"), ("lost", 20_000, IN, "ana")),
    6: ("Win", ("open", 70_000, IN, "cyd"), ("won", 75_000, IN, "cyd")),
    7: ("New", None, ("open", 60_000, IN, "dan")),
    8: ("Pull", ("open", 45_000, OUT, "dan"), ("open", 45_000, IN, "dan")),
    9: ("Gone", ("open", 35_000, IN, "dan"), ("deleted", 35_000, IN, "dan")),
    10: ("Handover", ("open", 90_000, IN, "ana"), ("open", 90_000, IN, "cyd")),
    11: ("Flash", None, ("won", 12_000, IN, "bob")),
    12: ("Old loss", ("lost", 10_000, IN, "ana"), ("lost", 10_000, IN, "ana")),
    13: ("Cross", ("open", 100_000, IN, "bob"), ("open", 110_000, IN, "dan")),
}


def _state(side: int) -> pd.DataFrame:
    rows = []
    for deal_id, (name, *states) in DEALS.items():
        state = states[side]
        if state is None:
            continue
        status, amount, close, rep = state
        team, region = TEAMS[rep]
        rows.append(
            {"id": deal_id, "name": name, "status": status, "amount": amount,
             "close": pd.Timestamp(close), "rep": rep, "team": team, "region": region}
        )  # fmt: skip
    return pd.DataFrame(rows)


START, END = _state(0), _state(1)


def _movements(result: Waterfall) -> dict[str, tuple[int, int]]:
    return {s.movement.value: (s.amount, s.count) for s in result.steps if s.count}


# Row by row, the movements worked out by hand from DEALS (amounts in cents).
CASES = [
    pytest.param(
        Scope.company(), 535_000, 510_050,
        {"created": (72_000, 2),  # New 600 + Flash 120
         "moved_in": (45_000, 1),  # Pull
         "increased": (45_000, 3),  # Grow +300, Win +50, Cross +100
         "decreased": (-14_950, 1),  # Shrink
         "pushed": (-30_000, 1), "lost": (-20_000, 1),
         "won": (-87_000, 2),  # Win at its won amount 750, Flash 120
         "removed": (-35_000, 1)},  # Handover and Cross stay in the company: no reassignment
        id="company",
    ),
    pytest.param(
        Scope(Level.TEAM, "A"), 430_000, 205_050,
        {"created": (12_000, 1), "increased": (30_000, 1), "decreased": (-14_950, 1),
         "reassigned": (-190_000, 2),  # Handover to cyd, Cross to dan, at their start amounts
         "pushed": (-30_000, 1), "lost": (-20_000, 1), "won": (-12_000, 1)},
        id="team A",
    ),
    pytest.param(
        Scope(Level.TEAM, "B"), 70_000, 90_000,
        {"increased": (5_000, 1), "reassigned": (90_000, 1), "won": (-75_000, 1)},
        id="team B",
    ),
    pytest.param(
        Scope(Level.TEAM, "C"), 35_000, 215_000,
        {"created": (60_000, 1), "moved_in": (45_000, 1),
         "increased": (10_000, 1),  # Cross grew after it arrived
         "reassigned": (100_000, 1), "removed": (-35_000, 1)},
        id="team C",
    ),
    pytest.param(
        Scope(Level.REGION, "North"), 500_000, 295_050,
        {"created": (12_000, 1), "increased": (35_000, 2), "decreased": (-14_950, 1),
         "reassigned": (-100_000, 1),  # only Cross leaves the region
         "pushed": (-30_000, 1), "lost": (-20_000, 1), "won": (-87_000, 2)},
        id="region North",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("scope", "start", "end", "movements"), CASES)
def test_movements_worked_out_by_hand(
    scope: Scope, start: int, end: int, movements: dict[str, tuple[int, int]]
) -> None:
    result = waterfall(START, END, Q4, scope)

    assert (result.start, result.end) == (start, end)
    assert _movements(result) == movements
    assert result.start + sum(s.amount for s in result.steps) == result.end


SCOPES = [
    Scope.company(),
    *(Scope(Level.REGION, r) for r in ("North", "South")),
    *(Scope(Level.TEAM, t) for t in ("A", "B", "C")),
    *(Scope(Level.REP, r) for r in TEAMS),
]
CHILDREN = {
    Scope.company(): [Scope(Level.REGION, "North"), Scope(Level.REGION, "South")],
    Scope(Level.REGION, "North"): [Scope(Level.TEAM, "A"), Scope(Level.TEAM, "B")],
    Scope(Level.REGION, "South"): [Scope(Level.TEAM, "C")],
    Scope(Level.TEAM, "A"): [Scope(Level.REP, "ana"), Scope(Level.REP, "bob")],
}


@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_start_plus_movements_is_the_end_for_every_scope(scope: Scope) -> None:
    result = waterfall(START, END, Q4, scope)

    assert result.start + sum(s.amount for s in result.steps) == result.end


@pytest.mark.parametrize("parent", list(CHILDREN), ids=str)
def test_children_add_up_to_their_parent(parent: Scope) -> None:
    whole = waterfall(START, END, Q4, parent)
    parts = [waterfall(START, END, Q4, child) for child in CHILDREN[parent]]

    assert whole.start == sum(p.start for p in parts)
    assert whole.end == sum(p.end for p in parts)
    for movement in Movement:
        amounts = [p.step(movement).amount for p in parts]
        assert whole.step(movement).amount == sum(amounts), movement


def test_largest_deals_name_only_what_the_viewer_may_see() -> None:
    everyone = waterfall(START, END, Q4, Scope.company())
    ana_only = waterfall(START, END, Q4, Scope.company(), named=lambda rep: rep == "ana")

    won = everyone.step(Movement.WON)
    assert [(d.id, d.amount) for d in won.largest] == [(6, -75_000), (11, -12_000)]
    increased = ana_only.step(Movement.INCREASED)
    # The totals stay whole; only the names are filtered.
    assert (increased.amount, increased.count) == (45_000, 3)
    assert [(d.id, d.rep) for d in increased.largest] == [(2, "ana")]
    assert ana_only.step(Movement.WON).largest == ()


def test_nothing_moved_when_both_states_are_the_same() -> None:
    result = waterfall(START, START, Q4, Scope.company())

    assert result.start == result.end == 535_000
    assert all(s.count == 0 and s.amount == 0 for s in result.steps)


def _now_facts() -> Facts:
    """The facts as they stand at the end: the deleted deal is gone from them."""
    deals = END[END["status"] != "deleted"].reset_index(drop=True)
    empty = pd.DataFrame()
    return Facts(deals, empty, empty, empty, empty, empty)


def _changed(ids: list[int]) -> tuple[np.ndarray, pd.DataFrame]:
    changed = np.array(sorted(ids), dtype="int64")
    return changed, START[START["id"].isin(changed)].reset_index(drop=True)


# Deals whose state differs between START and END (or that exist in only one of them).
MOVED = [i for i, (_, start, end) in DEALS.items() if start != end]
SCOPES = [Scope.company(), [Scope(Level.TEAM, t) for t in "ABC"]]


@pytest.mark.parametrize("ids", [MOVED, list(DEALS)], ids=["changed deals", "every deal"])
def test_from_the_changed_deals_and_the_facts_equals_from_both_whole_states(
    ids: list[int],
) -> None:
    # Deals 1 and 12 did not change: they come from the facts only, in the start and the end.
    assert 1 not in MOVED and 12 not in MOVED
    changed, start = _changed(ids)

    for parent, children in (
        (Scope.company(), [Scope(Level.TEAM, t) for t in "ABC"]),
        (Scope.company(), [Scope(Level.REGION, r) for r in ("North", "South")]),
        (Scope(Level.TEAM, "A"), [Scope(Level.REP, r) for r in TEAMS]),  # and others' reps
    ):
        moved = changed_pair(_now_facts(), start, changed, Q4)
        whole, parts = changed_waterfalls(_now_facts(), moved, parent, children)

        assert whole == waterfall(START, END, Q4, parent)
        assert parts == tuple(waterfall(START, END, Q4, child) for child in children)
    moved = changed_pair(_now_facts(), start, changed, Q4)
    whole, _ = changed_waterfalls(_now_facts(), moved, Scope.company())
    assert (whole.start, whole.end) == (535_000, 510_050)  # the table above


def test_the_named_deals_get_their_names_by_id() -> None:
    changed, start = _changed(MOVED)
    moved = changed_pair(_now_facts(), start, changed, Q4)
    whole, teams = changed_waterfalls(_now_facts(), moved, *SCOPES)
    changes = PipelineChanges(whole, teams, date(2026, 11, 1), None)
    names = {deal_id: name for deal_id, (name, *_) in DEALS.items()}

    named = with_names(changes, {i: names[i] for i in deal_ids(changes)})

    won = named.waterfall.step(Movement.WON)
    assert [(d.name, d.amount) for d in won.largest] == [("Win", -75_000), ("Flash", -12_000)]
    assert deal_ids(changes) <= set(MOVED)
    handed = named.breakdown[0].step(Movement.REASSIGNED)  # team A hands two deals on
    assert [(d.name, d.amount) for d in handed.largest] == [
        ("Cross", -100_000),
        ("Handover", -90_000),
    ]
