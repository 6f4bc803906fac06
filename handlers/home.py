"""App Home: the user's own dashboard, published each time they open the app."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.ports import Clock, KpiDesk


def app_home_opened(event: dict[str, Any], client: Any, *, desk: KpiDesk, clock: Clock) -> None:
    if event.get("tab", "home") != "home":
        return
    user_id = event["user"]
    client.views_publish(user_id=user_id, view=desk.home(user_id, clock()))


def register(app: Any, *, desk: KpiDesk, clock: Clock) -> None:
    app.event("app_home_opened")(partial(app_home_opened, desk=desk, clock=clock))
