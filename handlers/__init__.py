"""Chat listeners only: the ``/kpi`` command, the buttons (``kpi.share``, ``kpi.ack``,
``kpi.snooze``) and App Home. Each listener is a plain function that Bolt calls with the
arguments it names (``ack``, ``command``, ``respond``, ``body``, ``client``...); the desk that
answers and the clock are keyword-only, bound with ``functools.partial`` by ``register``.

Nothing here imports ``bot``: the desk is described by the ``KpiDesk`` protocol
(``handlers.ports``) and handed in by ``bot.slack_app``."""

from __future__ import annotations

from typing import Any

from handlers import actions, commands, home
from handlers.ports import Clock, KpiDesk


def register(app: Any, *, desk: KpiDesk, clock: Clock) -> None:
    commands.register(app, desk=desk, clock=clock)
    actions.register(app, desk=desk, clock=clock)
    home.register(app, desk=desk, clock=clock)
