"""Past states are read from the history once and kept across data versions (a sync does not
change what the deals were), with owners placed in today's teams at each use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from bot.store.facts_loader import PastStates, current_owners, load_deal_states
from tests.bot.test_changes_service import AFTER, _import
from tests.bot.test_comparisons_history import _service

BETWEEN = datetime(2026, 11, 10, tzinfo=UTC)  # after the first import, before the second


def test_a_past_state_survives_a_sync_and_equals_a_fresh_read(
    store: Engine, tmp_path: Path
) -> None:
    _service(store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    past = PastStates(store, "EUR", {}, 0.5)
    before = past.deals(BETWEEN, current_owners(store))
    # d1, d2, d3 as the first import left them.
    assert sorted(before["name"]) == ["d1", "d2", "d3"]
    assert before.set_index("name")["amount"].to_dict() == {
        "d1": 100_000, "d2": 50_000, "d3": 30_000
    }  # fmt: skip

    # A later sync (here the same file again, then d4 resized) changes nothing of 10 November.
    changed = dict(AFTER, d4=("Discovery", "999.00", "2026-12-31", "r2"))
    _import(store, tmp_path, changed)

    again = past.deals(BETWEEN, current_owners(store))
    pd.testing.assert_frame_equal(again, before)
    pd.testing.assert_frame_equal(again, load_deal_states(store, BETWEEN, "EUR", {}))
    opportunities = past.opportunities(BETWEEN, current_owners(store))
    assert sorted(opportunities["status"].astype(str)) == ["open", "open", "open"]
    assert opportunities["amount"].sum() == 180_000
