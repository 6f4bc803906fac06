"""CSV import with hand-made exports (``tests/fixtures/csv``): every bad row is reported with its
file, physical line and reason while the good rows land with exact values; re-importing changes
nothing; an export with other column names, ``;``, French numbers and day-first dates imports
the same facts through configuration alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.importers.csv_import import ImportReport, RowProblem, TableReport, import_csv
from bot.settings import ConfigError, CsvSource
from bot.store.database import data_version, make_engine, migrate, session_factory, transaction
from bot.store.models import Base

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
TABLES = ("teams", "reps", "accounts", "opportunities", "leads", "spend", "surveys")

ENGLISH = CsvSource.model_validate(
    {
        "currency": "EUR",
        "teams": {"file": "teams.csv", "columns": {"id": "team_id", "name": "team",
                  "region": "region", "manager": "manager"}},
        "reps": {"file": "reps.csv", "columns": {"id": "rep_id", "name": "rep", "email": "email",
                 "team": "team", "region": "region", "active_from": "started"}},
        "accounts": {"file": "accounts.csv", "columns": {"name": "account", "segment": "segment",
                     "industry": "industry", "country": "country"}},
        "opportunities": {
            "file": "deals.csv",
            "columns": {"id": "deal_id", "name": "deal_name", "owner": "agent",
                        "account": "account", "product": "product", "stage": "stage",
                        "amount": "amount", "currency": "currency", "created_at": "created",
                        "close_date": "closed", "probability": "probability"},
            "stages": {"Prospecting": "open", "Negotiation": "open", "Closed Won": "won",
                       "Closed Lost": "lost"},
        },
        "leads": {"file": "leads.csv", "columns": {"id": "lead_id", "created_at": "created",
                  "owner": "owner", "converted_at": "converted", "channel": "channel",
                  "account": "company"}},
        "spend": {"file": "spend.csv", "columns": {"date": "day", "channel": "channel",
                  "amount": "cost", "team": "team", "region": "region"}},
        "surveys": {"file": "surveys.csv", "columns": {"id": "survey_id", "date": "answered",
                    "account": "customer", "owner": "rep", "kind": "type", "score": "score"}},
    }
)  # fmt: skip

# The same company exported by a French CRM: other names, ";", day-first dates, "1 200,50",
# CRLF line endings and a byte-order mark.
FRENCH_FILE = {"delimiter": ";", "date_format": "%d/%m/%Y", "decimal_separator": ","}
FRENCH = CsvSource.model_validate(
    {
        "currency": "EUR",
        "teams": {"file": "equipes.csv", "columns": {"id": "code", "name": "équipe",
                  "region": "région", "manager": "responsable"}, **FRENCH_FILE},
        "reps": {"file": "commerciaux.csv", "columns": {"id": "matricule", "name": "nom",
                 "email": "courriel", "team": "équipe", "region": "région",
                 "active_from": "embauche"}, **FRENCH_FILE},
        "accounts": {"file": "comptes.csv", "columns": {"name": "société", "segment": "segment",
                     "industry": "secteur", "country": "pays"}, **FRENCH_FILE},
        "opportunities": {
            "file": "affaires.csv",
            "columns": {"id": "réf", "name": "libellé", "owner": "commercial",
                        "account": "société", "product": "produit", "stage": "étape",
                        "amount": "montant", "currency": "devise", "created_at": "créée le",
                        "close_date": "close le", "probability": "proba"},
            "stages": {"Prospection": "open", "Négociation": "open", "Gagnée": "won",
                       "Perdue": "lost"},
            **FRENCH_FILE,
        },
        "leads": {"file": "prospects.csv", "columns": {"id": "id", "created_at": "créé le",
                  "owner": "commercial", "converted_at": "converti le", "channel": "canal",
                  "account": "société"}, **FRENCH_FILE},
        "spend": {"file": "depenses.csv", "columns": {"date": "date", "channel": "canal",
                  "amount": "coût", "team": "équipe", "region": "région"}, **FRENCH_FILE},
        "surveys": {"file": "enquetes.csv", "columns": {"id": "id", "date": "date",
                    "account": "client", "owner": "commercial", "kind": "type",
                    "score": "note"}, **FRENCH_FILE},
    }
)  # fmt: skip

# Every bad row of the English export, in file order, with the reason the user reads.
EXPECTED_PROBLEMS = (
    RowProblem("deals.csv", 8, "missing id (deal_id is empty)"),
    RowProblem("deals.csv", 9, "closed: unparseable date '2017-02-30' (expected YYYY-MM-DD)"),
    RowProblem("deals.csv", 10, "amount: unparseable amount '12O0'"),
    RowProblem(
        "deals.csv", 11,
        "stage: unknown stage 'Verbal yes' (the stages mapping knows Prospecting, Negotiation, "
        "Closed Won, Closed Lost)",
    ),
    RowProblem("deals.csv", 12, "Closed Won deal without a close date (closed is empty)"),
    RowProblem("deals.csv", 13, "unknown owner 'Zed Nobody' (no rep with that id or name)"),
    RowProblem("deals.csv", 14, "3 fields where the header has 11"),
    RowProblem("deals.csv", 16, "id 'D2' is already on line 3 with other values"),
    RowProblem(
        "deals.csv", 17,
        "probability: probability '150%' is not between 0 and 1 (or 0 and 100 %)",
    ),
    RowProblem("leads.csv", 4, "created: unparseable date '2017-13-01' (expected YYYY-MM-DD)"),
    RowProblem("spend.csv", 4, "cost: unparseable amount 'abc'"),
    RowProblem("surveys.csv", 4, "type: unknown survey kind 'stars' (expected csat or nps)"),
)  # fmt: skip

# (table, file, read, imported, skipped, distinct, changed, created)
EXPECTED_TABLES = (
    ("teams", "teams.csv", 2, 2, 0, 2, 2, ()),
    ("reps", "reps.csv", 3, 3, 0, 3, 3, ("Hawks",)),
    ("accounts", "accounts.csv", 2, 2, 0, 2, 2, ()),
    # D1..D4, then lines 8-17: nine bad rows and one identical repeat of D1.
    ("opportunities", "deals.csv", 14, 5, 9, 4, 4, ("Initech",)),
    ("leads", "leads.csv", 3, 2, 1, 2, 2, ()),
    ("spend", "spend.csv", 3, 2, 1, 2, 2, ()),
    ("surveys", "surveys.csv", 3, 2, 1, 2, 2, ()),
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def run_import(engine: Engine, source: CsvSource, folder: Path) -> ImportReport:
    with transaction(session_factory(engine)) as session:
        return import_csv(session, "crm", source, folder, "USD")


def table_counts(report: ImportReport) -> tuple[tuple[Any, ...], ...]:
    return tuple(
        (t.table, t.file, t.read, t.imported, t.skipped, t.distinct, t.changed, t.created)
        for t in report.tables
    )


def rows(engine: Engine, table: str) -> dict[str, dict[str, Any]]:
    """The table's rows by source id, foreign keys replaced by the source id they point to."""
    foreign = {"team_id": "teams", "owner_id": "reps", "rep_id": "reps", "account_id": "accounts"}
    with Session(engine) as session:
        source_ids = {
            name: {i: s for i, s in session.execute(select(t.c.id, t.c.source_id))}
            for name, t in Base.metadata.tables.items()
            if name in foreign.values()
        }
        found = session.execute(select(Base.metadata.tables[table])).mappings().all()
    out = {}
    for row in found:
        values = {k: v for k, v in row.items() if k not in ("id", "source", "source_id")}
        for column, target in foreign.items():
            if column in values and values[column] is not None:
                values[column] = source_ids[target][values[column]]
        out[row["source_id"]] = values
    return out


