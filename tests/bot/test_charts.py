"""The digest's chart: a PNG from pace paths, with the organisation's formats on its axes."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.charts import (
    DOWN,
    LEVEL,
    UP,
    pace_chart,
    pace_figure,
    waterfall_bars,
    waterfall_chart,
)
from bot.formatting import Formatter
from bot.teams.pictures import MIN_WIDTH, shrink_png
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


def six_teams() -> list[PacePath]:
    return [path(f"Équipe {n}", Decimal(31000 * n)) for n in range(1, 7)]


def test_shrink_png_keeps_what_fits_then_takes_colours_then_width() -> None:
    png = pace_chart(six_teams(), Formatter("fr_FR", "EUR", PARIS), "CA")
    width, height = size(png)
    assert shrink_png(png, len(png)) == png  # it fits: untouched
    # six teams drawn 1 200 px wide: 80 KB as drawn, 14 KB in 16 colours, as wide
    fewer = shrink_png(png, len(png) - 1)
    assert fewer is not None and len(fewer) < 16_000 and size(fewer) == (width, height)
    with Image.open(io.BytesIO(fewer)) as image:
        assert image.mode == "P" and len(image.getcolors() or ()) <= 16
        shown = {tuple(c) for _, c in image.convert("RGB").getcolors() or ()}
    # the lines keep their colours: some blue and some orange survive the palette
    assert any(b > r + 60 for r, _, b in shown) and any(r > b + 60 for r, _, b in shown)
    narrower = shrink_png(png, 12_000)
    assert narrower is not None and len(narrower) <= 12_000
    w, h = size(narrower)
    assert MIN_WIDTH <= w < width and abs(w / h - width / height) < 0.01  # proportions kept
    assert shrink_png(png, 3_000) is None  # not even at MIN_WIDTH: none rather than a smudge


def size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def test_nothing_to_draw_is_said() -> None:
    with pytest.raises(ValueError, match="nothing to draw"):
        pace_chart([], Formatter("en_US", "USD", PARIS), "Revenue")


@pytest.mark.parametrize(
    ("locale", "days", "amount"),
    [
        ("fr_FR", ["1 oct.", "16 oct.", "31 oct."], "31\u202f000\u00a0€"),
        ("en_US", ["Oct 1", "Oct 16", "Oct 31"], "€31,000"),
    ],
)
def test_the_axes_read_in_the_organisations_language(
    locale: str, days: list[str], amount: str
) -> None:
    figure = pace_figure([path("Lyon", Decimal(31000))], Formatter(locale, "EUR", PARIS), "CA")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == days
    assert ax.yaxis.get_major_formatter()(31000.4, 0) == amount


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
