"""Every surface shows an answer's sparkline of the last periods, the same one: Slack blocks,
the terminal, Teams cards (an answer, a digest row, a Workflows webhook's digest)."""

from __future__ import annotations

import json

import pytest

from bot.rendering import (
    render_answer_blocks,
    render_answer_text,
    render_digest_blocks,
    render_digest_text,
    sparkline,
)
from bot.teams.cards import CardNotifications, CardRenderer, CardVersion
from conversation.views import AnswerView, Reply
from tests.bot.test_rendering import digest, formatter, revenue_answer


@pytest.mark.parametrize("locale", ["fr_FR", "en_US"])
def test_every_surface_carries_the_answers_sparkline(locale: str) -> None:
    fmt = formatter(locale)
    answer = revenue_answer()
    line = sparkline(answer.trend)
    # the last periods, oldest first; the period without data is a gap, not a zero
    assert line is not None and len(line) == len(answer.trend)
    assert line[0] == " " and set(line[1:]) <= set("▁▂▃▄▅▆▇█")
    card = CardRenderer(fmt).render(Reply(AnswerView(answer, "revenue"))).card
    shown = {
        "slack answer": json.dumps(render_answer_blocks(answer, fmt), ensure_ascii=False),
        "terminal answer": render_answer_text(answer, fmt),
        "teams answer": json.dumps(card, ensure_ascii=False),
        "slack digest": json.dumps(render_digest_blocks(digest(locale), fmt), ensure_ascii=False),
        "terminal digest": render_digest_text(digest(locale), fmt),
        **{
            f"teams digest {version.value}": json.dumps(
                CardNotifications(fmt, version).render(digest(locale)).body, ensure_ascii=False
            )
            for version in CardVersion
        },
    }
    assert [where for where, text in shown.items() if line not in text] == []
