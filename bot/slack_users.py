"""Slack users matched to emails both ways (``users.info`` and ``users.lookupByEmail``), cached
in the store (``bot.chat_users``) so that answering a question does not call Slack every
time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from bot.chat_users import Unknown, cached_email, cached_user, remember
from conversation.authorization import IdentityUnavailable

logger = logging.getLogger(__name__)


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

    def email_of(self, user_id: str, now: datetime) -> str | None:
        cached = cached_email(self.sessions, user_id, now)
        if not isinstance(cached, Unknown):
            return cached
        try:
            response = self.client.users_info(user=user_id)
        except SlackApiError as error:
            # Not remembered: the next request asks again once the cause is fixed.
            code = str(error.response.get("error") or "unknown_error")
            logger.warning("users.info for %s failed: %s", user_id, code)
            raise IdentityUnavailable(user_id, f"users.info: {code}") from None
        email = response["user"].get("profile", {}).get("email")
        remember(self.sessions, user_id, email, now)
        return str(email) if email else None

    def user_for(self, rep: str, email: str | None, now: datetime) -> str | None:
        """The Slack user id of a rep: from the config, else by their CRM email."""
        if rep in self.configured:
            return self.configured[rep]
        if not email:
            return None
        known = cached_user(self.sessions, email, now)
        if known is not None:
            return known
        try:
            response = self.client.users_lookupByEmail(email=email)
        except SlackApiError as error:
            logger.warning("no Slack user for rep %s: %s", rep, error.response.get("error"))
            return None
        user_id = str(response["user"]["id"])
        remember(self.sessions, user_id, email, now)
        return user_id
