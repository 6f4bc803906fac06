"""The conversation core's views rendered for the terminal (``kpibot ask``): answers, overviews
and alert lists through the text templates of ``bot.rendering``, the short messages worded by
``bot.wording`` as plain text; and what the scheduled jobs send, for the console surface
(``TextNotificationRenderer``)."""

from __future__ import annotations

from bot.chat_rendering import alert_group_text, resolved_reply
from bot.delivery.surfaces import PictureLeftOut, Rendered
from bot.formatting import Formatter
from bot.rendering import (
    render_alerts_text,
    render_answer_text,
    render_changes_text,
    render_digest_text,
)
from bot.target_list import render_targets_text
from bot.wording import Wording, titled
from conversation.views import (
    AlertGroup,
    AlertList,
    AlertsResolved,
    AnswerView,
    ChangesView,
    Chart,
    Digest,
    Home,
    Notice,
    Outbound,
    Overview,
    Reply,
    TargetList,
    View,
)


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
        case TargetList():
            return render_targets_text(view, fmt)
        case Home():
            return _text(view.content, fmt)
    words = Wording(fmt, markup=False).short(view)
    assert words is not None
    return words


class TextNotificationRenderer:
    """Alert messages, their resolutions, digests and admin notices as plain text."""

    def __init__(self, fmt: Formatter) -> None:
        self.fmt = fmt

    def render(self, view: Outbound) -> Rendered:
        match view:
            case AlertGroup():
                return Rendered(alert_group_text(view, self.fmt, markup=False))
            case AlertsResolved():
                return Rendered(resolved_reply(view, self.fmt, markup=False))
            case Digest():
                return Rendered(render_digest_text(view, self.fmt))
            case Notice():
                return Rendered(Wording(self.fmt, markup=False).notice(view))
            case Chart():
                # A terminal shows no picture: `kpibot digest --dry-run --chart FILE` writes it.
                raise PictureLeftOut("text_only")
