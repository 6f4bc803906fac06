"""The alert pipeline, row by row: identity, inhibition, silences, grouping, ``needs_update``
and notification hours. Hand-built evaluations, a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from metrics.alerts import (
    Alert,
    AlertKey,
    AlertState,
    Damping,
    Hours,
    LogEntry,
    NotifyReason,
    Silence,
    group_by_route,
    inhibit,
    needs_update,
    next_allowed,
    plan,
    silence,
    step,
)
from metrics.evaluation import Evaluation, Status, decide_status
from metrics.kpis import KPIS, KpiValue
from metrics.periods import Grain, Period
from metrics.scopes import Level, Scope

Q4 = Period(Grain.QUARTER, date(2026, 10, 1), date(2026, 12, 31))
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LYON = Scope(Level.TEAM, "Lyon")
ALICE = Scope(Level.REP, "Alice")


def ev(status: Status, kpi: str = "revenue", scope: Scope = LYON) -> Evaluation:
    return Evaluation(
        kpi, scope, Q4, NOW.date(), KpiValue(Decimal(100)), Decimal(200), None, None, status
    )


AT_RISK, MISSED, OK = Status.AT_RISK, Status.MISSED, Status.ON_TRACK


def entry(status: Status | None, ago: timedelta = timedelta(hours=1), ack: bool = False):
    return LogEntry(status, NOW - ago, acknowledged=ack)


@pytest.mark.parametrize(
    ("log", "firing", "resolved", "expected"),
    [
        # Never notified and not firing: nothing to say.
        (None, None, False, NotifyReason.NONE),
        # Never notified and fine: a resolution of something nobody heard of is noise.
        (None, None, True, NotifyReason.NONE),
        # A new alert.
        (None, AT_RISK, False, NotifyReason.FIRST),
        # A new alert that is already missed.
        (None, MISSED, False, NotifyReason.FIRST),
        # Notified an hour ago, unchanged: the repeat interval (1 day) has not elapsed.
        (entry(AT_RISK), AT_RISK, False, NotifyReason.NONE),
        # Unchanged for exactly the repeat interval: remind.
        (entry(AT_RISK, DAY), AT_RISK, False, NotifyReason.REPEAT),
        # Unchanged for longer than the interval, missed: remind too.
        (entry(MISSED, 2 * DAY), MISSED, False, NotifyReason.REPEAT),
        # Acknowledged: someone is on it, no reminders...
        (entry(AT_RISK, 2 * DAY, ack=True), AT_RISK, False, NotifyReason.NONE),
        # ...but an escalation still gets through an acknowledgement.
        (entry(AT_RISK, timedelta(0), ack=True), MISSED, False, NotifyReason.ESCALATION),
        # At risk → missed, even a minute later: escalation.
        (entry(AT_RISK, timedelta(minutes=1)), MISSED, False, NotifyReason.ESCALATION),
        # Missed → at risk (data corrected): a change worth telling.
        (entry(MISSED), AT_RISK, False, NotifyReason.CHANGED),
        # Was firing, now evaluated fine: resolved.
        (entry(AT_RISK), None, True, NotifyReason.RESOLVED),
        # Was firing, acknowledged, now fine: resolved all the same.
        (entry(MISSED, ack=True), None, True, NotifyReason.RESOLVED),
        # Was firing, now not evaluated at all (target removed): fades out silently.
        (entry(AT_RISK), None, False, NotifyReason.NONE),
        # Resolution already notified, still fine: nothing.
        (entry(None), None, True, NotifyReason.NONE),
        # Resolution notified, firing again: a first firing anew.
        (entry(None, timedelta(minutes=5)), AT_RISK, False, NotifyReason.FIRST),
    ],
)
def test_needs_update(log, firing, resolved, expected):
    assert needs_update(log, firing, resolved, DAY, NOW) is expected


@pytest.mark.parametrize(
    ("log", "firing", "resolved", "moved", "unstable", "expected"),
    [
        # Interval elapsed but the gap has not moved: the digest carries it, no reminder.
        (entry(AT_RISK, 2 * DAY), AT_RISK, False, False, False, NotifyReason.NONE),
        # Interval elapsed and the gap moved: a reminder (that says what changed).
        (entry(AT_RISK, 2 * DAY), AT_RISK, False, True, False, NotifyReason.REPEAT),
        # An escalation does not wait for the gap to move.
        (entry(AT_RISK), MISSED, False, False, False, NotifyReason.ESCALATION),
        # Unstable, firing again after its resolution was announced: not announced again.
        (entry(None), AT_RISK, False, True, True, NotifyReason.NONE),
        # Unstable but never announced at all: its first firing still goes out.
        (None, AT_RISK, False, True, True, NotifyReason.FIRST),
        # Unstable and still firing: no reminders either.
        (entry(AT_RISK, 2 * DAY), AT_RISK, False, True, True, NotifyReason.NONE),
        # Unstable and now fine, its firing announced: the resolution goes out.
        (entry(AT_RISK), None, True, True, True, NotifyReason.RESOLVED),
    ],
)
def test_needs_update_repeats_and_unstable(log, firing, resolved, moved, unstable, expected):
    got = needs_update(log, firing, resolved, DAY, NOW, moved=moved, unstable=unstable)
    assert got is expected


TARGET = Decimal("0.30")  # win rate; at risk below 0.285 with the 5 % tolerance


def rate(value: str, day: int) -> Evaluation:
    """Lyon's Q4 win rate on the ``day``-th evaluation, judged like the real thing."""
    actual = KpiValue(Decimal(value), 40)
    verdict = decide_status(
        KPIS["win_rate"], actual, TARGET, expected=None, forecast=None, ended=False,
        min_sample=20, tolerance=Decimal("0.05"),
    )  # fmt: skip
    return Evaluation(
        "win_rate", LYON, Q4, (NOW + day * DAY).date(), actual, TARGET, None, None,
        verdict.status, why=verdict.why,
    )  # fmt: skip


