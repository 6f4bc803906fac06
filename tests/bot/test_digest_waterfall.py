"""A subscription with ``waterfall: quarter`` carries the quarter's pipeline movements over the
last seven days, in text and Block Kit, naming no rep in a channel where rep figures are
private; without the option the digest has none."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from bot.digests import digest_notification
from bot.formatting import Formatter
from bot.rendering import render_digest_blocks, render_digest_text
from bot.subscriptions import Subscription
from metrics.periods import Grain
from metrics.scopes import Scope
from tests.bot.test_comparisons_history import _service

# The first import on 1 November, the second on 20 November; the digest goes out on Monday
# 23 November, so the week counted starts on Monday 16 November.
NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
FMT = Formatter("en_GB", "EUR", ZoneInfo("Europe/Paris"))


def _subscription(waterfall: Grain | None) -> Subscription:
    return Subscription(
        "weekly", "C0LEAD", time(8, 30), "Europe/Paris", (0,), Scope.company(), ("pipeline",),
        "Weekly digest", waterfall,
    )  # fmt: skip


@pytest.fixture
def digest_of(store: Engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    service = _service(
        store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    )
    return lambda waterfall: digest_notification(service, _subscription(waterfall), NOW, FMT).view


def test_a_weekly_digest_carries_the_quarters_waterfall(digest_of) -> None:  # type: ignore[no-untyped-def]
    digest = digest_of(Grain.QUARTER)
    text = render_digest_text(digest, FMT).replace("\u202f", " ").replace("\xa0", " ")
    assert "Pipeline · Company · Q4 2026 — changes since 16 Nov 2026" in text
    # The movements of test_changes_service, counted from the first import's state.
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for expected in (
        "Pipeline on 16 Nov 2026 €1,800",
        "+ Created +€250 1 deal",
        "+ Increased +€200 1 deal",
        "− Pushed out (close date) -€500 1 deal",
        "− Won -€1,200 1 deal",
        "− Removed (deleted) -€300 1 deal",
        "Pipeline now €250",
    ):
        assert expected in lines, expected
    # Rep figures are private in channels: the largest deals are not named.
    assert "Rep r1" not in text and "d1" not in text
    sections = [b["text"]["text"] for b in render_digest_blocks(digest, FMT) if "text" in b]
    assert any("changes since 16 Nov 2026" in s for s in sections)
    assert any(s.startswith("*− Won*") for s in sections)


def test_without_the_option_there_is_no_waterfall(digest_of) -> None:  # type: ignore[no-untyped-def]
    assert digest_of(None).changes is None
