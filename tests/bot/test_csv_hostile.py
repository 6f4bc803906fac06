"""CSV exports as messy CRMs write them, on SQLite and PostgreSQL: a bad row is skipped and
reported with its file, real line and reason; the good rows around it always land (issue 10)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select

from bot.importers.csv_import import ImportReport, RowProblem, import_csv
from bot.settings import CsvSource
from bot.store.database import session_factory, transaction
from bot.store.facts_loader import load_facts
from bot.store.models import Opportunity

DEALS = CsvSource.model_validate(
    {
        "reps": {"file": "reps.csv", "columns": {"name": "name"}},
        "opportunities": {
            "file": "deals.csv",
            "columns": {"id": "id", "owner": "owner", "stage": "stage", "close_date": "closed",
                        "amount": "amount"},
            "stages": {"Won": "won", "Open": "open"},
        },
    }
)  # fmt: skip


def run_import(engine: Engine, source: CsvSource, folder: Path) -> ImportReport:
    with transaction(session_factory(engine)) as session:
        return import_csv(session, "crm", source, folder, "EUR")


def deals(engine: Engine) -> dict[str, tuple[date | None, Decimal | None]]:
    with session_factory(engine)() as session:
        found = session.execute(
            select(Opportunity.source_id, Opportunity.close_date, Opportunity.amount)
        )
        return {key: (closed, amount) for key, closed, amount in found}


def test_dates_and_amounts_beyond_what_the_engine_holds_are_refused(
    store: Engine, tmp_path: Path
) -> None:
    (tmp_path / "reps.csv").write_text("name\nAna\n")
    (tmp_path / "deals.csv").write_text(
        "id,owner,stage,closed,amount\n"
        "D1,Ana,Won,2026-03-02,1200\n"
        "D2,Ana,Won,0202-11-02,1200\n"
        "D3,Ana,Won,1600-06-01,1200\n"
        "D4,Ana,Won,2300-01-01,1200\n"
        "D5,Ana,Won,2026-03-03,100000000000000000\n"
        "D6,Ana,Won,2026-03-04,9999999999999.99\n"
        "D7,Ana,Won,2026-03-05,-10000000000000\n"
        "D8,Ana,Won,2199-12-31,5\n"
    )

    report = run_import(store, DEALS, tmp_path)

    held = "outside the dates kpibot holds (1900-01-01 to 2199-12-31)"
    beyond = "beyond the largest amount kpibot holds exactly (below 10 000 000 000 000)"
    assert report.problems == (
        RowProblem("deals.csv", 3, f"closed: 0202-11-02 is {held}"),
        RowProblem("deals.csv", 4, f"closed: 1600-06-01 is {held}"),
        RowProblem("deals.csv", 5, f"closed: 2300-01-01 is {held}"),
        RowProblem("deals.csv", 6, f"amount: 100000000000000000 is {beyond}"),
        RowProblem("deals.csv", 8, f"amount: -10000000000000 is {beyond}"),
    )
    assert deals(store) == {
        "D1": (date(2026, 3, 2), Decimal("1200.00")),
        "D6": (date(2026, 3, 4), Decimal("9999999999999.99")),
        "D8": (date(2199, 12, 31), Decimal("5.00")),
    }
    # What broke every answer before: the facts load, and the largest amount is exact.
    facts = load_facts(store, "EUR", {}, 0.5)
    assert sorted(facts.opportunities["amount"]) == [500, 120_000, 999_999_999_999_999]