DAMPED = Damping(fire_after=2, resolve_after=3, resolve_margin=Decimal("0.05"))


# damping, state before, today's value, firing after, streak after — one row per rule
STEP_CASES = [
    # a first alerting evaluation is only pending with ``fire_after`` = 2...
    (DAMPED, None, "0.28", None, 1),
    # ...and fires on the second in a row
    (DAMPED, AlertState(None, True, 1, NOW - DAY), "0.28", AT_RISK, 2),
    # without damping, at once
    (Damping(), None, "0.28", AT_RISK, 1),
    # an alert that never fired and is fine leaves no state
    (DAMPED, None, "0.31", None, None),
    # firing, cleared by a hair (0.29 > 0.285) once: still firing, one clear evaluation
    (DAMPED, AlertState(AT_RISK, True, 4, NOW - 4 * DAY), "0.29", AT_RISK, 1),
    # firing, clear for the third evaluation in a row: resolved
    (DAMPED, AlertState(AT_RISK, False, 2, NOW - 2 * DAY), "0.29", None, 3),
    # firing, clearly back (0.30: 0.015 over the threshold, 5 % of 0.30): resolved at once
    (DAMPED, AlertState(AT_RISK, True, 4, NOW - 4 * DAY), "0.30", None, 1),
]


@pytest.mark.parametrize(("damping", "before", "value", "firing", "streak"), STEP_CASES)
def test_step(damping, before, value, firing, streak):
    after = step(before, rate(value, 0), damping, NOW)
    if streak is None:
        assert after is None
    else:
        assert after is not None and (after.firing, after.streak) == (firing, streak)


def test_a_second_run_on_the_same_day_is_not_one_more_evaluation():
    first = step(None, rate("0.28", 0), DAMPED, NOW)
    again = step(first, rate("0.28", 0), DAMPED, NOW + timedelta(hours=2))
    assert again is not None and (again.firing, again.streak) == (None, 1)
    assert step(again, rate("0.28", 1), DAMPED, NOW + DAY).firing is AT_RISK  # type: ignore[union-attr]


def test_no_data_neither_holds_nor_clears():
    before = AlertState(AT_RISK, True, 1, NOW)
    early = replace(rate("0.28", 0), status=Status.NO_DATA)
    assert step(before, early, DAMPED, NOW) == before


