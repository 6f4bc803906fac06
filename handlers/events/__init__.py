"""Events: direct messages (``message.im``), @mentions (``app_mention``), follow-ups in the
threads kpibot answered (``message.channels``/``message.groups``) and App Home. A message event
goes to the first listener whose matcher accepts it; the last one takes the rest."""

from __future__ import annotations

from functools import partial
from typing import Any

from handlers.events.app_home_opened import app_home_opened
from handlers.events.app_mention import app_mention
from handlers.events.direct_message import direct_message, is_direct_message
from handlers.events.other_message import other_message
from handlers.events.thread_reply import is_thread_reply, thread_reply
from handlers.ports import Clock, Core, Render


def register(app: Any, *, core: Core, render: Render, clock: Clock) -> None:
    dm = partial(direct_message, core=core, render=render, clock=clock)
    app.event("message", matchers=[is_direct_message])(dm)
    follow_up = partial(thread_reply, core=core, render=render, clock=clock)
    app.event("message", matchers=[is_thread_reply])(follow_up)
    app.event("message")(other_message)
    app.event("app_mention")(partial(app_mention, core=core, render=render, clock=clock))
    app.event("app_home_opened")(partial(app_home_opened, core=core, render=render, clock=clock))
