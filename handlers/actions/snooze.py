"""``kpi.snooze`` on an alert message: its still-firing alerts silenced for 1 day, 3 days or a
week."""

from __future__ import annotations

from typing import Any

from handlers.actions.values import button_value, clicked_on, show
from handlers.ports import AlertButtons, Clock

SNOOZE = "kpi.snooze"


def snooze_action(
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
    show(client, respond, buttons.snooze(user, button_value(body), clock(), where))
