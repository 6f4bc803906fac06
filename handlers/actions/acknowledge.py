"""``kpi.ack`` on an alert message: who took the alerts in hand, shown on the message."""

from __future__ import annotations

from typing import Any

from handlers.actions.values import button_value, clicked_on, show
from handlers.ports import AlertButtons, Clock

ACK = "kpi.ack"


def ack_action(
    ack: Any,
    body: dict[str, Any],
    client: Any,
    respond: Any,
    *,
    buttons: AlertButtons,
    clock: Clock,
) -> None:
    ack()
    user, where = body["user"]["id"], clicked_on(body)
    show(client, respond, buttons.acknowledge(user, button_value(body), clock(), where))
