"""App Home: the user's own dashboard, published each time they open the app."""

from __future__ import annotations

from typing import Any

from handlers.ports import Clock, Core, Render


def app_home_opened(
    event: dict[str, Any], client: Any, *, core: Core, render: Render, clock: Clock
) -> None:
    if event.get("tab", "home") != "home":
        return
    user_id = event["user"]
    client.views_publish(user_id=user_id, view=render.home(core.home(user_id, clock())))
