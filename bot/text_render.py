"""The conversation core's views rendered for the terminal (``kpibot ask``): answers, overviews
and alert lists through the text templates of ``bot.rendering``, the short messages worded by
``bot.wording`` as plain text."""

from __future__ import annotations

from bot.formatting import Formatter
from bot.rendering import (
    render_alerts_text,
    render_answer_text,
    render_changes_text,
    render_digest_text,
)
from bot.wording import Wording, titled
from conversation.views import AlertList, AnswerView, ChangesView, Home, Overview, Reply, View


def render_text(reply: Reply, fmt: Formatter) -> str:
    return _text(reply.view, fmt)


def _text(view: View, fmt: Formatter) -> str:
    match view:
        case AnswerView():
            return render_answer_text(view.answer, fmt)
        case ChangesView():
            return render_changes_text(view.changes, fmt)
        case Overview():
            return render_digest_text(titled(view.digest, fmt), fmt)
        case AlertList():
            return render_alerts_text(view.alerts, fmt)
        case Home():
            return _text(view.content, fmt)
    words = Wording(fmt, markup=False).short(view)
    assert words is not None
    return words
