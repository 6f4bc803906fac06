"""Buttons: ``kpi.share`` on answers, ``kpi.ack`` and ``kpi.snooze`` on alert messages."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.actions.acknowledge import ACK, ack_action
from handlers.actions.share import SHARE, share_action
from handlers.actions.snooze import SNOOZE, snooze_action
from handlers.ports import AlertButtons, Clock, Core, Render


def register(app: Any, *, core: Core, render: Render, buttons: AlertButtons, clock: Clock) -> None:
    app.action(SHARE)(partial(share_action, core=core, render=render, clock=clock))
    app.action(ACK)(partial(ack_action, buttons=buttons, clock=clock))
    app.action(SNOOZE)(partial(snooze_action, buttons=buttons, clock=clock))
