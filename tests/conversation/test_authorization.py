"""``authorize`` row by row: role × action × scope, then the parts of an answer that survive
for people and for channels (``visibility.rep_figures``)."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from conversation.authorization import (
    NAMES_SHOWN,
    Action,
    Channel,
    Refusal,
    RepFigures,
    Role,
    Viewer,
    authorize,
    visible_answer,
    visible_evaluation,
    visible_names,
)
from metrics.answers import Answer, BreakdownRow, Comparison
from metrics.evaluation import Evaluation, Status
from metrics.kpis import KPIS, KpiValue
from metrics.periods import Grain, period_containing
from metrics.ramp import NewRep, RampUp, RepGroup
from metrics.scopes import Level, Scope
from metrics.slipped import SlippedDeal

TEAM_OF = {"Ann": "Lyon", "Bob": "Lyon", "Cy": "Paris"}
ADMIN = Viewer("UA", Role.ADMIN, team_of=TEAM_OF)
MANAGER = Viewer("UM", Role.MANAGER, teams=frozenset({"Lyon"}), team_of=TEAM_OF)
REP = Viewer("UR", Role.REP, rep="Ann", team_of=TEAM_OF)
STRANGER = Viewer("US", Role.UNKNOWN, team_of=TEAM_OF, sees_company=True)
NOBODY = Viewer("UN", Role.UNKNOWN, team_of=TEAM_OF, sees_company=False)

COMPANY = Scope.company()
REGION = Scope(Level.REGION, "Sud")
LYON = Scope(Level.TEAM, "Lyon")
PARIS = Scope(Level.TEAM, "Paris")
ANN = Scope(Level.REP, "Ann")  # the rep's own figures; a rep of the manager's team
BOB = Scope(Level.REP, "Bob")  # another rep of the manager's team
CY = Scope(Level.REP, "Cy")  # a rep of another team

OK, SCOPE, ADMIN_ONLY, NOT_YOURS, UNKNOWN = (
    None,
    Refusal.SCOPE,
    Refusal.ADMIN_ONLY,
    Refusal.NOT_YOURS,
    Refusal.UNKNOWN_USER,
)

TABLE = [
    # --- reading: ask (the same rule serves overview, targets, alerts, home and share) -------
    (ADMIN, Action.ASK, CY, OK),  # admins see every rep
    (MANAGER, Action.ASK, COMPANY, OK),  # aggregates are open to every known user
    (MANAGER, Action.ASK, PARIS, OK),  # ... another team's aggregate too
    (MANAGER, Action.ASK, BOB, OK),  # a rep of their own team
    (MANAGER, Action.ASK, CY, SCOPE),  # not a rep of another team
    (REP, Action.ASK, ANN, OK),  # their own figures
    (REP, Action.ASK, BOB, SCOPE),  # not a teammate's
    (REP, Action.ASK, LYON, OK),  # their team's aggregate (rows filtered below)
    (REP, Action.ASK, REGION, OK),
    (STRANGER, Action.ASK, COMPANY, OK),  # unknown_users: company
    (STRANGER, Action.ASK, LYON, SCOPE),  # ... company only
    (NOBODY, Action.ASK, COMPANY, UNKNOWN),  # unknown_users: nothing
    (MANAGER, Action.OVERVIEW, CY, SCOPE),
    (REP, Action.HOME, ANN, OK),
    (STRANGER, Action.HOME, COMPANY, OK),
    (NOBODY, Action.HOME, COMPANY, UNKNOWN),
    (REP, Action.ALERTS, None, OK),  # the list itself; its items are filtered
    (NOBODY, Action.ALERTS, None, UNKNOWN),
    (REP, Action.TARGETS, None, OK),
    (REP, Action.SHARE, BOB, SCOPE),  # sharing is reading first
    # --- acting on alerts ----------------------------------------------------------------------
    (ADMIN, Action.ACKNOWLEDGE, COMPANY, OK),
    (MANAGER, Action.ACKNOWLEDGE, COMPANY, NOT_YOURS),  # company alerts are leadership's
    (MANAGER, Action.ACKNOWLEDGE, REGION, NOT_YOURS),
    (MANAGER, Action.ACKNOWLEDGE, LYON, OK),  # their team
    (MANAGER, Action.ACKNOWLEDGE, PARIS, NOT_YOURS),  # another team
    (MANAGER, Action.ACKNOWLEDGE, BOB, OK),  # a rep of their team
    (MANAGER, Action.SNOOZE, CY, NOT_YOURS),  # a rep of another team
    (REP, Action.SNOOZE, ANN, OK),  # their own alert
    (REP, Action.SNOOZE, LYON, NOT_YOURS),  # their team's alert is their manager's
    (REP, Action.ACKNOWLEDGE, BOB, NOT_YOURS),
    (STRANGER, Action.ACKNOWLEDGE, COMPANY, NOT_YOURS),
    (ADMIN, Action.SNOOZE, None, OK),  # "/kpi snooze 2d": everything, admins only
    (MANAGER, Action.SNOOZE, None, NOT_YOURS),
    # --- admin commands ------------------------------------------------------------------------
    (ADMIN, Action.SUBSCRIBE, None, OK),
    (MANAGER, Action.SUBSCRIBE, None, ADMIN_ONLY),
    (REP, Action.TARGET, None, ADMIN_ONLY),
    (STRANGER, Action.SYNC, None, ADMIN_ONLY),
    (NOBODY, Action.SYNC, None, UNKNOWN),  # someone unknown is told so first
    (ADMIN, Action.SYNC, None, OK),
]


@pytest.mark.parametrize(("viewer", "action", "scope", "refusal"), TABLE)
def test_authorize(viewer, action, scope, refusal):
    decision = authorize(viewer, action, scope)
    assert decision.allowed is (refusal is None)
    assert decision.refusal == refusal


@pytest.mark.parametrize(
    ("viewer", "visible"),
    [
        (ADMIN, {COMPANY, REGION, LYON, PARIS, ANN, BOB, CY}),
        (MANAGER, {COMPANY, REGION, LYON, PARIS, ANN, BOB}),  # not Cy, of Paris
        (REP, {COMPANY, REGION, LYON, PARIS, ANN}),  # only their own rep figures
        (STRANGER, {COMPANY}),  # no team laggards either
    ],
)
def test_parts_a_person_sees(viewer, visible):
    decision = authorize(viewer, Action.ALERTS)
    everything = [COMPANY, REGION, LYON, PARIS, ANN, BOB, CY]
    assert {s for s in everything if decision.shows(s)} == visible


@pytest.mark.parametrize(
    ("figures", "team", "visible_reps"),
    [
        (RepFigures.PRIVATE, "Lyon", set()),  # the default: no rep figures in any channel
        (RepFigures.TEAM, "Lyon", {ANN, BOB}),  # the team's own reps in its own channel
        (RepFigures.TEAM, None, set()),  # ... not in a channel that is no team's
        (RepFigures.COMPANY, None, {ANN, BOB, CY}),
    ],
)
def test_parts_a_channel_sees(figures, team, visible_reps):
    channel = Channel("C1", figures, team, team_of=TEAM_OF)
    decision = authorize(channel, Action.ALERTS)
    assert {s for s in (ANN, BOB, CY) if decision.shows(s)} == visible_reps
    assert all(decision.shows(s) for s in (COMPANY, REGION, LYON, PARIS))
    assert authorize(channel, Action.SNOOZE, LYON).refusal is Refusal.CHANNEL


def test_a_share_shows_what_both_the_sharer_and_the_channel_may_see():
    channel = Channel("CLYON", RepFigures.TEAM, "Lyon", team_of=TEAM_OF)
    decision = authorize(MANAGER, Action.SHARE, LYON, into=channel)
    assert decision.allowed
    assert decision.shows(BOB) and not decision.shows(CY)
    private = Channel("CGEN", RepFigures.PRIVATE, None, team_of=TEAM_OF)
    assert not authorize(REP, Action.SHARE, LYON, into=private).shows(ANN)
    # The sharer's own figures, shared where rep figures are private: refused outright.
    assert authorize(REP, Action.SHARE, ANN, into=private).refusal is Refusal.SCOPE


QUARTER = period_containing(Grain.QUARTER, date(2026, 11, 26))


def evaluation(scope: Scope, *children: Scope) -> Evaluation:
    return Evaluation(
        "revenue",
        scope,
        QUARTER,
        date(2026, 11, 26),
        KpiValue(Decimal(10)),
        Decimal(100),
        Decimal(50),
        None,
        Status.AT_RISK,
        contributors=tuple(evaluation(c) for c in children),
    )


def test_contributors_are_cut_and_counted():
    lyon = evaluation(LYON, ANN, BOB)
    for_rep = visible_evaluation(lyon, authorize(REP, Action.ALERTS))
    assert [c.scope for c in for_rep.contributors] == [ANN]
    assert for_rep.withheld == 1
    for_manager = visible_evaluation(lyon, authorize(MANAGER, Action.ALERTS))
    assert for_manager is lyon and for_manager.withheld == 0
    private = Channel("CLYON", RepFigures.PRIVATE, "Lyon", team_of=TEAM_OF)
    in_channel = visible_evaluation(lyon, authorize(private, Action.ALERTS))
    assert in_channel.contributors == () and in_channel.withheld == 2


def test_every_rep_behind_is_counted_not_only_the_few_listed():
    # Five reps behind in Lyon, the furthest two listed: a private channel hears of all five.
    lyon = dataclasses.replace(evaluation(LYON, ANN, BOB), behind=5)
    private = Channel("CLYON", RepFigures.PRIVATE, "Lyon", team_of=TEAM_OF)
    in_channel = visible_evaluation(lyon, authorize(private, Action.ALERTS))
    assert in_channel.contributors == () and in_channel.withheld == 5
    # A rep sees their own line and is told of the four others.
    for_rep = visible_evaluation(lyon, authorize(REP, Action.ALERTS))
    assert [c.scope for c in for_rep.contributors] == [ANN] and for_rep.withheld == 4
    # Cut again for a narrower audience, the count stays right.
    assert visible_evaluation(for_rep, authorize(private, Action.ALERTS)).withheld == 5


def test_breakdown_rows_and_the_evaluation_inside_an_answer_are_cut():
    none = Comparison(QUARTER, None, None, None)
    answer = Answer(
        KPIS["revenue"], LYON, QUARTER, date(2026, 11, 26), KpiValue(Decimal(10)),
        Decimal(100), Status.AT_RISK, evaluation(LYON, ANN, BOB), none, none,
        tuple(BreakdownRow(s, KpiValue(Decimal(1)), None, Status.NO_DATA) for s in (ANN, BOB)),
    )  # fmt: skip
    seen = visible_answer(answer, authorize(REP, Action.ASK, LYON))
    assert [r.scope for r in seen.breakdown] == [ANN]
    assert seen.evaluation is not None and seen.evaluation.withheld == 1


SLIPPED = tuple(
    SlippedDeal(f"Deal of {rep}", rep, team, Decimal(1000), 2, 30)
    for rep, team in (("Ann", "Lyon"), ("Bob", "Lyon"), ("Cy", "Paris"))
)
PRIVATE_LYON = Channel("CLYON", RepFigures.PRIVATE, "Lyon", team_of=TEAM_OF)
TEAM_LYON = Channel("CLYON", RepFigures.TEAM, "Lyon", team_of=TEAM_OF)


@pytest.mark.parametrize(
    ("audience", "reps"),
    [
        (ADMIN, ["Ann", "Bob", "Cy"]),  # every rep's deals
        (MANAGER, ["Ann", "Bob"]),  # their team's reps, not Cy of Paris
        (REP, ["Ann"]),  # their own deals only, even in the company's figure
        (STRANGER, []),  # the company's amount, no deal named
        (PRIVATE_LYON, []),  # rep figures private: the channel learns no deal
        (TEAM_LYON, ["Ann", "Bob"]),  # the team's own reps in its channel
    ],
)
def test_slipped_deals_are_named_only_for_reps_the_audience_sees(audience, reps):
    none = Comparison(QUARTER, None, None, None)
    answer = Answer(
        KPIS["slipped"], COMPANY, QUARTER, date(2026, 11, 26), KpiValue(Decimal(3000)), None,
        Status.NO_DATA, None, none, none, (), deals=SLIPPED,
    )  # fmt: skip
    seen = visible_answer(answer, authorize(audience, Action.ASK, COMPANY))
    assert [d.rep for d in seen.deals] == reps
    assert seen.value == answer.value  # the figure itself is the company's, unchanged


def test_names_offered_are_visible_ones_and_a_handful_at_most():
    reps = [f"Rep {i}" for i in range(12)]
    team_of = {r: "Lyon" for r in reps} | {"Cy": "Paris"}
    manager = Viewer("UM", Role.MANAGER, teams=frozenset({"Lyon"}), team_of=team_of)
    names = visible_names(["Cy", *reps], Level.REP, authorize(manager, Action.ASK))
    assert names == tuple(reps[:NAMES_SHOWN])
    assert visible_names(["Cy", "Ann"], Level.REP, authorize(REP, Action.ASK)) == ("Ann",)


# New reps Ann and Bob (Lyon); tenured Cy (Paris) and four more: an aggregate of five.
RAMP = RampUp(
    6,
    RepGroup(("Ann", "Bob"), Decimal(5000), Decimal(10000), 2),
    RepGroup(("Cy", "D1", "D2", "D3", "D4"), Decimal(40000), Decimal(50000), 5),
    (
        NewRep("Ann", date(2026, 8, 1), date(2026, 9, 10), 40),
        NewRep("Bob", date(2026, 9, 1), None, None),
    ),
)


@pytest.mark.parametrize(
    ("audience", "reps", "new_group"),
    [
        (ADMIN, ["Ann", "Bob"], True),
        # Lyon's manager sees both new reps, so also the figure made of them
        (MANAGER, ["Ann", "Bob"], True),
        # Ann sees herself; the new reps' figure is two people's: Bob's would show through it
        (REP, ["Ann"], False),
        (PRIVATE_LYON, [], False),
        (TEAM_LYON, ["Ann", "Bob"], True),
    ],
)
def test_new_reps_are_named_and_their_figure_shown_only_as_rep_figures_allow(
    audience, reps, new_group
):
    none = Comparison(QUARTER, None, None, None)
    answer = Answer(
        KPIS["ramp_up"], COMPANY, QUARTER, date(2026, 11, 26), KpiValue(Decimal(40)), None,
        Status.NO_DATA, None, none, none, (), ramp=RAMP,
    )  # fmt: skip
    seen = visible_answer(answer, authorize(audience, Action.ASK, COMPANY))
    assert seen.ramp is not None
    assert [r.name for r in seen.ramp.new_reps] == reps
    assert (seen.ramp.new is not None) == new_group
    # five tenured reps are an aggregate: every audience reads it
    assert seen.ramp.tenured == RAMP.tenured
