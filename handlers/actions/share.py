"""``kpi.share``: the answer posted in the channel, computed again for the sharer and that
channel, so it shows only what both may see. A refusal (or a request that shows no data, such
as an admin command) stays with the sharer: the channel sees nothing."""

from __future__ import annotations

from typing import Any

from conversation.grammar import SHAREABLE, parse_request
from handlers.actions.values import button_value
from handlers.ports import Clock, Core, Render

SHARE = "kpi.share"


def share_action(
    ack: Any, body: dict[str, Any], respond: Any, *, core: Core, render: Render, clock: Clock
) -> None:
    ack()
    request = parse_request(button_value(body))
    if request.kind not in SHAREABLE:
        return
    user = body["user"]["id"]
    reply = core.handle(user, request, clock(), into=body["channel"]["id"])
    if reply.refused:
        message = render.render(reply)
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
        return
    message = render.render(reply, shared_by=user)
    respond(text=message.text, blocks=message.blocks, response_type="in_channel")