def test_good_rows_land_with_exact_values(engine: Engine) -> None:
    run_import(engine, ENGLISH, FIXTURES / "crm")

    assert rows(engine, "teams") == {
        "T1": {"name": "Falcons", "region": "EMEA", "manager": "Fiona Hale"},
        "T2": {"name": "Owls", "region": "Americas", "manager": "Oscar Reed"},
        # Named only by a rep: created with the rep's region.
        "Hawks": {"name": "Hawks", "region": "APAC", "manager": None},
    }
    common = {"slack_user_id": None, "active_to": None}
    assert rows(engine, "reps") == {
        "R1": {"name": "Alice Martin", "email": "alice@example.test", "team_id": "T1",
               "active_from": date(2016, 1, 4), **common},
        "R2": {"name": "Bob Stone", "email": "bob@example.test", "team_id": "T2",
               "active_from": date(2016, 3, 1), **common},
        "R3": {"name": "Chloé Durand", "email": "chloe@example.test", "team_id": "Hawks",
               "active_from": None, **common},
    }  # fmt: skip
    assert rows(engine, "accounts") == {
        "Acme": {"name": "Acme", "segment": "Enterprise", "industry": "Retail",
                 "country": "France"},
        "Globex": {"name": "Globex", "segment": "SMB", "industry": "Energy", "country": "Germany"},
        # Named only by deal D3: created with its name alone.
        "Initech": {"name": "Initech", "segment": None, "industry": None, "country": None},
    }  # fmt: skip
    unset = {
        "forecast_category": None,
        "last_activity_at": None,
        "updated_at": None,
        "deleted_at": None,
    }
    stamped = {"changed_in": 1}  # the data version the import made (bot.store.changes)
    assert rows(engine, "opportunities") == {
        "D1": {"name": "Acme renewal", "owner_id": "R1", "account_id": "Acme", "product": "GTX",
               "stage": "Closed Won", "is_closed": True, "is_won": True,
               "amount": Decimal("1200.50"), "currency": "USD", "created_at": date(2017, 1, 10),
               "close_date": date(2017, 2, 15), "probability": None, **unset, **stamped},
        # The stage matches its mapping whatever the case, and is stored as written.
        "D2": {"name": "Globex pilot", "owner_id": "R2", "account_id": "Globex", "product": "MG",
               "stage": "closed lost", "is_closed": True, "is_won": False,
               "amount": Decimal("0"), "currency": "EUR", "created_at": date(2017, 1, 20),
               "close_date": date(2017, 3, 1), "probability": None, **unset, **stamped},
        "D3": {"name": "Initech expansion", "owner_id": "R2", "account_id": "Initech",
               "product": "GTX", "stage": "Negotiation", "is_closed": False, "is_won": False,
               "amount": Decimal("5000"), "currency": "EUR", "created_at": date(2017, 2, 1),
               "close_date": None, "probability": 0.35, **unset, **stamped},
        "D4": {"name": "Small deal", "owner_id": "R1", "account_id": None, "product": "MG",
               "stage": "Prospecting", "is_closed": False, "is_won": False, "amount": None,
               "currency": "EUR", "created_at": date(2017, 2, 3), "close_date": None,
               "probability": 0.1, **unset, **stamped},
    }  # fmt: skip
    assert rows(engine, "leads") == {
        "L1": {"created_at": date(2017, 1, 5), "channel": "Web", "owner_id": "R1",
               "converted_at": date(2017, 1, 20), "account_id": "Acme", **stamped},
        "L2": {"created_at": date(2017, 1, 6), "channel": "Event", "owner_id": "R2",
               "converted_at": None, "account_id": None, **stamped},
    }  # fmt: skip
    assert sorted(rows(engine, "spend").values(), key=lambda r: r["amount"]) == [
        {"date": date(2017, 1, 31), "channel": "Events", "amount": Decimal("800"),
         "currency": "EUR", "team_id": None, "region": "Americas", **stamped},
        {"date": date(2017, 1, 31), "channel": "Ads", "amount": Decimal("2500"),
         "currency": "EUR", "team_id": "T1", "region": "EMEA", **stamped},
    ]  # fmt: skip
    assert rows(engine, "surveys") == {
        "S1": {"date": date(2017, 2, 20), "account_id": "Acme", "rep_id": "R1", "kind": "nps",
               "score": 9.0, **stamped},
        "S2": {"date": date(2017, 2, 21), "account_id": "Globex", "rep_id": "R2",
               "kind": "csat", "score": 4.5, **stamped},
    }  # fmt: skip


