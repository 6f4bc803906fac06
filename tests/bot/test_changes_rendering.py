"""The pipeline waterfall rendered for the terminal and for Slack (golden files in
``test_rendering``): the note when history starts late, and CRM names escaped."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd

from bot.formatting import Formatter
from bot.rendering import render_changes_blocks, render_changes_text
from metrics.scopes import Level, Scope
from metrics.waterfall import PipelineChanges, waterfall, with_names
from tests.metrics.test_waterfall import END, Q4, START


def pipeline_changes(start: pd.DataFrame = START, end: pd.DataFrame = END) -> PipelineChanges:
    teams = [Scope(Level.TEAM, t) for t in ("A", "B", "C")]
    changes = PipelineChanges(
        waterfall=waterfall(start, end, Q4, Scope.company()),
        breakdown=tuple(waterfall(start, end, Q4, team) for team in teams),
        since=date(2026, 11, 23),
        history_from=None,
    )
    # The deals' names as the store gives them: by id, the latest name.
    names = dict(zip(start["id"], start["name"], strict=True))
    return with_names(changes, names | dict(zip(end["id"], end["name"], strict=True)))


def test_the_answer_says_when_history_starts_after_the_day_asked() -> None:
    fmt = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
    later = PipelineChanges(
        pipeline_changes().waterfall, (), date(2026, 11, 1), history_from=date(2026, 11, 20)
    )

    text = render_changes_text(later, fmt)

    assert "Pipeline au 20 nov. 2026" in text
    assert "L'historique commence le 20 nov. 2026, premier import de kpibot" in text


def test_deal_names_are_escaped_for_slack() -> None:
    fmt = Formatter("en_US", "USD", ZoneInfo("Europe/Paris"))
    end = END.copy()
    end.loc[end["name"] == "New", "name"] = "<!channel> & co"

    blocks = render_changes_blocks(pipeline_changes(end=end), fmt)

    created = next(b for b in blocks if "Created" in b.get("text", {}).get("text", ""))
    assert "&lt;!channel&gt; &amp; co (dan)" in created["text"]["text"]
