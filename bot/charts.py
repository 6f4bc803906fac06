"""The digest's pictures: revenue to date against the target's pace line for the quarter, one
small chart per team (or the one scope of a team digest); and the pipeline's waterfall, a
bar from the starting pipeline, one floating bar per movement, a bar for the pipeline now.
matplotlib's Agg canvas, no display and no pyplot state; dates and amounts are formatted by the
organisation's ``Formatter``.

The digest's chart is a view (``conversation.views.Chart``: title, description, PNG) that
``bot.digests.post_digest_chart`` sends in the digest's thread through the outbox, under the
key ``<digest key>:chart``; each surface shows it its own way (Slack: a file shared with
``files_upload_v2``; Teams: a card's Image; a Workflows webhook: the same, shrunk to its
payload limit by ``bot.teams.pictures.shrink_png``, which needs Pillow but not matplotlib, or
nothing). A digest that carries the waterfall posts its picture the same way
(``waterfall_digest_chart``), under ``<digest key>:waterfall``."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot.formatting import Formatter
from conversation.views import Chart
from metrics.kpis import KPIS
from metrics.pace import PacePath
from metrics.scopes import Level
from metrics.waterfall import PipelineChanges

COLUMNS = 3
BOOKED, PACE = "#1f77b4", "#ff7f0e"
LEVEL, UP, DOWN = "#1f77b4", "#2ca02c", "#d62728"


def pace_chart(paths: Sequence[PacePath], fmt: Formatter, title: str) -> bytes:
    """A PNG of ``paths`` as small multiples sharing nothing but the legend: each team is read
    against its own target."""
    out = io.BytesIO()
    pace_figure(paths, fmt, title).savefig(out, format="png")
    return out.getvalue()


def pace_figure(paths: Sequence[PacePath], fmt: Formatter, title: str) -> Figure:
    """The figure ``pace_chart`` draws: days and amounts on its axes in the organisation's
    formats (``Formatter.day_month``, ``Formatter.money``)."""
    if not paths:
        raise ValueError("nothing to draw: no scope has a revenue path")
    columns = min(COLUMNS, len(paths))
    rows = math.ceil(len(paths) / columns)
    figure = Figure(figsize=(4 * columns, 2.8 * rows + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    axes = figure.subplots(rows, columns, squeeze=False)
    money = FuncFormatter(lambda y, _pos: fmt.money(_decimal(y)))
    for index, ax in enumerate(axes.flat):
        if index >= len(paths):
            ax.set_visible(False)
            continue
        path = paths[index]
        scope = path.scope.name if path.scope.level is not Level.COMPANY else fmt.scope(path.scope)
        ax.set_title(scope, fontsize=10)
        x = range(len(path.days))
        ax.plot(range(len(path.booked)), [float(v) for v in path.booked], color=BOOKED,
                label=fmt.t("actual"))  # fmt: skip
        if path.expected is not None:
            ax.plot(x, [float(v) for v in path.expected], color=PACE, linestyle="--",
                    label=fmt.t("expected"))  # fmt: skip
        ticks = [0, len(path.days) // 2, len(path.days) - 1]
        ax.set_xticks(ticks, [fmt.day_month(path.days[t]) for t in ticks], fontsize=8)
        ax.yaxis.set_major_formatter(money)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)
    return figure


@dataclass(frozen=True)
class Bar:
    """One bar of a waterfall chart: from ``bottom`` up by ``height`` (money, never negative)."""

    label: str
    bottom: Decimal
    height: Decimal
    color: str


def waterfall_bars(changes: PipelineChanges, fmt: Formatter) -> list[Bar]:
    """The bars of the scope's waterfall: the start, each movement that moved a deal (rising
    from the running total, or falling to it), then the end, which the last movement reaches."""
    whole = changes.waterfall

    def money(minor: int) -> Decimal:
        return Decimal(minor).scaleb(-changes.minor_digits)

    started = fmt.day_month(changes.history_from or changes.since)
    bars = [Bar(fmt.t("changes.start", date=started), Decimal(0), money(whole.start), LEVEL)]
    running = money(whole.start)
    for step in whole.steps:
        if not step.count:
            continue
        amount = money(step.amount)
        bottom = min(running, running + amount)
        color = UP if amount >= 0 else DOWN
        bars.append(Bar(fmt.t(f"movement.{step.movement.value}"), bottom, abs(amount), color))
        running += amount
    bars.append(Bar(fmt.t("changes.end"), Decimal(0), money(whole.end), LEVEL))
    return bars


def waterfall_chart(changes: PipelineChanges, fmt: Formatter, title: str) -> bytes:
    """A PNG of the waterfall's bars, labelled with the movements' names."""
    bars = waterfall_bars(changes, fmt)
    figure = Figure(figsize=(1.1 * len(bars) + 2, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    ax = figure.subplots()
    x = range(len(bars))
    ax.bar(x, [float(b.height) for b in bars], bottom=[float(b.bottom) for b in bars],
           color=[b.color for b in bars])  # fmt: skip
    ax.set_xticks(x, [b.label for b in bars], fontsize=8, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt.money(_decimal(y))))
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _decimal(value: float) -> Decimal:
    # Axis ticks are numpy floats; whole units are all an axis needs.
    return Decimal(round(float(value)))


def chart_title(paths: Sequence[PacePath], fmt: Formatter) -> str:
    """ "Chiffre d'affaires · T4 2026"."""
    return f"{fmt.kpi_label(KPIS['revenue'])}{fmt.t('sep')}{fmt.period(paths[0].period)}"


def chart_key(digest_key: str, name: str = "chart") -> str:
    """A digest's picture's idempotency key: its digest's and the picture's name, so that one
    digest shares each picture once."""
    return f"{digest_key}:{name}"


def digest_chart(paths: Sequence[PacePath], fmt: Formatter) -> Chart:
    """Revenue against its pace line as a view: the PNG, its title, and what it shows for
    screen readers."""
    title = chart_title(paths, fmt)
    return Chart(title, fmt.t("chart.alt", title=title), pace_chart(paths, fmt, title))


def waterfall_digest_chart(changes: PipelineChanges, fmt: Formatter, title: str) -> Chart:
    """The pipeline's waterfall as a view, like ``digest_chart``: the PNG, ``title`` (the
    waterfall's own), and what it shows for screen readers."""
    alt = fmt.t("chart.waterfall_alt", title=title)
    return Chart(title, alt, waterfall_chart(changes, fmt, title))
