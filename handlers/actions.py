"""The buttons: ``kpi.share`` re-posts an answer in the channel (computed again for the
sharer, so it shows only what they may see); ``kpi.ack`` and ``kpi.snooze`` act on an alert
message and put the re-rendered message in its place."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.kpi_text import SHAREABLE, parse_command, run
from handlers.ports import Clock, KpiDesk, MessageUpdate

SHARE = "kpi.share"
ACK = "kpi.ack"
SNOOZE = "kpi.snooze"


def _value(body: dict[str, Any]) -> str:
    action = body["actions"][0]
    selected = action.get("selected_option")
    return str(selected["value"] if selected else action.get("value", ""))


def share_action(
    ack: Any, body: dict[str, Any], respond: Any, *, desk: KpiDesk, clock: Clock
) -> None:
    ack()
    command = parse_command(_value(body))
    if command.kind not in SHAREABLE:
        return
    reply = run(desk, body["user"]["id"], command, clock(), shared=True)
    respond(text=reply.text, blocks=reply.blocks, response_type="in_channel")


def _replace(client: Any, update: MessageUpdate | None) -> None:
    if update is not None:
        client.chat_update(
            channel=update.channel, ts=update.ts, text=update.text, blocks=update.blocks
        )


def ack_action(ack: Any, body: dict[str, Any], client: Any, *, desk: KpiDesk, clock: Clock) -> None:
    ack()
    _replace(client, desk.acknowledge_alerts(body["user"]["id"], _value(body), clock()))


def snooze_action(
    ack: Any, body: dict[str, Any], client: Any, *, desk: KpiDesk, clock: Clock
) -> None:
    ack()
    _replace(client, desk.snooze_alerts(body["user"]["id"], _value(body), clock()))


def register(app: Any, *, desk: KpiDesk, clock: Clock) -> None:
    app.action(SHARE)(partial(share_action, desk=desk, clock=clock))
    app.action(ACK)(partial(ack_action, desk=desk, clock=clock))
    app.action(SNOOZE)(partial(snooze_action, desk=desk, clock=clock))
