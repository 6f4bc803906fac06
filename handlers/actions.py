"""The buttons: ``kpi.share`` re-posts an answer in the channel (computed again for the
sharer, so it shows only what they may see); ``kpi.ack`` and ``kpi.snooze`` act on an alert
message and put the re-rendered message in its place."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.kpi_text import SHAREABLE, parse_command, run
from handlers.ports import Clock, KpiDesk, MessageRef, MessageUpdate, Reply

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
    reply = run(desk, body["user"]["id"], command, clock(), into=body["channel"]["id"])
    # A refusal stays with the sharer: the channel sees nothing.
    visibility = "ephemeral" if reply.refused else "in_channel"
    respond(text=reply.text, blocks=reply.blocks, response_type=visibility)


def _clicked_on(body: dict[str, Any]) -> MessageRef:
    container = body.get("container") or {}
    return MessageRef(str(container.get("channel_id", "")), str(container.get("message_ts", "")))


def _replace(client: Any, respond: Any, outcome: MessageUpdate | Reply | None) -> None:
    if isinstance(outcome, Reply):
        respond(text=outcome.text, blocks=outcome.blocks, response_type="ephemeral")
    elif outcome is not None:
        client.chat_update(
            channel=outcome.channel, ts=outcome.ts, text=outcome.text, blocks=outcome.blocks
        )


def ack_action(
    ack: Any, body: dict[str, Any], client: Any, respond: Any, *, desk: KpiDesk, clock: Clock
) -> None:
    ack()
    user, where = body["user"]["id"], _clicked_on(body)
    _replace(client, respond, desk.acknowledge_alerts(user, _value(body), clock(), where))


def snooze_action(
    ack: Any, body: dict[str, Any], client: Any, respond: Any, *, desk: KpiDesk, clock: Clock
) -> None:
    ack()
    user, where = body["user"]["id"], _clicked_on(body)
    _replace(client, respond, desk.snooze_alerts(user, _value(body), clock(), where))


def register(app: Any, *, desk: KpiDesk, clock: Clock) -> None:
    app.action(SHARE)(partial(share_action, desk=desk, clock=clock))
    app.action(ACK)(partial(ack_action, desk=desk, clock=clock))
    app.action(SNOOZE)(partial(snooze_action, desk=desk, clock=clock))
