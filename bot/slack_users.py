"""Slack users matched to emails both ways (``users.info`` and ``users.lookupByEmail``), cached
in the store so that answering a question does not call Slack every time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.chat_models import ChatUser, from_db, to_db
from bot.store.database import transaction
from conversation.authorization import IdentityUnavailable

logger = logging.getLogger(__name__)

# People change email rarely; a day keeps the cache fresh enough without calling Slack often.
CACHE_FOR = timedelta(days=1)


class SlackUsers:
    def __init__(
        self,
        client: WebClient,
        sessions: sessionmaker[Session],
        configured: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.sessions = sessions
        # Rep name → user id from the config (slack.rep_users) wins over any lookup.
        self.configured = dict(configured or {})

    def _remember(self, user_id: str, email: str | None, now: datetime) -> None:
        with transaction(self.sessions) as session:
            row = session.get(ChatUser, user_id)
            if row is None:
                session.add(ChatUser(user_id=user_id, email=email, looked_up_at=to_db(now)))
            else:
                row.email, row.looked_up_at = email, to_db(now)

    def email_of(self, user_id: str, now: datetime) -> str | None:
        with self.sessions() as session:
            row = session.get(ChatUser, user_id)
            if row is not None and now - from_db(row.looked_up_at) < CACHE_FOR:
                return row.email
        try:
            response = self.client.users_info(user=user_id)
        except SlackApiError as error:
            # Not remembered: the next request asks again once the cause is fixed.
            code = str(error.response.get("error") or "unknown_error")
            logger.warning("users.info for %s failed: %s", user_id, code)
            raise IdentityUnavailable(user_id, f"users.info: {code}") from None
        email = response["user"].get("profile", {}).get("email")
        self._remember(user_id, email, now)
        return str(email) if email else None

    def user_for(self, rep: str, email: str | None, now: datetime) -> str | None:
        """The Slack user id of a rep: from the config, else by their CRM email."""
        if rep in self.configured:
            return self.configured[rep]
        if not email:
            return None
        with self.sessions() as session:
            row = session.scalars(select(ChatUser).where(ChatUser.email == email)).first()
            if row is not None and now - from_db(row.looked_up_at) < CACHE_FOR:
                return row.user_id
        try:
            response = self.client.users_lookupByEmail(email=email)
        except SlackApiError as error:
            logger.warning("no Slack user for rep %s: %s", rep, error.response.get("error"))
            return None
        user_id = str(response["user"]["id"])
        self._remember(user_id, email, now)
        return user_id