def test_each_bad_row_is_reported_with_file_line_and_reason(engine: Engine) -> None:
    report = run_import(engine, ENGLISH, FIXTURES / "crm")

    assert report.problems == EXPECTED_PROBLEMS
    assert table_counts(report) == EXPECTED_TABLES
    assert report.data_version == 1


def test_summary_has_a_line_per_file(engine: Engine) -> None:
    report = run_import(engine, ENGLISH, FIXTURES / "crm")

    assert report.summary().splitlines() == [
        "teams.csv → teams: 2 rows read, 2 imported, 0 skipped; 2 new or changed",
        "reps.csv → reps: 3 rows read, 3 imported, 0 skipped; 3 new or changed; "
        "created 1 teams it names: Hawks",
        "accounts.csv → accounts: 2 rows read, 2 imported, 0 skipped; 2 new or changed",
        "deals.csv → opportunities: 14 rows read, 5 imported as 4 opportunities, 9 skipped; "
        "4 new or changed; created 1 accounts it names: Initech",
        "leads.csv → leads: 3 rows read, 2 imported, 1 skipped; 2 new or changed",
        "spend.csv → spend: 3 rows read, 2 imported, 1 skipped; 2 new or changed",
        "surveys.csv → surveys: 3 rows read, 2 imported, 1 skipped; 2 new or changed",
        "crm: 30 rows read, 12 skipped; data version 1",
    ]


