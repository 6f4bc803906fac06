"""Who a Teams user is. The core knows a Teams user by their Entra (AAD) object id, the id
that stays the same in every team and chat and that the config's ``access`` section may name;
their email (which ``access`` may name too, and which matches them to a CRM rep) comes from the
Bot Connector's member lookup, cached for a day (``bot.chat_users``).

The lookup needs the conversation the user spoke in, so it is made by the listener before the
core is asked (``TeamsUsers.look_up``); ``identify`` then reads the cache."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bot.access import rep_teams, reps_by_email, viewer_for
from bot.chat_users import Unknown, cached_email, remember
from bot.core import Identify
from bot.service import KpiService
from bot.teams.connector import Connector
from conversation.authorization import IdentityUnavailable, Viewer

logger = logging.getLogger(__name__)


class TeamsUsers:
    def __init__(self, connector: Connector, sessions: sessionmaker[Session]) -> None:
        self.connector = connector
        self.sessions = sessions

    async def look_up(self, service_url: str, conversation_id: str, member_id: str,
                      aad_id: str, now: datetime) -> None:  # fmt: skip
        """Make sure the cache knows the email of ``aad_id`` (Teams user ``member_id``). A
        failed lookup is not remembered: the next message asks again."""
        # The store is read and written in a worker thread: the event loop serves other requests.
        cached = await asyncio.to_thread(cached_email, self.sessions, aad_id, now)
        if not isinstance(cached, Unknown):
            return
        try:
            email = await self.connector.email_of(service_url, conversation_id, member_id)
        except httpx.HTTPError as error:
            logger.warning("Teams member lookup for %s failed: %s", aad_id, error)
            return
        await asyncio.to_thread(remember, self.sessions, aad_id, email, now)

    def email(self, aad_id: str, now: datetime) -> str | None:
        """The email the cache holds for ``aad_id``, if any."""
        email = cached_email(self.sessions, aad_id, now)
        return None if isinstance(email, Unknown) else email

    def identify(self, service: KpiService) -> Identify:
        def identify(user_id: str, now: datetime) -> Viewer:
            email = cached_email(self.sessions, user_id, now)
            if isinstance(email, Unknown):
                raise IdentityUnavailable(user_id, "Teams member lookup failed")
            facts = service.snapshot().facts
            access = service.settings.config.access
            return viewer_for(access, user_id, email, reps_by_email(facts), rep_teams(facts))

        return identify
