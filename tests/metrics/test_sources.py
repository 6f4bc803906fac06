"""KPIs by lead source against numbers computed by hand from ``factories.company()``: Beta came
from a Salon lead, X and Y from Web leads, Acme and Z from no lead; spend 600 Salon (team A),
900 Web (company-wide)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from metrics.answers import answer
from metrics.evaluation import Policy
from metrics.facts import Facts
from metrics.kpis import KPIS, Context, Reason
from metrics.query import Query
from metrics.scopes import Level, Scope
from metrics.sources import by_channel
from metrics.targets import TargetBook
from tests.metrics.factories import Q3, company

END_Q3 = date(2026, 9, 30)
CTX = Context(target=lambda kpi, scope, period: None)
COMPANY = Scope.company()
TEAM_A = Scope(Level.TEAM, "A")


def rows(
    kpi: str, facts: Facts, scope: Scope = COMPANY
) -> list[tuple[str | None, Decimal | None, int | None]]:
    return [
        (row.channel, row.value.value, row.value.sample)
        for row in by_channel(KPIS[kpi], facts, scope, Q3, END_Q3, CTX)
    ]


# kpi, scope, (channel, value, sample) per row
CASES = [
    # Salon: 600 ÷ Beta (first won 31 Aug); Web: 900 ÷ X (30 Sept; Y has won nothing). No spend
    # lacks a channel: no unattributed row.
    ("cpa", COMPANY, [("Salon", Decimal("600"), 1), ("Web", Decimal("900"), 1)]),
    # Team A: its own Salon spend for Beta (bob's); its Web spend is none, X is carol's
    ("cpa", TEAM_A, [("Salon", Decimal("600"), 1), ("Web", None, 0)]),
    # Cohort 1 Jul – 31 Aug: Salon l1 (converted), l2 (not); Web l3 (converted 5 Oct, after)
    ("conversion", COMPANY, [("Salon", Decimal("0.5"), 2), ("Web", Decimal(0), 1)]),
    # Created in Q3: o3 (Beta, Salon) 3000, o5 (Y, Web) 4000, o6 (Z, no lead) 10 000
    (
        "new_pipeline",
        COMPANY,
        [("Salon", Decimal("3000"), 1), ("Web", Decimal("4000"), 1), (None, Decimal("10000"), 1)],
    ),
]


@pytest.mark.parametrize(("kpi", "scope", "expected"), CASES)
def test_by_channel(
    kpi: str, scope: Scope, expected: list[tuple[str | None, Decimal | None, int]]
) -> None:
    assert rows(kpi, company(), scope) == expected


def test_new_pipeline_rows_add_up_to_the_whole() -> None:
    whole = KPIS["new_pipeline"].compute(company(), COMPANY, Q3, END_Q3, CTX)
    parts = rows("new_pipeline", company())
    assert sum(value for _, value, _ in parts if value is not None) == whole.value
    assert sum(sample for _, _, sample in parts if sample is not None) == whole.sample


def test_unattributed_spend_and_leads_are_a_row_of_their_own() -> None:
    facts = company()
    # 300 of spend with no channel, and a lead with none that converted within the cohort
    facts.spend.loc[len(facts.spend)] = [pd.Timestamp("2026-09-10"), None, None, 30_000, None]
    facts.leads.loc[len(facts.leads)] = [
        "l5", "alice", "A", "North", pd.Timestamp("2026-07-03"), pd.Timestamp("2026-07-04"),
        None, "Acme",
    ]  # fmt: skip
    cpa = {channel: (value, sample) for channel, value, sample in rows("cpa", facts)}
    # 300 spent with no channel, and no new customer from no source in Q3: shown, no value
    assert cpa[None] == (None, 0)
    conversion = {channel: (value, sample) for channel, value, sample in rows("conversion", facts)}
    assert conversion[None] == (Decimal(1), 1)


def test_no_customer_without_a_source_and_no_spend_without_one_shows_no_row() -> None:
    assert [channel for channel, _, _ in rows("cpa", company())] == ["Salon", "Web"]


def test_cpa_of_a_channel_keeps_the_attribution_split() -> None:
    (web,) = [
        r
        for r in by_channel(KPIS["cpa"], company(), COMPANY, Q3, END_Q3, CTX)
        if r.channel == "Web"
    ]
    # the Web spend is company-wide: all of its CPA is unattributed to a team or region
    assert [(level.value, part) for level, part in web.value.spend_split] == [
        ("company", Decimal("900"))
    ]
    assert web.value.reason is None
    web_a = by_channel(KPIS["cpa"], company(), TEAM_A, Q3, END_Q3, CTX)[1]
    assert (web_a.channel, web_a.value.reason) == ("Web", Reason.NO_SPEND)


def test_a_customer_from_no_lead_source_is_counted_in_the_unattributed_row() -> None:
    facts = company()
    facts.leads.loc[facts.leads["id"] == "l1", "account"] = None  # Beta now came from no lead
    # Salon: 600 spent, no new customer; Web: X as before; no source: Beta, with no spend
    assert rows("cpa", facts) == [
        ("Salon", None, 0),
        ("Web", Decimal("900"), 1),
        (None, None, 1),
    ]


def test_asked_by_source_where_nothing_names_one_gives_no_rows_and_no_scope_breakdown() -> None:
    facts = company()
    facts.leads["channel"] = None
    facts.spend["channel"] = None
    query = Query("conversion", COMPANY, Q3, Level.TEAM, by_channel=True)
    found = answer(query, END_Q3, facts, TargetBook([]), Policy())
    # the leads all lack a source: one row, "no source", with the whole cohort
    assert [(r.channel, r.value.sample) for r in found.sources or ()] == [(None, 3)]
    assert found.breakdown == ()
    facts = company()
    facts.leads = facts.leads.iloc[0:0]
    facts.spend = facts.spend.iloc[0:0]
    found = answer(query, END_Q3, facts, TargetBook([]), Policy())
    assert found.sources == ()


def test_not_asked_by_source_has_no_sources() -> None:
    query = Query("conversion", COMPANY, Q3, Level.TEAM)
    assert answer(query, END_Q3, company(), TargetBook([]), Policy()).sources is None