def test_reimporting_the_same_files_changes_nothing(engine: Engine) -> None:
    first = run_import(engine, ENGLISH, FIXTURES / "crm")
    before = {table: rows(engine, table) for table in TABLES}

    again = run_import(engine, ENGLISH, FIXTURES / "crm")

    unchanged = tuple((*t[:6], 0, ()) for t in EXPECTED_TABLES)
    assert table_counts(again) == unchanged
    assert again.problems == first.problems
    assert again.data_version is None
    assert not again.changed
    assert again.summary().endswith("crm: 30 rows read, 12 skipped; nothing changed in the store")
    with Session(engine) as session:
        assert data_version(session) == 1
    after = {table: rows(engine, table) for table in TABLES}
    assert after == before


def test_an_edited_row_is_updated_and_bumps_the_version(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for file in (FIXTURES / "crm").iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    run_import(engine, ENGLISH, folder)
    deals = folder / "deals.csv"
    deals.write_text(deals.read_text().replace("MG,Prospecting,,", "MG,Prospecting,750,"))

    report = run_import(engine, ENGLISH, folder)

    assert [(t.table, t.changed) for t in report.tables if t.changed] == [("opportunities", 1)]
    assert report.data_version == 2
    assert rows(engine, "opportunities")["D4"]["amount"] == Decimal("750")


def test_another_export_layout_imports_the_same_facts(engine: Engine, tmp_path: Path) -> None:
    english = run_import(engine, ENGLISH, FIXTURES / "crm")
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate(other)
    french = run_import(other, FRENCH, FIXTURES / "crm_fr")

    assert french.problems == ()
    assert [t.distinct for t in french.tables] == [t.distinct for t in english.tables]
    for table in ("teams", "reps", "accounts", "leads", "surveys"):
        assert rows(other, table) == rows(engine, table), table
    # Stages keep the CRM's own names; what they mean (is_closed, is_won) is the same.
    french_deals = rows(other, "opportunities")
    assert {k: v.pop("stage") for k, v in french_deals.items()} == {
        "D1": "Gagnée", "D2": "Perdue", "D3": "Négociation", "D4": "Prospection"
    }  # fmt: skip
    english_deals = rows(engine, "opportunities")
    for deal in english_deals.values():
        del deal["stage"]
    assert french_deals == english_deals
    # Spend has no id column: its ids hash the cells as written, which differ between layouts.
    assert sorted(rows(other, "spend").values(), key=repr) == sorted(
        rows(engine, "spend").values(), key=repr
    )
    other.dispose()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"opportunities": {"file": "deals.csv", "columns": {"id": "deal_id", "stage": "stage",
             "close_date": "closed", "amount": "value"}, "stages": {"Won": "won"}}},
            "import.csv.crm.opportunities.columns.amount: no column 'value' in deals.csv (its "
            "columns: deal_id, deal_name, agent, account, product, stage, amount, currency, "
            "created, closed, probability)",
        ),
        (
            {"accounts": {"file": "accounts.csv", "columns": {"name": "account", "size": "x"}}},
            "import.csv.crm.accounts.columns.size: unknown field for accounts; expected one of "
            "id, name, segment, industry, country",
        ),
        (
            {"opportunities": {"file": "deals.csv", "columns": {"id": "deal_id",
             "stage": "stage"}, "stages": {"Won": "won"}}},
            "import.csv.crm.opportunities.columns: close_date must be mapped onto a column",
        ),
        (
            {"opportunities": {"file": "deals.csv", "columns": {"id": "deal_id",
             "stage": "stage", "close_date": "closed"}}},
            "import.csv.crm.opportunities.stages: map each stage of the export onto open, won "
            "or lost",
        ),
        (
            {"leads": {"file": "missing.csv", "columns": {"id": "a", "created_at": "b"}}},
            f"import.csv.crm.leads.file: no file {FIXTURES / 'crm' / 'missing.csv'}",
        ),
    ],
)  # fmt: skip
def test_a_mapping_that_does_not_fit_the_files_writes_nothing(
    engine: Engine, change: dict[str, Any], problem: str
) -> None:
    source = CsvSource.model_validate({**ENGLISH.model_dump(), **change})
    factory: sessionmaker[Session] = session_factory(engine)

    with pytest.raises(ConfigError) as raised, transaction(factory) as session:
        import_csv(session, "crm", source, FIXTURES / "crm", "USD")

    assert [str(p) for p in raised.value.problems] == [problem]  # in English, as logged
    assert rows(engine, "teams") == {}