def test_missed_fires_at_once():
    missed = replace(rate("0.28", 0), status=MISSED)
    after = step(None, missed, DAMPED, NOW)
    assert after is not None and after.firing is MISSED


def fortnight(values: list[str], damping: Damping) -> list[NotifyReason]:
    """Fourteen daily evaluations through ``step`` and ``plan``, the log written after each
    notification as ``bot.alerting`` does: the reasons notified, in order."""
    log: dict[tuple[str, str], LogEntry] = {}
    state: AlertState | None = None
    sent = []
    for day, value in enumerate(values):
        now = NOW + day * DAY
        evaluation = rate(value, day)
        state = step(state, evaluation, damping, now)
        key = AlertKey("win_rate", LYON, Q4.key)
        states = {} if state is None else {key: state}
        planned = plan(
            [evaluation], log, [], route, repeat_interval=7 * DAY, now=now, states=states,
            damping=damping,
        )  # fmt: skip
        for p in planned.get("C-TEAM", []):
            sent.append(p.reason)
            firing = None if p.reason is NotifyReason.RESOLVED else evaluation.status
            log[(str(key), "C-TEAM")] = LogEntry(firing, now, gap=evaluation.gap)
    return sent


@pytest.mark.parametrize(
    "values",
    [
        # around the threshold day by day, never clear three days running
        ["0.28", "0.29", "0.28", "0.28", "0.29", "0.29", "0.28",
         "0.29", "0.29", "0.29", "0.28", "0.29", "0.28", "0.29"],
        # two bad days, one clearly good one, over and over: it flaps, then is unstable
        ["0.28", "0.28", "0.30", "0.28", "0.28", "0.30", "0.28",
         "0.28", "0.30", "0.28", "0.28", "0.30", "0.28", "0.28"],
    ],
)  # fmt: skip
def test_a_fortnight_around_the_threshold_fires_once_and_resolves_at_most_once(values):
    sent = fortnight(values, DAMPED)
    assert sent.count(NotifyReason.FIRST) == 1
    assert sent.count(NotifyReason.RESOLVED) <= 1
    assert set(sent) <= {NotifyReason.FIRST, NotifyReason.RESOLVED}
    # without damping the same days would page on every flip
    raw = fortnight(values, Damping(flap_limit=100))
    assert raw.count(NotifyReason.FIRST) >= 4


def test_alert_key_round_trips_through_text():
    key = AlertKey("win_rate", Scope(Level.TEAM, "Paris Grands Comptes"), "2026-Q4")
    assert str(key) == "win_rate|team|Paris Grands Comptes|2026-Q4"
    assert AlertKey.parse(str(key)) == key
    assert AlertKey.parse(str(AlertKey("cpa", Scope.company(), "2026-11"))).scope == Scope.company()


def test_stale_data_inhibits_every_alert():
    assert inhibit([Alert(ev(AT_RISK)), Alert(ev(MISSED, "cpa"))], stale=True) == []


def test_missed_inhibits_at_risk_of_the_same_identity_only():
    missed, at_risk, other = Alert(ev(MISSED)), Alert(ev(AT_RISK)), Alert(ev(AT_RISK, "cpa"))
    assert inhibit([at_risk, missed, other]) == [missed, other]


@pytest.mark.parametrize(
    ("matcher", "matches"),
    [
        ({}, True),  # an empty matcher silences everything
        ({"kpi": "revenue"}, True),
        ({"kpi": "cpa"}, False),
        ({"level": Level.TEAM, "name": "Lyon"}, True),
        ({"level": Level.TEAM, "name": "DACH"}, False),
        ({"period_key": "2026-Q3"}, False),
    ],
)
def test_silence_matchers(matcher, matches):
    s = Silence(ends_at=NOW + DAY, **matcher)
    kept, muted = silence([Alert(ev(AT_RISK))], [s], NOW)
    assert (muted != []) is matches and (kept != []) is not matches


def test_silence_ends_at_its_end_and_starts_at_its_start():
    alert = Alert(ev(AT_RISK))
    assert silence([alert], [Silence(ends_at=NOW)], NOW) == ([alert], [])
    later = Silence(ends_at=NOW + 2 * DAY, starts_at=NOW + DAY)
    assert silence([alert], [later], NOW) == ([alert], [])


