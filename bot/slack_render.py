"""The conversation core's views (``conversation.views``) rendered for Slack: answers, overviews
and alert lists through the Block Kit templates of ``bot.rendering``, the short messages
(help, refusals, confirmations, lists) worded by ``bot.wording`` as validated mrkdwn sections;
and what the scheduled jobs send (``SlackNotificationRenderer``, the Slack surface's renderer
in ``bot.delivery.surfaces``). CRM text is escaped."""

from __future__ import annotations

from typing import Any

from bot.chat_rendering import (
    Blocks,
    alert_group_text,
    render_alert_group,
    resolved_reply,
    text_blocks,
)
from bot.delivery.surfaces import Rendered
from bot.formatting import Formatter
from bot.rendering import (
    MAX_BLOCKS,
    entity_escape,
    mrkdwn_escape,
    render_alerts_blocks,
    render_alerts_text,
    render_answer_blocks,
    render_answer_text,
    render_changes_blocks,
    render_changes_text,
    render_digest_blocks,
    render_digest_text,
)
from bot.target_list import render_targets_blocks, render_targets_text
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
from handlers.ports import SlackMessage

SHARE = "kpi.share"
# Slack shows the fallback in notifications and truncates long ones; the blocks carry the rest.
FALLBACK_CHARS = 3000


def fallback_text(text: str) -> str:
    escaped = mrkdwn_escape(text)
    return escaped if len(escaped) <= FALLBACK_CHARS else escaped[: FALLBACK_CHARS - 1] + "…"


class SlackRenderer:
    def __init__(self, fmt: Formatter) -> None:
        self.fmt = fmt
        self.words = Wording(fmt)

    def _content(self, view: View) -> tuple[str, Blocks]:
        match view:
            case AnswerView():
                answer = view.answer
                text = entity_escape(render_answer_text(answer, self.fmt))
                return text, render_answer_blocks(answer, self.fmt)
            case ChangesView():
                text = entity_escape(render_changes_text(view.changes, self.fmt))
                return text, render_changes_blocks(view.changes, self.fmt)
            case Overview():
                digest = titled(view.digest, self.fmt)
                text = entity_escape(render_digest_text(digest, self.fmt))
                return text, render_digest_blocks(digest, self.fmt)
            case AlertList():
                text = entity_escape(render_alerts_text(view.alerts, self.fmt))
                return text, render_alerts_blocks(view.alerts, self.fmt)
            case TargetList():
                text = entity_escape(render_targets_text(view, self.fmt))
                return text, render_targets_blocks(view, self.fmt)
            case Home():
                return self._content(view.content)
        words = self.words.short(view)
        assert words is not None
        return words, text_blocks(words, self.fmt)

    def render(
        self, reply: Reply, *, share: bool = False, shared_by: str | None = None
    ) -> SlackMessage:
        """``reply`` as a message. ``share`` adds a "Share in channel" button to the views that
        show data (it replays the request for the sharer); ``shared_by`` says who shared."""
        text, blocks = self._content(reply.view)
        extra: list[dict[str, Any]] = []
        request = getattr(reply.view, "request", None)
        if shared_by is not None:
            note = self.fmt.t("shared_by", user=f"<@{shared_by}>")
            extra.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        elif share and request:
            extra.append(
                {
                    "type": "actions",
                    "block_id": SHARE,
                    "elements": [
                        {
                            "type": "button",
                            "action_id": SHARE,
                            "text": {"type": "plain_text", "text": self.fmt.t("share")},
                            "value": str(request)[:2000],
                        }
                    ],
                }
            )
        if reply.setup_hint is not None:
            hint = self.words.setup_hint(reply.setup_hint)
            extra.extend(text_blocks(hint, self.fmt))
        blocks = [*blocks[: MAX_BLOCKS - len(extra)], *extra]
        return SlackMessage(text, blocks, refused=reply.refused)

    def home(self, reply: Reply) -> dict[str, Any]:
        """A ``Home`` reply as an App Home view."""
        header = {
            "type": "header",
            "text": {"type": "plain_text", "text": self.fmt.t("home.title")},
        }
        return {"type": "home", "blocks": [header, *self.render(reply).blocks][:MAX_BLOCKS]}

    def apology(self) -> SlackMessage:
        text = self.fmt.t("oops")
        return SlackMessage(text, text_blocks(text, self.fmt), refused=True)


class SlackNotificationRenderer:
    """Alert messages, their resolutions, digests and admin notices as Slack messages: Block
    Kit blocks and a mrkdwn fallback."""

    def __init__(self, fmt: Formatter) -> None:
        self.fmt = fmt
        self.words = Wording(fmt)

    def render(self, view: Outbound) -> Rendered:
        match view:
            case AlertGroup():
                return Rendered(
                    alert_group_text(view, self.fmt), render_alert_group(view, self.fmt)
                )
            case AlertsResolved():
                text = resolved_reply(view, self.fmt)
                return Rendered(text, text_blocks(text, self.fmt))
            case Digest():
                text = fallback_text(render_digest_text(view, self.fmt))
                return Rendered(text, render_digest_blocks(view, self.fmt))
            case Notice():
                return Rendered(self.words.notice(view))
            case Chart():
                # Shared as a file in the thread (bot.delivery.slack), titled and described.
                file = {"title": view.title, "alt_txt": view.alt}
                return Rendered(view.title, {"file": file}, view.png)
