"""CSV exports as messy CRMs write them, on SQLite and PostgreSQL: a bad row is skipped and
reported with its file, real line and reason; the good rows around it always land (issue 10)."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bot.importers.csv_import import ImportReport, RowProblem, import_csv
from bot.settings import CsvSource
from bot.store.database import session_factory, transaction
from bot.store.facts_loader import load_facts
from bot.store.models import Account, Opportunity

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


ACCOUNTS = CsvSource.model_validate(
    {"accounts": {"file": "accounts.csv", "columns": {"name": "account", "industry": "industry"}}}
)


def accounts(engine: Engine) -> dict[str, str | None]:
    with session_factory(engine)() as session:
        return {
            name: industry
            for name, industry in session.execute(select(Account.name, Account.industry))
        }


def counts(report: ImportReport) -> tuple[int, int, int]:
    [table] = report.tables
    return table.read, table.imported, table.skipped


def numbered(count: int) -> list[bytes]:
    return [f"Account {i:04d},Industry {i % 7}\n".encode() for i in range(1, count + 1)]


@pytest.mark.parametrize(("rows", "bad_line"), [(100, 51), (1065, 501)])
def test_an_undecodable_byte_skips_its_row_only(
    store: Engine, tmp_path: Path, rows: int, bad_line: int
) -> None:
    lines = numbered(rows)
    # Latin-1 "é" in a UTF-8 file: the header is line 1, so data row n is line n + 1.
    lines[bad_line - 2] = "Société Générale,Banking\n".encode("latin-1")
    (tmp_path / "accounts.csv").write_bytes(b"account,industry\n" + b"".join(lines))

    report = run_import(store, ACCOUNTS, tmp_path)

    assert report.problems == (
        RowProblem(
            "accounts.csv", bad_line,
            "account: byte 0xe9 is not utf-8-sig text (set the mapping's encoding to the "
            "file's, e.g. cp1252)",
        ),
    )  # fmt: skip
    assert counts(report) == (rows, rows - 1, 1)
    found = accounts(store)
    assert len(found) == rows - 1
    assert found["Account 0001"] == "Industry 1" and f"Account {rows:04d}" in found


def test_a_cell_over_the_field_size_limit_skips_its_row_only(store: Engine, tmp_path: Path) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    (tmp_path / "accounts.csv").write_text(
        f"account,industry\nAcme,Retail\nGlobex,{huge}\nInitech,Software\n"
    )

    report = run_import(store, ACCOUNTS, tmp_path)

    assert report.problems == (
        RowProblem(
            "accounts.csv", 3, "a cell longer than 131072 characters (the CSV field-size limit)"
        ),
    )
    assert counts(report) == (3, 2, 1)
    assert accounts(store) == {"Acme": "Retail", "Initech": "Software"}


@pytest.mark.parametrize(
    ("tail", "reason", "landed"),
    [
        # The stray quote runs until the next quote, which closes it mid-cell.
        (
            'Umbrella,"Pharma"\nHooli,Tech\n',
            "unbalanced quotes (',' expected after '\"'); it ran to line 5, so lines 4–5 were "
            "read again as rows of their own",
            {"Umbrella": "Pharma", "Hooli": "Tech"},
        ),
        # No other quote: it would swallow the rest of the file.
        (
            "Umbrella,Pharma\nHooli,Tech\n",
            "a quote opens a cell that never closes; it ran to line 6, so lines 4–6 were read "
            "again as rows of their own",
            {"Umbrella": "Pharma", "Hooli": "Tech"},
        ),
    ],
)
def test_an_unterminated_quote_is_reported_and_swallows_no_row(
    store: Engine, tmp_path: Path, tail: str, reason: str, landed: dict[str, str]
) -> None:
    (tmp_path / "accounts.csv").write_text(
        'account,industry\nAcme,Retail\n"Globex,Energy\nInitech,Software\n' + tail
    )

    report = run_import(store, ACCOUNTS, tmp_path)

    assert report.problems == (RowProblem("accounts.csv", 3, reason),)
    assert counts(report) == (5, 4, 1)
    assert accounts(store) == {"Acme": "Retail", "Initech": "Software", **landed}


def test_a_nul_byte_is_reported_for_its_row(store: Engine, tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text(
        "account,industry\nAcme,Retail\nGlo\x00bex,Energy\nInitech,Soft\x00ware\nHooli,Tech\n"
    )

    report = run_import(store, ACCOUNTS, tmp_path)

    nul = "a NUL character (\\x00), which the database cannot store"
    assert report.problems == (
        RowProblem("accounts.csv", 3, f"account: {nul}"),
        RowProblem("accounts.csv", 4, f"industry: {nul}"),
    )
    assert counts(report) == (4, 2, 2)
    assert accounts(store) == {"Acme": "Retail", "Hooli": "Tech"}


def test_names_are_stored_on_one_line_without_invisible_characters(
    store: Engine, tmp_path: Path
) -> None:
    (tmp_path / "accounts.csv").write_text(
        "account,industry\n"
        '"Paris\n✅ FORGED LINE — *9 999 999 €*",Retail\n'
        "Ly\u200bon\u202e\u2066 \tGroup\u2069,Energy\u00ad\n"
        '"Multi\r\nline",Soft\u2028ware\n'
    )

    report = run_import(store, ACCOUNTS, tmp_path)

    assert report.problems == ()
    assert accounts(store) == {
        "Paris ✅ FORGED LINE — *9 999 999 €*": "Retail",
        "Lyon Group": "Energy",
        "Multi line": "Soft ware",
    }
