"""Everything a scheduled job needs, built once per process: settings, the database, the
chat surfaces behind the outbox and the dispatcher that renders for them, the KPI service
(created on first use), the sync source and the two clocks — ``wall_clock`` (real time, for
leases and heartbeats) as opposed to the fire time a job runs for, which is what the job's
business logic sees."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.delivery.console import ConsoleNotifier
from bot.delivery.failures import FailureLog
from bot.delivery.notifier import SLACK, TEAMS, Notifier
from bot.delivery.outbox import Outbox, OutboxNotifier
from bot.delivery.surfaces import Dispatcher, Surface, Surfaces
from bot.formatting import Formatter
from bot.scheduling.claims import Claims
from bot.scheduling.plan import PlannedJob, build_plan
from bot.scheduling.sync import SyncSource, configured_source
from bot.settings import Settings
from bot.slack_render import SlackNotificationRenderer
from bot.store.database import ensure_schema, make_engine
from bot.teams.cards import CardNotifications, CardVersion
from bot.teams.webhook import WEBHOOK, WebhookNotifier
from bot.text_render import TextNotificationRenderer

if TYPE_CHECKING:
    from bot.alerting import UserLookup
    from bot.service import KpiService
    from bot.subscriptions import Subscription

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def process_name() -> str:
    """Unique per process start (a restarted process must not pass for its dead self)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    notifier: OutboxNotifier
    dispatcher: Dispatcher  # what jobs send through: renders, then the outbox
    claims: Claims
    sync_name: str
    sync_source: SyncSource
    wall_clock: Callable[[], datetime] = utc_now
    service_factory: Callable[[], KpiService] | None = None
    # Finds a rep's Slack user for DMs (users.lookupByEmail); None without a bot token.
    users: UserLookup | None = None
    _service: KpiService | None = field(default=None, init=False, repr=False)

    def service(self) -> KpiService:
        if self._service is None:
            if self.service_factory is not None:
                self._service = self.service_factory()
            else:
                from bot.service import KpiService

                self._service = KpiService(self.settings, self.engine)
        return self._service

    def subscriptions(self) -> list[Subscription]:
        from bot.subscriptions import load_subscriptions

        with Session(self.engine) as session:
            return load_subscriptions(self.settings, session)

    def plan(self) -> list[PlannedJob]:
        return build_plan(self.settings, self.subscriptions())


def default_surfaces(
    settings: Settings, notifier: Notifier | None = None, engine: Engine | None = None
) -> Surfaces:
    """The surfaces this process can deliver to. Slack when a bot token is configured, else
    Slack destinations are printed (schedules can be tried out without a workspace);
    ``console:`` destinations are always printed; ``webhook:`` ones are posted to Teams
    Workflows webhooks when ``teams.webhooks`` names any; the Teams bot (``teams:``) when its
    credentials are set and the store (``engine``, where conversations are kept) is given.
    ``notifier`` replaces Slack's (tests)."""
    fmt = Formatter.for_organisation(settings.organisation)
    console = Surface(TextNotificationRenderer(fmt), ConsoleNotifier())
    if notifier is not None:
        slack = Surface(SlackNotificationRenderer(fmt), notifier)
    elif settings.secrets.slack_bot_token:
        from bot.delivery.slack import SlackNotifier
        from bot.delivery.slack_client import delivery_client

        slack = Surface(SlackNotificationRenderer(fmt), SlackNotifier(delivery_client(settings)))
    else:
        log.warning("SLACK_BOT_TOKEN is not set: messages are printed, not posted")
        slack = console
    surfaces = {SLACK: slack, "console": console}
    if settings.config.teams.webhooks:
        cards = CardNotifications(fmt, CardVersion.WEBHOOK)
        surfaces[WEBHOOK] = Surface(cards, WebhookNotifier(settings.secrets.teams_webhooks))
    # Checked before importing the Teams SDK, which every scheduler process would pay for.
    if engine is not None and settings.secrets.teams_client_id:
        from bot.teams.app import teams_surface

        teams = teams_surface(settings, engine)
        if teams is not None:
            surfaces[TEAMS] = teams
    return Surfaces(surfaces)


def build_runtime(
    settings: Settings,
    *,
    notifier: Notifier | None = None,
    engine: Engine | None = None,
    wall_clock: Callable[[], datetime] = utc_now,
    owner: str | None = None,
    sync_source: tuple[str, SyncSource] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Runtime:
    engine = engine or make_engine(settings.database_url)
    ensure_schema(engine)
    owner = owner or process_name()
    lease = settings.config.scheduling.claim_lease
    failures = FailureLog(engine, wall_clock)
    surfaces = default_surfaces(settings, notifier, engine)
    outbox_notifier = OutboxNotifier(
        surfaces=surfaces,
        outbox=Outbox(engine, owner, wall_clock, lease),
        policy=settings.config.delivery,
        failures=failures,
        admin_channel=settings.config.slack.notices_channel,
    )
    if sleep is not None:
        outbox_notifier.sleep = sleep
    name, source = sync_source or configured_source(settings)
    users = None
    if settings.secrets.slack_bot_token:
        from bot.delivery.slack_client import slack_client
        from bot.slack_users import SlackUsers
        from bot.store.database import session_factory

        users = SlackUsers(
            slack_client(settings), session_factory(engine), settings.config.slack.rep_users
        ).user_for
    return Runtime(
        settings=settings,
        engine=engine,
        notifier=outbox_notifier,
        dispatcher=Dispatcher(surfaces, outbox_notifier),
        claims=Claims(engine, owner, wall_clock, lease),
        sync_name=name,
        sync_source=source,
        wall_clock=wall_clock,
        users=users,
    )