def test_group_by_route_keeps_order_and_drops_unrouted():
    groups = group_by_route(
        [1, 2, 3, 4, 5], lambda n: () if n == 5 else ("odd" * (n % 2) or "even",)
    )
    assert groups == {"odd": [1, 3], "even": [2, 4]}


def test_group_by_route_sends_an_item_to_each_of_its_routes_once():
    groups = group_by_route([1, 2], lambda n: ("C1", "teams:lyon", "C1") if n == 1 else ("C1",))
    assert groups == {"C1": [1, 2], "teams:lyon": [1]}


def route(scope: Scope) -> tuple[str, ...]:
    return ({Level.TEAM: "C-TEAM", Level.REP: "U-REP"}.get(scope.level, "C-LEAD"),)


def test_plan_runs_the_whole_pipeline():
    evaluations = [
        ev(AT_RISK),  # new → FIRST on the team channel
        ev(MISSED, "cpa"),  # silenced
        ev(OK, "win_rate"),  # was firing → RESOLVED
        ev(AT_RISK, scope=ALICE),  # notified an hour ago → nothing
        ev(AT_RISK, scope=Scope.company()),  # new → leadership
    ]
    log = {
        (str(AlertKey("win_rate", LYON, "2026-Q4")), "C-TEAM"): entry(AT_RISK),
        (str(AlertKey("revenue", ALICE, "2026-Q4")), "U-REP"): entry(AT_RISK),
    }
    silences = [Silence(ends_at=NOW + DAY, kpi="cpa")]
    out = plan(evaluations, log, silences, route, repeat_interval=DAY, now=NOW)
    assert {r: [(p.key.kpi, p.reason) for p in ps] for r, ps in out.items()} == {
        "C-TEAM": [("revenue", NotifyReason.FIRST), ("win_rate", NotifyReason.RESOLVED)],
        "C-LEAD": [("revenue", NotifyReason.FIRST)],
    }


def test_plan_with_stale_data_says_nothing_not_even_resolutions():
    log = {(str(AlertKey("win_rate", LYON, "2026-Q4")), "C-TEAM"): entry(AT_RISK)}
    evaluations = [ev(AT_RISK), ev(OK, "win_rate")]
    assert plan(evaluations, log, [], route, repeat_interval=DAY, now=NOW, stale=True) == {}


PARIS = ZoneInfo("Europe/Paris")
OFFICE = Hours(PARIS, frozenset(range(5)), time(20), time(8))


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # Thursday 10:00: open.
        (datetime(2026, 11, 26, 10, 0), datetime(2026, 11, 26, 10, 0)),
        # Thursday 21:00: quiet until Friday 08:00.
        (datetime(2026, 11, 26, 21, 0), datetime(2026, 11, 27, 8, 0)),
        # Friday 06:30: quiet until 08:00 the same day.
        (datetime(2026, 11, 27, 6, 30), datetime(2026, 11, 27, 8, 0)),
        # Friday 22:00: the weekend follows, so Monday 08:00.
        (datetime(2026, 11, 27, 22, 0), datetime(2026, 11, 30, 8, 0)),
        # Sunday noon: Monday 08:00.
        (datetime(2026, 11, 29, 12, 0), datetime(2026, 11, 30, 8, 0)),
        # Exactly 08:00 is open, exactly 20:00 is quiet.
        (datetime(2026, 11, 26, 8, 0), datetime(2026, 11, 26, 8, 0)),
        (datetime(2026, 11, 26, 20, 0), datetime(2026, 11, 27, 8, 0)),
    ],
)
def test_next_allowed(local, expected):
    assert next_allowed(local.replace(tzinfo=PARIS), OFFICE) == expected.replace(tzinfo=PARIS)


def test_next_allowed_without_quiet_hours_waits_for_a_business_day_at_midnight():
    hours = Hours(PARIS, frozenset(range(5)))
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=PARIS)
    assert next_allowed(saturday, hours) == datetime(2026, 11, 30, 0, 0, tzinfo=PARIS)
