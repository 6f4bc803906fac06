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
from bot.delivery.surfaces import Rendered, Surface
from bot.formatting import Formatter
from bot.service import KpiService
from bot.settings import Settings
from bot.slack_app import scheduler_sync
from bot.store.database import session_factory
from bot.teams.auth import OPENID_METADATA_URL, BotFrameworkAuth
from bot.teams.bot import TeamsBot
from bot.teams.cards import CardRenderer, CardVersion, TeamsMessage, card_escape
from bot.teams.connector import LOGIN_URL, Connector, TeamsCredentials
from bot.teams.http import messages_route
from bot.teams.notifier import TeamsBotNotifier
from bot.teams.users import TeamsUsers
from bot.text_render import TextNotificationRenderer
from conversation.views import AlertGroup, Digest, Outbound, Reply

logger = logging.getLogger(__name__)


class TeamsNotConfigured(Exception):
    """What is missing to run the Teams bot, naming the variables."""


def credentials(settings: Settings) -> TeamsCredentials | None:
    """The bot's credentials, or None when Teams is not configured at all."""
    secrets = settings.secrets
    if not secrets.teams_client_id and not secrets.teams_client_secret:
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


class BotCards:
    """The Teams bot's cards (``bot.teams.cards``, version 1.5). Alert messages and the other
    scheduled notifications are drawn as their plain text, CRM text made inert, until
    ``bot.teams.cards`` draws the core's ``AlertGroup``."""

    def __init__(self, fmt: Formatter) -> None:
        self.cards = CardRenderer(fmt, CardVersion.BOT)
        self.text = TextNotificationRenderer(fmt)

    def render(self, reply: Reply) -> TeamsMessage:
        return self.cards.render(reply)

    def apology(self) -> TeamsMessage:
        return self.cards.apology()

    def alert_group(self, group: AlertGroup) -> TeamsMessage:
        return self.plain(group)

    def plain(self, view: Outbound) -> TeamsMessage:
        text = self.text.render(view).text
        return self.cards.message(card_escape(text), text)


class BotNotifications:
    """The ``bot.delivery.surfaces.Renderer`` of the Teams bot: digests as cards, the rest
    through ``BotCards``."""

    def __init__(self, cards: BotCards) -> None:
        self.cards = cards

    def render(self, view: Outbound) -> Rendered:
        if isinstance(view, Digest):
            message = self.cards.cards.digest(view)
        else:
            message = self.cards.plain(view)
        return Rendered(message.text, message.card)


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
    cards = BotCards(Formatter.for_organisation(settings.organisation))
    return TeamsBot(
        core, users, bot_connector, cards, sessions, clock or (lambda: datetime.now(UTC))
    )


def teams_surface(settings: Settings, engine: Engine) -> Surface | None:
    """The Teams bot as a delivery surface (``teams:`` destinations), when configured."""
    creds = credentials(settings)
    if creds is None:
        return None
    cards = BotNotifications(BotCards(Formatter.for_organisation(settings.organisation)))
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
