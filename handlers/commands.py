"""The ``/kpi`` slash command: acknowledged at once, answered through ``respond``, ephemeral."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.kpi_text import parse_command, run
from handlers.ports import Clock, KpiDesk

COMMAND = "/kpi"


def kpi_command(
    ack: Any, command: dict[str, Any], respond: Any, *, desk: KpiDesk, clock: Clock
) -> None:
    # Slack gives up after 3 s: acknowledge before touching any data.
    ack()
    reply = run(desk, command["user_id"], parse_command(command.get("text") or ""), clock())
    respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")


def register(app: Any, *, desk: KpiDesk, clock: Clock) -> None:
    app.command(COMMAND)(partial(kpi_command, desk=desk, clock=clock))
