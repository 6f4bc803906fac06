"""Slack listeners only, one plain function per file, each ack → parse → core → render →
respond: the ``/kpi`` command (``commands``), direct messages, @mentions, thread follow-ups and
App Home (``events``), the buttons (``actions``). Bolt calls each with the arguments it names
(``ack``, ``command``, ``respond``, ``event``, ``client``...); the core, the renderer and the
clock are keyword-only, bound with ``functools.partial`` by the ``register`` functions.

Nothing here imports ``bot``: the core and the renderer are described by ``handlers.ports`` and
handed in by ``bot.slack_app``; requests and views are ``conversation``'s."""

from __future__ import annotations

from typing import Any

from handlers import actions, commands, events
from handlers.ports import AlertButtons, Clock, Core, Render


def register(app: Any, *, core: Core, render: Render, buttons: AlertButtons, clock: Clock) -> None:
    commands.register(app, core=core, render=render, clock=clock)
    events.register(app, core=core, render=render, clock=clock)
    actions.register(app, core=core, render=render, buttons=buttons, clock=clock)
