"""The Teams bot assembled from the settings: credentials from the environment only
(``TEAMS_CLIENT_ID``, ``TEAMS_CLIENT_SECRET``, ``TEAMS_TENANT_ID``), Microsoft's endpoints
(replaceable for tests), the conversation core with Teams identities, and the
``/api/messages`` route that ``kpibot serve`` mounts beside Slack's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from starlette.routing import Route

from bot.core import ConversationCore
from bot.delivery.surfaces import Surface
from bot.formatting import Formatter
from bot.service import KpiService
from bot.settings import Settings
from bot.slack_app import scheduler_sync
from bot.store.database import session_factory
from bot.teams.auth import OPENID_METADATA_URL, BotFrameworkAuth
from bot.teams.bot import TeamsBot
from bot.teams.cards import CardNotifications, CardRenderer, CardVersion
from bot.teams.connector import LOGIN_URL, Connector, TeamsCredentials
from bot.teams.http import messages_route
from bot.teams.notifier import TeamsBotNotifier
from bot.teams.users import TeamsUsers

logger = logging.getLogger(__name__)


class TeamsNotConfigured(Exception):
    """What is missing to run the Teams bot, naming the variables."""


def credentials(settings: Settings) -> TeamsCredentials | None:
    """The bot's credentials, or None when Teams is not configured at all."""
    secrets = settings.secrets
    if not secrets.teams_bot_set:
        return None
    if not secrets.teams_client_id or not secrets.teams_client_secret:
        missing = "TEAMS_CLIENT_ID" if not secrets.teams_client_id else "TEAMS_CLIENT_SECRET"
        raise TeamsNotConfigured(
            f"{missing} is not set: the Teams bot needs TEAMS_CLIENT_ID and TEAMS_CLIENT_SECRET "
            "(Azure Bot → Configuration: Microsoft App ID, and a client secret of that app)"
        )
    return TeamsCredentials(
        secrets.teams_client_id, secrets.teams_client_secret, secrets.teams_tenant_id
    )


def connector(settings: Settings, creds: TeamsCredentials) -> Connector:
    return Connector(creds, login_url=settings.teams_login_url or LOGIN_URL)


def build_teams_bot(
    settings: Settings,
    service: KpiService,
    creds: TeamsCredentials,
    *,
    clock: Callable[[], datetime] | None = None,
    sync: Callable[[datetime], str] | None = None,
) -> TeamsBot:
    sessions = session_factory(service.engine)
    bot_connector = connector(settings, creds)
    users = TeamsUsers(bot_connector, sessions)
    core = ConversationCore(
        service,
        users.identify(service),
        sessions,
        sync=sync or scheduler_sync(settings, service),
    )
    cards = CardRenderer(Formatter.for_organisation(settings.organisation), CardVersion.BOT)
    return TeamsBot(
        core, users, bot_connector, cards, sessions, clock or (lambda: datetime.now(UTC))
    )


def teams_surface(settings: Settings, engine: Engine) -> Surface | None:
    """The Teams bot as a delivery surface (``teams:`` destinations), when configured."""
    creds = credentials(settings)
    if creds is None:
        return None
    cards = CardNotifications(Formatter.for_organisation(settings.organisation), CardVersion.BOT)
    return Surface(cards, TeamsBotNotifier(connector(settings, creds), session_factory(engine)))


def teams_route(
    settings: Settings,
    service: KpiService,
    *,
    clock: Callable[[], datetime] | None = None,
) -> Route | None:
    """``/api/messages``, or None when Teams is not configured."""
    creds = credentials(settings)
    if creds is None:
        return None
    bot = build_teams_bot(settings, service, creds, clock=clock)
    if settings.teams_unauthenticated:
        logger.warning(
            "KPIBOT_TEAMS_UNAUTHENTICATED=dev: /api/messages accepts requests without a Bot "
            "Framework token. Never set it outside local development."
        )
        return messages_route(bot, None)
    auth = BotFrameworkAuth(
        creds.client_id, metadata_url=settings.teams_openid_metadata_url or OPENID_METADATA_URL
    )
    return messages_route(bot, auth)
