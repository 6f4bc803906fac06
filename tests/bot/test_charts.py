"""The digest's chart: a PNG from pace paths, with the organisation's formats on its axes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.charts import DOWN, LEVEL, UP, pace_chart, waterfall_bars, waterfall_chart
from bot.formatting import Formatter
from metrics.pace import PacePath
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope
from tests.bot.test_changes_rendering import pipeline_changes

PARIS = ZoneInfo("Europe/Paris")
OCTOBER = period_containing(Grain.MONTH, date(2026, 10, 1))
DAYS = tuple(date(2026, 10, d) for d in range(1, 32))


def path(name: str, target: Decimal | None) -> PacePath:
    booked = tuple(Decimal(1000 * d) for d in range(1, 11))
    expected = None if target is None else tuple(target * d / 31 for d in range(1, 32))
    return PacePath(Scope(Level.TEAM, name), OCTOBER, DAYS, booked, expected, target)


def test_a_png_with_one_small_chart_per_team() -> None:
    fmt = Formatter("fr_FR", "EUR", PARIS)
    png = pace_chart([path("Lyon", Decimal(31000)), path("<!channel>", None)], fmt, "CA")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # two teams side by side: 8 × 3.4 inches at 100 dpi
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (800, 340)


def test_nothing_to_draw_is_said() -> None:
    with pytest.raises(ValueError, match="nothing to draw"):
        pace_chart([], Formatter("en_US", "USD", PARIS), "Revenue")


@pytest.mark.parametrize(("locale", "expected"), [("fr_FR", "1 oct."), ("en_US", "Oct 1")])
def test_axis_days_follow_the_locale(locale: str, expected: str) -> None:
    assert Formatter(locale, "EUR", PARIS).day_month(date(2026, 10, 1)) == expected


def test_the_waterfall_bars_float_from_the_running_total() -> None:
    fmt = Formatter("en_US", "USD", PARIS)
    bars = waterfall_bars(pipeline_changes(), fmt)
    # test_waterfall's company movements, in dollars: 5350 + 720 + 450 + 450 − 149.50 − 300
    # − 200 − 870 − 350 = 5100.50; the empty "reassigned" movement has no bar.
    assert [(b.label, b.bottom, b.height, b.color) for b in bars] == [
        ("Pipeline on Nov 23", 0, 5350, LEVEL),
        ("+ Created", 5350, 720, UP),
        ("+ Moved in (close date, reopened)", 6070, 450, UP),
        ("+ Increased", 6520, 450, UP),
        ("− Decreased", Decimal("6820.50"), Decimal("149.50"), DOWN),
        ("− Pushed out (close date)", Decimal("6520.50"), 300, DOWN),
        ("− Lost", Decimal("6320.50"), 200, DOWN),
        ("− Won", Decimal("5450.50"), 870, DOWN),
        ("− Removed (deleted)", Decimal("5100.50"), 350, DOWN),
        ("Pipeline now", 0, Decimal("5100.50"), LEVEL),
    ]


def test_a_waterfall_png_has_a_bar_per_movement() -> None:
    fmt = Formatter("fr_FR", "EUR", PARIS)
    png = waterfall_chart(pipeline_changes(), fmt, "Pipeline · T4 2026")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # ten bars: (1.1 × 10 + 2) × 4 inches at 100 dpi
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1300, 400)