def test_table_report_lists_a_few_created_names() -> None:
    report = TableReport("opportunities", "deals.csv", 9, 9, 0, 9, 9, tuple("ABCDEFG"), "accounts")

    assert report.summary() == (
        "deals.csv → opportunities: 9 rows read, 9 imported, 0 skipped; 9 new or changed; "
        "created 7 accounts it names: A, B, C, D, E and 2 more"
    )


def test_an_owner_name_shared_by_two_reps_is_refused(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "reps.csv").write_text("id,name\nR1,Sam Lee\nR2,Sam Lee\n")
    (tmp_path / "deals.csv").write_text("id,owner,stage,closed\nD1,Sam Lee,Open,\nD2,R2,Open,\n")
    source = CsvSource.model_validate(
        {
            "reps": {"file": "reps.csv", "columns": {"id": "id", "name": "name"}},
            "opportunities": {
                "file": "deals.csv",
                "columns": {"id": "id", "owner": "owner", "stage": "stage", "close_date": "closed"},
                "stages": {"Open": "open"},
            },
        }
    )

    report = run_import(engine, source, tmp_path)

    assert report.problems == (
        RowProblem("deals.csv", 2, "owner 'Sam Lee' names several reps; map their ids instead"),
    )
    assert rows(engine, "opportunities")["D2"]["owner_id"] == "R2"


def test_a_team_named_only_by_reps_takes_the_region_of_the_first_good_row_naming_it(
    engine: Engine, tmp_path: Path
) -> None:
    # The first row naming Hawks is bad (no name): the second is the first good one.
    (tmp_path / "reps.csv").write_text(
        "id,name,team,region\nR1,,Hawks,EMEA\nR2,Ana,Hawks,APAC\nR3,Bo,Hawks,Americas\n"
        "R4,Cy,Owls,LATAM\nR5,Di,Hawks,EMEA\n"
    )
    columns = {"id": "id", "name": "name", "team": "team", "region": "region"}
    source = CsvSource.model_validate({"reps": {"file": "reps.csv", "columns": columns}})

    report = run_import(engine, source, tmp_path)

    assert [problem.line for problem in report.problems] == [2]
    assert rows(engine, "teams") == {
        "Hawks": {"name": "Hawks", "region": "APAC", "manager": None},
        "Owls": {"name": "Owls", "region": "LATAM", "manager": None},
    }


def test_spend_without_ids_keeps_them_when_the_export_gains_a_column(
    engine: Engine, tmp_path: Path
) -> None:
    spend = {"spend": ENGLISH.model_dump()["spend"]}
    source = CsvSource.model_validate(spend)
    (tmp_path / "spend.csv").write_text((FIXTURES / "crm" / "spend.csv").read_text())
    run_import(engine, source, tmp_path)
    before = rows(engine, "spend")
    lines = (FIXTURES / "crm" / "spend.csv").read_text().splitlines()
    widened = [f"{line},note" for line in lines]
    (tmp_path / "spend.csv").write_text("\n".join(widened) + "\n")

    report = run_import(engine, source, tmp_path)

    assert [(t.read, t.imported, t.changed) for t in report.tables] == [(3, 2, 0)]
    assert rows(engine, "spend") == before
