"""Opportunity history kept by every import: the pipeline rebuilt at the moment of any past
import is exactly what that import held, on SQLite and PostgreSQL, through random sequences of
imports with changes, deletions (a deal missing from a full export) and reopenings."""

from __future__ import annotations

import csv
import itertools
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, Engine, func, select, update
from sqlalchemy.orm import Session

from bot.importers.csv_import import import_csv
from bot.settings import CsvSource
from bot.store.changes import pending_in, pending_scanned
from bot.store.database import bump_data_version, session_factory, transaction
from bot.store.history import states_at, utc
from bot.store.models import DataVersion, Opportunity, OpportunityHistory, Rep

SOURCE = CsvSource.model_validate(
    {
        "currency": "EUR",
        "reps": {"file": "reps.csv", "columns": {"id": "rep_id", "name": "rep"}},
        "opportunities": {
            "file": "deals.csv",
            "columns": {"id": "deal", "owner": "rep", "stage": "stage", "amount": "amount",
                        "close_date": "close", "probability": "proba"},
            "stages": {"Discovery": "open", "Proposal": "open", "Won": "won", "Lost": "lost"},
        },
    }
)  # fmt: skip
STAGES = {"Discovery": "open", "Proposal": "open", "Won": "won", "Lost": "lost"}
REPS = ("r1", "r2")

# One deal as an import holds it: stage, amount, close date, probability, owner.
Deal = tuple[str, Decimal | None, date, float | None, str]
Export = dict[str, Deal]

deals = st.tuples(
    st.sampled_from(sorted(STAGES)),
    st.one_of(st.none(), st.decimals(0, 100_000, places=2, allow_nan=False)),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.one_of(st.none(), st.sampled_from([0.1, 0.25, 0.5, 0.9])),
    st.sampled_from(REPS),
).filter(lambda deal: deal[0] != "Won" or deal[1] is not None)  # a won deal has an amount
exports = st.dictionaries(st.sampled_from(["d1", "d2", "d3", "d4", "d5"]), deals, max_size=5)
# Repeating the previous export is likely, to check that it records nothing.
histories = st.lists(st.one_of(exports, st.just("again")), min_size=1, max_size=6)

_sources = itertools.count()


def _write(directory: Path, export: Export) -> None:
    with (directory / "reps.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rep_id", "rep"])
        writer.writerows([rep, f"Rep {rep}"] for rep in REPS)
    with (directory / "deals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["deal", "rep", "stage", "amount", "close", "proba"])
        for key, (stage, amount, close, probability, owner) in export.items():
            cells = ["" if amount is None else str(amount), close.isoformat()]
            writer.writerow([key, owner, stage, *cells, "" if probability is None else probability])


def _held(session: Session, source: str, at: datetime) -> dict[str, tuple[object, ...]]:
    """The source's deals as the history says they stood at ``at``."""
    states = states_at(at).subquery()
    owners = {rep_id: key for rep_id, key in session.execute(select(Rep.id, Rep.source_id))}
    rows = session.execute(
        select(
            states.c.source_id, states.c.status, states.c.stage, states.c.amount,
            states.c.close_date, states.c.probability, states.c.owner_id,
        ).where(states.c.source == source)
    )  # fmt: skip
    return {
        key: (status, stage, None if amount is None else Decimal(amount).quantize(Decimal("0.01")),
              close, probability, owners.get(owner))
        for key, status, stage, amount, close, probability, owner in rows
    }  # fmt: skip


def _expected(export: Export, ever: dict[str, Deal]) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for key, (stage, amount, close, probability, owner) in ever.items():
        status = STAGES[stage] if key in export else "deleted"
        out[key] = (status, stage, amount, close, probability, owner)
    return out


def _history_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OpportunityHistory)) or 0


