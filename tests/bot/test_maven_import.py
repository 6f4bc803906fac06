"""The real Maven CRM export, imported with ``examples/maven/kpibot.yaml`` alone, gives the same
numbers as a plain ``csv`` script over the files: revenue by regional office for 2017-Q3 and
win rate by manager for 2017 and 2017-Q3.

The expected numbers are also written out as literals (worked out once with pandas over the
files, then checked again by the independent computation below), so a change in the dataset or
in the import shows up as a difference in the numbers themselves."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.importers.csv_import import ImportReport, import_csv
from bot.settings import load_settings
from bot.store.database import make_engine, migrate, session_factory, transaction
from bot.store.facts_loader import load_facts
from metrics.answers import answer
from metrics.evaluation import Policy
from metrics.facts import Facts
from metrics.kpis import KPIS, Context
from metrics.periods import Grain, Period, parse_period, period_containing
from metrics.query import Query
from metrics.scopes import Level, Scope
from metrics.targets import TargetBook

REPO = Path(__file__).resolve().parents[2]
MAVEN = REPO.parent / "shared" / "datasets" / "maven-crm"
CONFIG = REPO / "examples" / "maven" / "kpibot.yaml"

pytestmark = pytest.mark.skipif(
    not (MAVEN / "sales_pipeline.csv").is_file(),
    reason=f"the Maven CRM dataset is not at {MAVEN} (shared/ beside the repository)",
)

AS_OF = date(2018, 1, 15)  # after the last close date in the export (2017-12-31)
Q3_2017 = parse_period("2017-Q3", AS_OF)
YEAR_2017 = period_containing(Grain.YEAR, date(2017, 6, 30))

REVENUE_2017_Q3 = {"Central": 1_053_202, "East": 919_767, "West": 1_009_286}
# manager (team): (deals won, deals won or lost) with a close date in the period
WINS_2017_Q3 = {
    "Cara Losch": (147, 221),
    "Celia Rouche": (174, 289),
    "Dustin Brinkmann": (206, 356),
    "Melvin Marxen": (288, 449),
    "Rocco Neubert": (220, 364),
    "Summer Sewald": (222, 368),
}
WINS_2017 = {
    "Cara Losch": (480, 745),
    "Celia Rouche": (610, 962),
    "Dustin Brinkmann": (747, 1186),
    "Melvin Marxen": (882, 1418),
    "Rocco Neubert": (691, 1113),
    "Summer Sewald": (828, 1287),
}
STAGES = {"Won": 4238, "Lost": 2473, "Engaging": 1589, "Prospecting": 500}


def read_csv(name: str) -> list[dict[str, str]]:
    with (MAVEN / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def deals_with_teams() -> list[dict[str, str]]:
    """sales_pipeline.csv joined with sales_teams.csv on the agent."""
    teams = {row["sales_agent"]: row for row in read_csv("sales_teams.csv")}
    return [{**deal, **teams[deal["sales_agent"]]} for deal in read_csv("sales_pipeline.csv")]


def closed_in(deal: dict[str, str], period: Period) -> bool:
    return bool(deal["close_date"]) and period.contains(date.fromisoformat(deal["close_date"]))


def independent_revenue(period: Period) -> dict[str, int]:
    revenue: Counter[str] = Counter()
    for deal in deals_with_teams():
        if deal["deal_stage"] == "Won" and closed_in(deal, period):
            revenue[deal["regional_office"]] += int(deal["close_value"])
    return dict(revenue)


def independent_wins(period: Period) -> dict[str, tuple[int, int]]:
    won: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    for deal in deals_with_teams():
        if deal["deal_stage"] in ("Won", "Lost") and closed_in(deal, period):
            closed[deal["manager"]] += 1
            won[deal["manager"]] += deal["deal_stage"] == "Won"
    return {manager: (won[manager], closed[manager]) for manager in closed}


@pytest.fixture(scope="module", params=["bound", "staged"])
def imported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, ImportReport]]:
    """The export imported with its cells bound, as at its size, and once more with every
    table written through staging databases (``bot.store.sqlite_staging``), the path of an
    export of 50,000 rows or more: every number below holds for both."""
    settings = load_settings(CONFIG, {})
    source = settings.config.imports.csv["maven"]
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('maven') / 'maven.db'}")
    migrate(engine)
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "staged":
            patch.setattr("bot.store.upsert._BULK", 1)
        with transaction(session_factory(engine)) as session:
            report = import_csv(
                session,
                "maven",
                source,
                CONFIG.parent / source.base_dir,
                settings.organisation.currency,
            )
    yield engine, report
    engine.dispose()


@pytest.fixture(scope="module")
def facts(imported: tuple[Engine, ImportReport]) -> Facts:
    return load_facts(imported[0], "USD", {}, default_probability=0.5)


def test_every_row_of_the_export_is_imported(imported: tuple[Engine, ImportReport]) -> None:
    _, report = imported

    assert report.problems == ()
    assert [(t.table, t.read, t.imported, t.distinct, t.created) for t in report.tables] == [
        ("teams", 35, 35, 6, ()),
        ("reps", 35, 35, 35, ()),
        ("accounts", 85, 85, 85, ()),
        ("opportunities", 8800, 8800, 8800, ()),
    ]


def test_deals_keep_their_status_and_open_deals_may_lack_an_account(facts: Facts) -> None:
    opps = facts.opportunities
    by_stage = Counter(deal["deal_stage"] for deal in read_csv("sales_pipeline.csv"))
    open_ids = {
        deal["opportunity_id"]
        for deal in read_csv("sales_pipeline.csv")
        if deal["deal_stage"] in ("Engaging", "Prospecting")
    }

    assert by_stage == STAGES
    assert len(opps) == 8800
    assert opps["status"].value_counts().to_dict() == {"won": 4238, "lost": 2473, "open": 2089}
    assert len(open_ids) == 2089
    no_account = opps[opps["account"].isna()]
    assert len(no_account) == 1425
    assert set(no_account["status"]) == {"open"}
    # Open deals have no close date; Prospecting ones have no engage date either.
    assert opps.loc[opps["status"] == "open", "close"].isna().all()
    assert int(opps["created"].isna().sum()) == 500


def test_revenue_by_regional_office_2017_q3(facts: Facts) -> None:
    assert independent_revenue(Q3_2017) == REVENUE_2017_Q3
    ctx = Context(TargetBook([]).value_for)
    revenue = KPIS["revenue"]

    for office, expected in REVENUE_2017_Q3.items():
        value = revenue.compute(facts, Scope(Level.REGION, office), Q3_2017, AS_OF, ctx)
        assert value.value == Decimal(expected), office

    query = Query("revenue", Scope.company(), Q3_2017, Level.REGION)
    found = answer(query, AS_OF, facts, TargetBook([]), Policy())
    assert found.value.value == Decimal(2_982_255)
    assert {row.scope.name: row.value.value for row in found.breakdown} == {
        office: Decimal(amount) for office, amount in REVENUE_2017_Q3.items()
    }


@pytest.mark.parametrize(
    ("period", "expected"), [(Q3_2017, WINS_2017_Q3), (YEAR_2017, WINS_2017)], ids=["Q3", "year"]
)
def test_win_rate_by_manager(
    facts: Facts, period: Period, expected: dict[str, tuple[int, int]]
) -> None:
    assert independent_wins(period) == expected

    query = Query("win_rate", Scope.company(), period, Level.TEAM)
    found = answer(query, AS_OF, facts, TargetBook([]), Policy())

    rates = {row.scope.name: (row.value.value, row.value.sample) for row in found.breakdown}
    assert rates == {
        manager: (Decimal(repr(won / closed)), closed)
        for manager, (won, closed) in expected.items()
    }
    won = sum(w for w, _ in expected.values())
    closed = sum(c for _, c in expected.values())
    assert found.value.value == Decimal(repr(won / closed))
