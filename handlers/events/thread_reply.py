"""A follow-up question in a thread kpibot answered in (``@kpibot revenue`` → "and last
quarter?"): answered in the thread like the mention that started it. Threads kpibot has not
posted in are left alone; a message that mentions kpibot is the mention listener's."""

from __future__ import annotations

from typing import Any

from conversation.grammar import parse_request
from handlers.ports import Clock, Core, Render
from handlers.threads import answer_in_thread

# How far into a thread kpibot looks for its own answer.
THREAD_LOOKUP = 100


def is_thread_reply(event: dict[str, Any], context: dict[str, Any]) -> bool:
    thread = event.get("thread_ts")
    mentions_bot = f"<@{context.get('bot_user_id')}>" in (event.get("text") or "")
    return (
        event.get("channel_type") in ("channel", "group")
        and thread is not None
        and thread != event.get("ts")
        and "subtype" not in event
        and "bot_id" not in event
        and not mentions_bot
    )


def _kpibot_answered(client: Any, channel: str, thread: str, context: dict[str, Any]) -> bool:
    replies = client.conversations_replies(channel=channel, ts=thread, limit=THREAD_LOOKUP)
    ours = {context.get("bot_user_id"), context.get("bot_id")} - {None}
    return any(m.get("user") in ours or m.get("bot_id") in ours for m in replies["messages"])


def thread_reply(
    event: dict[str, Any],
    client: Any,
    context: dict[str, Any],
    *,
    core: Core,
    render: Render,
    clock: Clock,
) -> None:
    channel, user, thread = event["channel"], event["user"], event["thread_ts"]
    if not _kpibot_answered(client, channel, thread, context):
        return
    reply = core.handle(user, parse_request(event.get("text") or ""), clock(), into=channel)
    answer_in_thread(client, channel, user, thread, render.render(reply))
