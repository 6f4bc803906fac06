"""Slash commands: ``/kpi``."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.commands.kpi import COMMAND, kpi_command
from handlers.ports import Clock, Core, Render


def register(app: Any, *, core: Core, render: Render, clock: Clock) -> None:
    app.command(COMMAND)(partial(kpi_command, core=core, render=render, clock=clock))
