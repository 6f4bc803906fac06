"""The Bolt app: built from the settings, the KPI service and a ``WebClient`` whose base URL
comes from ``settings.slack_api_url``; listeners from ``handlers``; one ``@app.error`` handler.

Bolt does not check signatures here: in HTTP mode ``bot.http_app`` verifies every request (and
its shape) before dispatching it, and Socket Mode requests are not signed.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

import handlers
from bot.access import rep_teams, reps_by_email, viewer_for
from bot.chat_rendering import alert_group_text, render_alert_group
from bot.core import ConversationCore, Identify
from bot.delivery.slack_client import slack_client
from bot.formatting import Formatter
from bot.service import KpiService
from bot.settings import Settings
from bot.slack_render import SlackRenderer
from bot.slack_users import SlackUsers
from bot.store.database import session_factory
from conversation.authorization import Action, Viewer
from conversation.views import Reply
from handlers.ports import MessageRef, MessageUpdate, SlackMessage

if TYPE_CHECKING:
    from bot.scheduling.runtime import Runtime

logger = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
_SECRET = re.compile(r"\b(xox[abposr]|xapp|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]+")


def redact(text: str) -> str:
    """Slack tokens masked, for anything that goes into a log or a message."""
    return _SECRET.sub(lambda m: f"{m.group(1)}-***", text)


def on_error(
    error: Exception, body: dict[str, Any], respond: Any, *, render: SlackRenderer
) -> None:
    """The one place errors land: logged with their traceback (tokens masked), and the user
    gets a polite answer instead of Slack's "dispatch_failed"."""
    trace = "".join(traceback.format_exception(error))
    logger.error("error handling a Slack request: %s", redact(trace))
    if respond is not None and body.get("response_url"):
        message = render.apology()
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral")


def slack_identify(service: KpiService, users: SlackUsers) -> Identify:
    """Who a Slack user is: their email from ``users.info`` (cached) matched against the
    config's ``access`` section and the CRM's reps."""

    def identify(user_id: str, now: datetime) -> Viewer:
        facts = service.snapshot().facts
        # The email is needed even for users listed by id: it is what matches them to a rep.
        email = users.email_of(user_id, now)
        access = service.settings.config.access
        return viewer_for(access, user_id, email, reps_by_email(facts), rep_teams(facts))

    return identify


class SlackAlertButtons:
    """Acknowledge and Snooze as Slack buttons: the core decides and records
    (``ConversationCore.act_on_alerts``, shared with every surface); this draws the outcome."""

    def __init__(self, core: ConversationCore, render: SlackRenderer, fmt: Formatter) -> None:
        self.core = core
        self.render = render
        self.fmt = fmt

    def _act(
        self, user_id: str, action: Action, value: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | SlackMessage | None:
        outcome = self.core.act_on_alerts(user_id, action, value, now, where.channel, where.ts)
        if isinstance(outcome, Reply):
            return self.render.render(outcome)
        if outcome is None:
            return None
        text = alert_group_text(outcome.group, self.fmt)
        blocks = render_alert_group(outcome.group, self.fmt)
        return MessageUpdate(outcome.channel, outcome.ts, text, blocks)

    def acknowledge(
        self, user_id: str, key: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | SlackMessage | None:
        return self._act(user_id, Action.ACKNOWLEDGE, key, now, where)

    def snooze(
        self, user_id: str, value: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | SlackMessage | None:
        return self._act(user_id, Action.SNOOZE, value, now, where)


def scheduler_sync(settings: Settings, service: KpiService) -> Callable[[datetime], str]:
    """``/kpi sync``: the scheduler's own sync job (``bot.scheduling.jobs.sync``), run now, so
    that a sync from chat is recorded and clears a stale-data notice like a scheduled one. The
    runtime is built on first use, with the scheduler's own notifier (the outbox retries its
    messages, not the app's client); one sync at a time in this process."""
    lock = threading.Lock()
    runtimes: list[Runtime] = []

    def run(now: datetime) -> str:
        from bot.scheduling.jobs import sync
        from bot.scheduling.runtime import build_runtime

        with lock:
            if not runtimes:
                runtimes.append(build_runtime(settings, engine=service.engine))
            summary = sync(runtimes[0], now)
        # "Done" once this process answers from what the sync wrote, not before.
        service.catch_up()
        return summary

    return run


def build_app(
    settings: Settings,
    service: KpiService,
    *,
    client: WebClient | None = None,
    clock: Callable[[], datetime] | None = None,
    sync: Callable[[datetime], str] | None = None,
) -> App:
    client = client or slack_client(settings)
    sessions = session_factory(service.engine)
    users = SlackUsers(client, sessions, settings.config.slack.rep_users)
    core = ConversationCore(
        service,
        slack_identify(service, users),
        sessions,
        sync=sync or scheduler_sync(settings, service),
    )
    fmt = Formatter.for_organisation(settings.organisation)
    render = SlackRenderer(fmt)
    app = App(
        client=client,
        request_verification_enabled=False,
        # Answers are computed after ack() (Slack's 3 s): listeners run in Bolt's thread pool.
        process_before_response=False,
        logger=logging.getLogger("kpibot.slack"),
    )

    def error_handler(error: Exception, body: dict[str, Any], respond: Any) -> BoltResponse | None:
        on_error(error, body, respond, render=render)
        return None

    app.error(error_handler)
    handlers.register(
        app,
        core=core,
        render=render,
        buttons=SlackAlertButtons(core, render, fmt),
        clock=clock or (lambda: datetime.now(UTC)),
    )
    return app
