"""``@kpibot revenue team Lyon last quarter`` in a channel: answered in a thread under the
mention, for the whole channel to read, so only what both the asker and the channel may see;
a refusal goes to the asker alone (ephemeral)."""

from __future__ import annotations

from typing import Any

from conversation.grammar import parse_request
from handlers.ports import Clock, Core, Render
from handlers.threads import answer_in_thread


def app_mention(
    event: dict[str, Any], client: Any, *, core: Core, render: Render, clock: Clock
) -> None:
    channel, user = event["channel"], event["user"]
    request = parse_request(event.get("text") or "")
    reply = core.handle(user, request, clock(), into=channel)
    thread = event.get("thread_ts") or event["ts"]
    answer_in_thread(client, channel, user, thread, render.render(reply))
