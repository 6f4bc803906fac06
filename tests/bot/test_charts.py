"""The digest's chart: a PNG from pace paths, with the organisation's formats on its axes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.charts import pace_chart
from bot.formatting import Formatter
from metrics.pace import PacePath
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope

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
