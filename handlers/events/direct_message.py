"""A direct message to kpibot (the Messages tab): answered in the conversation, in the thread
if the question was asked in one. The asker alone reads it."""

from __future__ import annotations

from typing import Any

from conversation.grammar import parse_request
from handlers.ports import Clock, Core, Render


def is_direct_message(event: dict[str, Any]) -> bool:
    # Edits, deletions and bot posts (kpibot's own answers included) carry a subtype or bot_id.
    return event.get("channel_type") == "im" and "subtype" not in event and "bot_id" not in event


def direct_message(
    event: dict[str, Any], client: Any, *, core: Core, render: Render, clock: Clock
) -> None:
    reply = core.handle(event["user"], parse_request(event.get("text") or ""), clock())
    message = render.render(reply)
    client.chat_postMessage(
        channel=event["channel"],
        text=message.text,
        blocks=message.blocks,
        thread_ts=event.get("thread_ts"),
        unfurl_links=False,
    )
