"""``/kpi``: acknowledged at once, answered through ``respond``, ephemeral, with a button to
share a data answer in the channel."""

from __future__ import annotations

from typing import Any

from conversation.grammar import parse_request
from handlers.ports import Clock, Core, Render

COMMAND = "/kpi"


def kpi_command(
    ack: Any, command: dict[str, Any], respond: Any, *, core: Core, render: Render, clock: Clock
) -> None:
    # Slack gives up after 3 s: acknowledge before touching any data.
    ack()
    reply = core.handle(command["user_id"], parse_request(command.get("text") or ""), clock())
    message = render.render(reply, share=True)
    respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
