"""Every KPI against numbers computed by hand from ``factories.company()``."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from metrics.evaluation import Policy, Status, evaluate
from metrics.facts import Facts
from metrics.key_accounts import KeyAccounts
from metrics.kpis import KPIS, Context, Reason
from metrics.periods import Grain, Period
from metrics.scopes import Level, Scope
from metrics.targets import Target, TargetBook
from tests.metrics.factories import Q1_2025, Q3, Q4, company, frame

COMPANY = Scope.company()
TEAM_A = Scope(Level.TEAM, "A")
TEAM_B = Scope(Level.TEAM, "B")
NORTH = Scope(Level.REGION, "North")
ALICE = Scope(Level.REP, "alice")
CAROL = Scope(Level.REP, "carol")
END_Q3 = date(2026, 9, 30)
MID_SEPT = date(2026, 9, 15)


def targets(kpi: str, scope: Scope, period: Period) -> Decimal | None:
    """Revenue target of 10,000 for the company in Q3, nothing else."""
    if (kpi, scope, period) == ("revenue", COMPANY, Q3):
        return Decimal(10_000)
    return None


# Key accounts: the "Grands comptes" segment (Acme, Z) and X by name; case does not matter.
KEY = KeyAccounts(segments=frozenset({"grands COMPTES"}), accounts=frozenset({"x "}))
CTX = Context(target=targets, key_accounts=KEY)

# kpi, scope, period, as_of, expected value (None = no data), expected sample
CASES = [
    # o1 1000 + o3 3000 + o4 2000 won in Q3
    ("revenue", COMPANY, Q3, END_Q3, Decimal("6000.00"), 3),
    ("revenue", TEAM_A, Q3, END_Q3, Decimal("4000.00"), 2),
    ("revenue", NORTH, Q3, END_Q3, Decimal("4000.00"), 2),
    ("revenue", ALICE, Q3, END_Q3, Decimal("1000.00"), 1),
    # o4 closes on 30 Sept: not yet booked on the 15th
    ("revenue", COMPANY, Q3, MID_SEPT, Decimal("4000.00"), 2),
    # empty period: revenue is a sum, so 0 with a sample of 0
    ("revenue", COMPANY, Q1_2025, END_Q3, Decimal("0.00"), 0),
    # not started yet at as_of: no data
    ("revenue", COMPANY, Q4, END_Q3, None, None),
    # o1, o3, o4 won, o2 lost
    ("win_rate", COMPANY, Q3, END_Q3, Decimal(3) / 4, 4),
    ("win_rate", TEAM_A, Q3, END_Q3, Decimal(2) / 3, 3),
    # a single closed deal
    ("win_rate", CAROL, Q3, END_Q3, Decimal(1), 1),
    # empty denominator: no data, not 0 %
    ("win_rate", COMPANY, Q1_2025, END_Q3, None, 0),
    # open at 30 Sept and closing in Q3: o5 only (o6 closes in October)
    ("pipeline", COMPANY, Q3, END_Q3, Decimal("4000.00"), 1),
    ("pipeline", COMPANY, Q4, END_Q3, Decimal("10000.00"), 1),
    # on the 15th o4 (won on the 30th) was still open
    ("pipeline", COMPANY, Q3, MID_SEPT, Decimal("6000.00"), 2),
    # created in Q3: o3 3000 + o5 4000 + o6 10000
    ("new_pipeline", COMPANY, Q3, END_Q3, Decimal("17000.00"), 3),
    # 6000 of pipeline for 10000 − 4000 still to book
    ("coverage", COMPANY, Q3, MID_SEPT, Decimal(1), 2),
    # the quarter is over: nothing left to cover (said as "ended", not 0×)
    ("coverage", COMPANY, Q3, date(2026, 10, 1), None, None),
    # no revenue target for team A
    ("coverage", TEAM_A, Q3, MID_SEPT, None, None),
    ("avg_deal", COMPANY, Q3, END_Q3, Decimal("2000.00"), 3),
    ("avg_deal", COMPANY, Q1_2025, END_Q3, None, 0),
    # 25 + 61 + 152 days
    ("sales_cycle", COMPANY, Q3, END_Q3, Decimal(238) / 3, 3),
    ("attainment", COMPANY, Q3, END_Q3, Decimal("0.6"), 3),
    ("attainment", TEAM_A, Q3, END_Q3, None, None),
    # l1, l2, l3 created in Q3 and older than 30 days on 30 Sept; only l1 converted by then
    ("conversion", COMPANY, Q3, END_Q3, Decimal(1) / 3, 3),
    # 15 Aug: only leads created by 16 July are 30 days old (l1, l2); l1 converted
    ("conversion", COMPANY, Q3, date(2026, 8, 15), Decimal(1) / 2, 2),
    # 20 July: no Q3 lead is 30 days old yet — too early, not 0 %
    ("conversion", COMPANY, Q3, date(2026, 7, 20), None, 0),
    # l3 converted on 5 Oct
    ("conversion", COMPANY, Q3, date(2026, 10, 31), Decimal(2) / 3, 3),
    # carol started 15 July, first won o4 on 30 Sept: 77 days; alice and bob have no start date
    ("ramp_up", COMPANY, Q3, END_Q3, Decimal(77), 1),
    ("ramp_up", TEAM_B, Q3, END_Q3, Decimal(77), 1),
    ("ramp_up", TEAM_A, Q3, END_Q3, None, 0),
    # on 15 Sept carol has not won yet
    ("ramp_up", COMPANY, Q3, MID_SEPT, None, 0),
    ("conversion", TEAM_B, Q3, END_Q3, Decimal(0), 1),
    # 1500 of spend, two new customers (Beta, X); Acme first won in Q2
    ("cpa", COMPANY, Q3, END_Q3, Decimal("750.00"), 2),
    ("cpa", TEAM_A, Q3, END_Q3, Decimal("600.00"), 1),
    # no spend of team B: no CPA, though carol brought a new customer (X)
    ("cpa", TEAM_B, Q3, END_Q3, None, 1),
    ("csat", COMPANY, Q3, END_Q3, Decimal(4), 3),
    # promoters 10, 9; detractors 3, 0; passive 7: (2 − 2) / 5
    ("nps", COMPANY, Q3, END_Q3, Decimal(0), 5),
    ("nps", TEAM_A, Q3, END_Q3, Decimal("100") * 2 / 3, 3),
    ("csat", COMPANY, Q4, date(2026, 12, 31), None, 0),
    # active on 1 July: alice, bob; on 30 Sept: alice, carol; bob left in August
    ("turnover", COMPANY, Q3, END_Q3, Decimal("0.5"), 3),
    # a rep who left is not "100 % turnover": no per-rep figure
    ("turnover", ALICE, Q3, END_Q3, None, None),
    # 4000 booked + o4 2000 × 1.0 + o5 4000 × 0.5
    ("forecast", COMPANY, Q3, MID_SEPT, Decimal("8000.00"), 2),
    # after the period: the forecast is the revenue
    ("forecast", COMPANY, Q3, date(2026, 10, 1), Decimal("6000.00"), 3),
    # No history in these facts: nothing slipped (tests/metrics/test_slipped.py has pushes).
    ("slipped", COMPANY, Q4, date(2026, 11, 26), Decimal("0.00"), 0),
    # o5 (open, closing 30 Sept) is overdue on 1 Oct; o6 (closing 15 Oct) not yet.
    ("overdue", COMPANY, Q4, date(2026, 10, 1), Decimal("4000.00"), 1),
    # Key accounts Acme, X, Z: o1 1000 (Acme) + o4 2000 (X); o3 (Beta) is not one
    ("key_revenue", COMPANY, Q3, END_Q3, Decimal("3000.00"), 2),
    ("key_revenue", TEAM_A, Q3, END_Q3, Decimal("1000.00"), 1),
    ("key_revenue", TEAM_B, Q3, MID_SEPT, Decimal("0.00"), 0),
    # on 15 Sept o4 (X) is open; o5 (Y) is not a key account
    ("key_pipeline", COMPANY, Q3, MID_SEPT, Decimal("2000.00"), 1),
    ("key_pipeline", COMPANY, Q4, END_Q3, Decimal("10000.00"), 1),
    # o1 won, o2 lost (Acme), o4 won (X)
    ("key_win_rate", COMPANY, Q3, END_Q3, Decimal(2) / 3, 3),
    ("key_win_rate", TEAM_A, Q3, END_Q3, Decimal(1) / 2, 2),
    ("key_win_rate", COMPANY, Q1_2025, END_Q3, None, 0),
    # 3000 of 6000 won in Q3, over the 3 deals won
    ("key_share", COMPANY, Q3, END_Q3, Decimal("0.5"), 3),
    # team A: 1000 of 4000
    ("key_share", TEAM_A, Q3, END_Q3, Decimal("0.25"), 2),
    # nothing won: no share, not 0 %
    ("key_share", COMPANY, Q1_2025, END_Q3, None, 0),
]


@pytest.mark.parametrize(
    ("kpi", "scope", "period", "as_of", "expected", "sample"),
    CASES,
    ids=[f"{c[0]}-{c[1].name or 'company'}-{c[2].key}-{c[3]}" for c in CASES],
)
def test_kpi_values(
    kpi: str,
    scope: Scope,
    period: Period,
    as_of: date,
    expected: Decimal | None,
    sample: int | None,
) -> None:
    value = KPIS[kpi].compute(company(), scope, period, as_of, CTX)
    if expected is None:
        assert value.value is None
        assert value.reason
    else:
        assert value.value is not None
        assert value.value.quantize(Decimal("0.000001")) == expected.quantize(Decimal("0.000001"))
    assert value.sample == sample


def test_every_kpi_of_the_design_is_defined_and_tested() -> None:
    design = {
        "revenue", "conversion", "win_rate", "pipeline", "new_pipeline", "coverage", "avg_deal",
        "sales_cycle", "attainment", "cpa", "csat", "nps", "turnover", "forecast",
        "slipped", "overdue",  # from the pipeline history (issue 12)
        "ramp_up",  # what a CSO steers besides (issue 13)
        "key_revenue", "key_pipeline", "key_win_rate", "key_share",
    }  # fmt: skip
    assert set(KPIS) == design
    assert {c[0] for c in CASES} == design


def test_french_aliases_of_the_design() -> None:
    for kpi, alias in [
        ("revenue", "ca"), ("revenue", "chiffre"), ("conversion", "taux"),
        ("win_rate", "taux-de-gain"), ("pipeline", "pipe"), ("coverage", "couverture"),
        ("avg_deal", "panier"), ("sales_cycle", "cycle"), ("attainment", "atteinte"),
        ("cpa", "cac"), ("cpa", "cout"), ("csat", "satisfaction"), ("turnover", "attrition"),
        ("forecast", "prevision"), ("key_revenue", "ca grands comptes"),
        ("key_pipeline", "pipeline grands comptes"),
        ("key_win_rate", "taux de gain grands comptes"), ("key_share", "part des grands comptes"),
    ]:  # fmt: skip
        assert alias in KPIS[kpi].aliases, (kpi, alias)


@pytest.mark.parametrize("kpi", ["key_revenue", "key_pipeline", "key_win_rate", "key_share"])
def test_key_account_kpis_say_when_no_key_account_is_configured(kpi: str) -> None:
    value = KPIS[kpi].compute(company(), COMPANY, Q3, END_Q3, Context(target=targets))
    assert (value.value, value.reason) == (None, Reason.NO_KEY_ACCOUNTS)


def test_key_accounts_are_found_by_segment_and_by_name() -> None:
    assert sorted(KEY.ids(company())) == ["Acme", "X", "Z"]
    assert sorted(KeyAccounts(accounts=frozenset({"beta"})).ids(company())) == ["Beta"]


def test_cpa_is_not_computed_per_rep() -> None:
    # spend is booked per team or region: a rep's CPA is "no data", not a crash
    value = KPIS["cpa"].compute(company(), ALICE, Q3, END_Q3, CTX)
    assert value.value is None and value.reason


@pytest.mark.parametrize(
    ("as_of", "cohort_end"),
    [
        (date(2026, 8, 15), date(2026, 7, 16)),  # leads created 1–16 July are 30 days old
        (date(2026, 10, 30), None),  # every Q3 lead is mature: the whole quarter
    ],
)
def test_conversion_says_which_cohort_it_measured(as_of: date, cohort_end: date | None) -> None:
    value = KPIS["conversion"].compute(company(), COMPANY, Q3, as_of, CTX)
    got = None if value.cohort is None else value.cohort.end
    assert got == cohort_end


def test_conversion_window_comes_from_the_context() -> None:
    # with 10 days to convert, on 15 Aug leads created to 5 Aug count: l1, l2, l3 (1 Aug)
    value = KPIS["conversion"].compute(
        company(), COMPANY, Q3, date(2026, 8, 15), Context(targets, 10)
    )
    assert (value.value, value.sample) == (Decimal(repr(1 / 3)), 3)


def test_too_early_and_ended_say_so() -> None:
    early = KPIS["conversion"].compute(company(), COMPANY, Q3, date(2026, 7, 20), CTX)
    assert early.reason is Reason.TOO_EARLY
    ended = KPIS["coverage"].compute(company(), COMPANY, Q3, date(2026, 10, 1), CTX)
    assert ended.reason is Reason.ENDED


def test_coverage_of_a_scope_at_target_says_target_reached() -> None:
    def low(kpi: str, scope: Scope, period: Period) -> Decimal | None:
        return Decimal(3_000) if kpi == "revenue" else None

    # 4000 booked by 15 Sept against 3000
    value = KPIS["coverage"].compute(company(), COMPANY, Q3, MID_SEPT, Context(low))
    assert value.value is None and value.reason is Reason.TARGET_REACHED


def with_spend(*rows: tuple[str, str | None, str | None, int]) -> Facts:
    """``company()`` with these spend rows (date, team, region, cents) instead of its own."""
    facts = company()
    facts.spend = frame(["date", "team", "region", "amount"], list(rows), "date")
    return facts


def spread_spend() -> Facts:
    """Spend booked at every level in Q3: team A 600 (North), team B 200 (South), region North
    300 and 900 booked to nobody; the new customers are Beta (team A) and X (team B)."""
    return with_spend(
        ("2026-07-15", "A", "North", 60_000),
        ("2026-08-10", "B", "South", 20_000),
        ("2026-09-01", None, "North", 30_000),
        ("2026-08-01", None, None, 90_000),
    )


T, R, C = Level.TEAM, Level.REGION, Level.COMPANY
# scope, CPA, its split by where the spend was booked (per new customer; adds up to the CPA)
CPA_CASES = [
    # 2000 ÷ 2 new customers: teams 800 ÷ 2, region North 300 ÷ 2, nobody 900 ÷ 2
    (COMPANY, Decimal(1000), ((T, Decimal(400)), (R, Decimal(150)), (C, Decimal(450)))),
    # team A: its own 600 ÷ Beta; the region's and nobody's spend are not its
    (TEAM_A, Decimal(600), ((T, Decimal(600)),)),
    (TEAM_B, Decimal(200), ((T, Decimal(200)),)),
    # region North: team A's 600 + its own 300 ÷ Beta
    (NORTH, Decimal(900), ((T, Decimal(600)), (R, Decimal(300)))),
    (Scope(Level.REGION, "South"), Decimal(200), ((T, Decimal(200)),)),
]


@pytest.mark.parametrize(("scope", "value", "split"), CPA_CASES)
def test_cpa_attribution(
    scope: Scope, value: Decimal, split: tuple[tuple[Level, Decimal], ...]
) -> None:
    got = KPIS["cpa"].compute(spread_spend(), scope, Q3, END_Q3, CTX)
    assert (got.value, got.spend_split, got.sample) == (value, split, 1 if scope.name else 2)
    assert sum(part for _, part in got.spend_split) == got.value


def test_cpa_without_new_customer_or_spend_says_which() -> None:
    q2 = Period(Grain.QUARTER, date(2026, 4, 1), date(2026, 6, 30))
    cpa = KPIS["cpa"].compute
    # Q1 2025: nothing spent
    assert cpa(spread_spend(), COMPANY, Q1_2025, END_Q3, CTX).reason is Reason.NO_SPEND
    # Q2 2026: 0.01 spent by team A, whose Acme first won on 10 April
    assert cpa(with_spend(("2026-05-01", "A", "North", 1)), TEAM_A, q2, END_Q3, CTX).value == (
        Decimal("0.01")
    )
    # team B spent but won no new customer in Q2
    facts = with_spend(("2026-05-01", "B", "South", 1))
    assert cpa(facts, TEAM_B, q2, END_Q3, CTX).reason is Reason.NO_NEW_CUSTOMER


def hired(alice_from: str) -> Facts:
    """``company()`` where alice started on ``alice_from`` (the data starts 1 March 2026)."""
    facts = company()
    facts.reps.loc[facts.reps["name"] == "alice", "active_from"] = pd.Timestamp(alice_from)
    return facts


# alice's start, her ramp-up counted with carol's in Q3 (days), how many new reps
RAMP_UP_CASES = [
    # started 1 June: her first win after that is o1 on 5 July (o7 in April was before): 34 days,
    # with carol's 77: 55.5
    ("2026-06-01", Decimal("55.5"), 2),
    # started before the data: her first win on record need not be her first, so she is left out
    ("2025-01-01", Decimal(77), 1),
]


@pytest.mark.parametrize(("alice_from", "days", "reps"), RAMP_UP_CASES)
def test_ramp_up_counts_reps_hired_once_the_data_began(
    alice_from: str, days: Decimal, reps: int
) -> None:
    got = KPIS["ramp_up"].compute(hired(alice_from), COMPANY, Q3, END_Q3, CTX)
    assert (got.value, got.sample) == (days, reps)


def test_monthly_cohort_uses_its_own_month() -> None:
    august = Period(Grain.MONTH, date(2026, 8, 1), date(2026, 8, 31))
    # 10 Sept: leads created 1–11 Aug are mature: l3 (1 Aug), not converted by then
    value = KPIS["conversion"].compute(company(), COMPANY, august, date(2026, 9, 10), CTX)
    assert (value.value, value.sample) == (Decimal(0), 1)
    assert value.cohort is not None and value.cohort.end == date(2026, 8, 11)


@pytest.mark.parametrize(
    ("kpi", "value"),
    [
        # o6 (10 000, open, due 15 Oct) is overdue on 20 Oct: still in the pipeline...
        ("pipeline", Decimal("10000.00")),
        # ...but not in the forecast (nothing booked, nothing else due): it has slipped
        ("forecast", Decimal("0.00")),
    ],
)
def test_overdue_deals_are_shown_in_pipeline_and_left_out_of_the_forecast(
    kpi: str, value: Decimal
) -> None:
    got = KPIS[kpi].compute(company(), COMPANY, Q4, date(2026, 10, 20), CTX)
    assert (got.value, got.overdue, got.overdue_deals) == (value, Decimal("10000.00"), 1)


def test_a_deal_due_today_is_not_overdue() -> None:
    got = KPIS["pipeline"].compute(company(), COMPANY, Q4, date(2026, 10, 15), CTX)
    assert (got.overdue, got.overdue_deals) == (None, 0)


def test_a_key_account_target_is_judged_on_the_key_accounts_figure() -> None:
    # Q3 ended: key accounts booked 3000 (o1 1000 + o4 2000) against 4000, missed; the whole
    # company's 6000 would have made it.
    book = TargetBook([Target("key_revenue", Grain.QUARTER, COMPANY, Decimal(4000))])
    policy = Policy(key_accounts=KEY)
    found = evaluate("key_revenue", COMPANY, Q3, date(2026, 10, 2), company(), book, policy)
    assert found is not None
    assert (found.actual.value, found.status) == (Decimal("3000.00"), Status.MISSED)