@settings(
    max_examples=25,
    deadline=None,
    # Each example imports under a source of its own, so the shared store is safe.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=histories)
def test_the_pipeline_at_any_past_import_is_what_that_import_held(
    store: Engine, sequence: list[Export | str]
) -> None:
    source = f"s{next(_sources)}"
    factory = session_factory(store)
    ever: dict[str, Deal] = {}
    moments: list[tuple[datetime, dict[str, tuple[object, ...]]]] = []
    previous: Export = {}
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        for step in sequence:
            export = previous if isinstance(step, str) else step
            _write(directory, export)
            with transaction(factory) as session:
                rows_before = _history_rows(session)
                report = import_csv(session, source, SOURCE, directory, "EUR")
                added = _history_rows(session) - rows_before
            if moments and export == previous:
                assert not report.changed and added == 0
            ever.update(export)
            with factory() as session:
                stamp = session.scalar(select(DataVersion.changed_at))
            assert stamp is not None
            moments.append(
                (utc(stamp.replace(tzinfo=stamp.tzinfo or UTC)), _expected(export, ever))
            )
            previous = export
    with factory() as session:
        for moment, expected in moments:
            assert _held(session, source, moment) == expected
        # Before the first import the history holds nothing of this source.
        assert _held(session, source, moments[0][0] - timedelta(microseconds=1)) == {}


def test_a_deleted_deal_leaves_the_facts_and_comes_back_reopened(store: Engine) -> None:
    factory = session_factory(store)
    deal: Deal = ("Proposal", Decimal("1000.00"), date(2026, 12, 15), 0.5, "r1")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        statuses = []
        for export in ({"d1": deal, "d2": deal}, {"d2": deal}, {"d1": deal, "d2": deal}):
            _write(directory, export)
            with transaction(factory) as session:
                report = import_csv(session, "crm", SOURCE, directory, "EUR")
            deals_report = next(t for t in report.tables if t.table == "opportunities")
            statuses.append((deals_report.removed, deals_report.changed))
            with factory() as session:
                statuses.append(
                    session.scalar(
                        select(Opportunity.deleted_at).where(Opportunity.source_id == "d1")
                    )
                    is not None
                )
    # Second import: d1 removed; third: d1 back (one row changed: its deleted_at cleared).
    assert statuses == [(0, 2), False, (1, 0), True, (0, 1), False]
    with factory() as session:
        history = session.execute(
            select(OpportunityHistory.status, OpportunityHistory.valid_to.is_(None))
            .join(Opportunity)
            .where(Opportunity.source_id == "d1")
            .order_by(OpportunityHistory.id)
        ).all()
    assert [tuple(row) for row in history] == [("open", False), ("deleted", False), ("open", True)]


def test_a_file_with_unidentified_rows_removes_nothing(store: Engine, tmp_path: Path) -> None:
    factory = session_factory(store)
    deal: Deal = ("Proposal", Decimal("10.00"), date(2026, 12, 15), None, "r1")
    _write(tmp_path, {"d1": deal, "d2": deal})
    with transaction(factory) as session:
        import_csv(session, "crm", SOURCE, tmp_path, "EUR")
    with (tmp_path / "deals.csv").open("w", newline="") as handle:
        handle.write("deal,rep,stage,amount,close,proba\nd2,r1,Proposal,10.00,2026-12-15,\n")
        handle.write(",r1,Proposal,10.00,2026-12-15,\n")  # d1, its id lost in the export
    with transaction(factory) as session:
        report = import_csv(session, "crm", SOURCE, tmp_path, "EUR")
    deals_report = next(t for t in report.tables if t.table == "opportunities")
    assert (deals_report.removed, deals_report.kept) == (0, 1)
    assert "1 missing from the file kept (some rows have no readable id)" in deals_report.summary()
    assert not report.changed


def test_history_moments_are_explicit_and_aware(store: Engine) -> None:
    factory = session_factory(store)
    with transaction(factory) as session, pytest.raises(ValueError, match="timezone-aware"):
        bump_data_version(session, datetime(2026, 12, 1, 9, 0))


def test_pending_rows_found_by_a_scan_are_those_the_index_finds(store: Engine) -> None:
    """``pending_scanned`` (a first import's history) picks the rows ``pending_in`` picks:
    unmarked, or marked with the version being made; not those of another version."""
    marks = [None, 7, 6, 8, None, 7]
    with transaction(session_factory(store)) as session:
        rep = Rep(source="crm", source_id="r1", name="Ann")
        session.add(rep)
        session.flush()
        for number in range(len(marks)):
            session.add(
                Opportunity(
                    source="crm", source_id=f"d{number}", name=f"d{number}", owner_id=rep.id,
                    stage="Open", is_closed=False, is_won=False, currency="EUR",
                )
            )  # fmt: skip
        session.flush()
        for number, mark in enumerate(marks):
            session.execute(
                update(Opportunity)
                .where(Opportunity.source_id == f"d{number}")
                .values(changed_in=mark)
            )

        def found(where: ColumnElement[bool]) -> list[str]:
            chosen = select(Opportunity.source_id).where(where).order_by(Opportunity.source_id)
            return list(session.scalars(chosen))

        assert found(Opportunity.changed_in.is_not(None)) == ["d1", "d2", "d3", "d5"]
        assert found(pending_in(Opportunity, 7)) == ["d0", "d1", "d4", "d5"]
        assert found(pending_scanned(Opportunity, 7)) == ["d0", "d1", "d4", "d5"]
        session.rollback()
