"""Comparisons "as it stood" read the recorded history: two CSV imports, their moments set by
hand, and answers asked on a fixed day. Before the history starts, the earlier figure is
rebuilt from today's records and the answer says so, in French and English."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from bot.formatting import Formatter
from bot.rendering import render_answer_blocks, render_answer_text
from bot.service import KpiService
from bot.store.models import OpportunityHistory
from tests.bot.test_changes_service import AFTER, BEFORE, _import, _settings

NOW = datetime(2027, 1, 10, 9, tzinfo=UTC)


def _service(store: Engine, tmp_path: Path, first: datetime, second: datetime) -> KpiService:
    """BEFORE recorded at ``first``, AFTER at ``second``."""
    _import(store, tmp_path, BEFORE)
    with store.begin() as connection:
        connection.execute(update(OpportunityHistory).values(valid_from=first))
    _import(store, tmp_path, AFTER)
    with store.begin() as connection:
        # The second import's moment: every interval it closed or opened.
        recorded = OpportunityHistory.valid_from != first
        connection.execute(update(OpportunityHistory).where(recorded).values(valid_from=second))
        closed = OpportunityHistory.valid_to.is_not(None)
        connection.execute(update(OpportunityHistory).where(closed).values(valid_to=second))
    return KpiService(_settings(tmp_path), store)


# December's pipeline read on its 10th. As the first import left it: d1 1000 (15 Dec), d2 500
# (20 Dec), d3 300 (10 Dec). Rebuilt from today's records: 250, d1 since won in November, d2
# pushed into January, d3 deleted, only d4 (undated creation) left.
@pytest.mark.parametrize(
    ("first", "expected", "rebuilt"),
    [
        (datetime(2026, 10, 1, 12, tzinfo=UTC), Decimal("1800.00"), False),  # history by then
        (datetime(2026, 12, 15, 12, tzinfo=UTC), Decimal("250.00"), True),  # history after
    ],
)
def test_the_previous_month_is_read_as_it_stood_where_the_history_reaches(
    store: Engine, tmp_path: Path, first: datetime, expected: Decimal, rebuilt: bool
) -> None:
    service = _service(store, tmp_path, first, datetime(2026, 12, 20, tzinfo=UTC))
    got = service.ask("pipeline 2027-01", NOW)
    # January: d2, pushed into it by the second import
    assert got.value.value == Decimal("500.00")
    assert (got.previous.value, got.previous.rebuilt) == (expected, rebuilt)
    assert (got.rebuilt, got.history_since) == (rebuilt, first.date())


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "en_GB",
            "Earlier figures rebuilt from today's records (the pipeline history starts on "
            "15 Dec 2026): deals won, lost or changed since count as they are now.",
        ),
        (
            "fr_FR",
            "Chiffres antérieurs reconstitués d'après les données actuelles (l'historique du "
            "pipeline commence le 15 déc. 2026) : les affaires gagnées, perdues ou modifiées "
            "depuis y comptent telles qu'elles sont aujourd'hui.",
        ),
    ],
)
def test_the_rebuilt_note_is_worded_in_the_answer(
    store: Engine, tmp_path: Path, locale: str, expected: str
) -> None:
    service = _service(
        store, tmp_path, datetime(2026, 12, 15, 12, tzinfo=UTC), datetime(2026, 12, 20, tzinfo=UTC)
    )
    got = service.ask("pipeline 2027-01", NOW)
    fmt = Formatter(locale, "EUR", ZoneInfo("Europe/Paris"))
    assert expected in render_answer_text(got, fmt).replace("\u202f", " ").replace("\xa0", " ")
    contexts = [
        element["text"]
        for block in render_answer_blocks(got, fmt)
        if block["type"] == "context"
        for element in block["elements"]
    ]
    assert any(expected in text.replace("\u202f", " ").replace("\xa0", " ") for text in contexts)
