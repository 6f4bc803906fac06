"""The Bot Connector REST API, through the Teams SDK's ``ApiClient``: post an activity into a
conversation, update one in place, and look a member up (for their email). Every call carries
a bot token from Entra ID's client-credentials grant (the SDK's ``BotTokenClient``), cached
until shortly before it expires.

The SDK's clients are asynchronous; the listeners call them from the HTTP server's event loop,
and the outbox (which runs in worker threads) through ``call``, one short-lived loop per
message. Errors are the SDK's: ``httpx.HTTPStatusError`` for an answer other than 2xx (a 429
carries ``Retry-After``), ``httpx.TransportError`` for a dropped connection; retrying them is
the outbox's business (``bot.delivery.retry``), not this client's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from microsoft_teams.api.activities.message import MessageActivityInput
from microsoft_teams.api.auth.cloud_environment import PUBLIC, with_overrides
from microsoft_teams.api.auth.credentials import ClientCredentials
from microsoft_teams.api.clients.bot.token_client import BotTokenClient
from microsoft_teams.api.clients.conversation import ConversationClient
from microsoft_teams.api.models.attachment.attachment import Attachment
from microsoft_teams.common import Client, ClientOptions, Token

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
LOGIN_URL = PUBLIC.login_endpoint
# A token is renewed this long before Entra says it expires (clocks drift; calls take time).
RENEW_BEFORE = 300.0
TIMEOUT = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class TeamsCredentials:
    """The bot's Entra app registration (``TEAMS_CLIENT_ID``, ``TEAMS_CLIENT_SECRET``,
    ``TEAMS_TENANT_ID``), from the environment only."""

    client_id: str
    client_secret: str
    tenant_id: str | None = None

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"TeamsCredentials(client_id={self.client_id!r}, tenant_id={self.tenant_id!r})"


def card_activity(card: dict[str, Any], text: str) -> MessageActivityInput:
    """A message carrying one Adaptive Card; ``text`` is what notifications show."""
    return MessageActivityInput(
        summary=text[:200],
        attachments=[Attachment(content_type=ADAPTIVE_CARD, content=card)],
    )


class Connector:
    def __init__(
        self,
        credentials: TeamsCredentials,
        *,
        login_url: str = LOGIN_URL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self._cloud = with_overrides(PUBLIC, login_endpoint=login_url.rstrip("/"))
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, valid until)

    @asynccontextmanager
    async def _http(self, token: Token = None) -> AsyncIterator[Client]:
        """An HTTP client for one operation, closed after it (each outbox call runs in its own
        event loop, which a shared client could not outlive)."""
        client = Client(ClientOptions(timeout=TIMEOUT, token=token))
        try:
            yield client
        finally:
            await client.http.aclose()

    async def token(self) -> str:
        if self._token is None or self._clock() >= self._token[1]:
            async with self._http() as http:
                answer = await BotTokenClient(http, cloud=self._cloud).get(
                    ClientCredentials(
                        client_id=self.credentials.client_id,
                        client_secret=self.credentials.client_secret,
                        tenant_id=self.credentials.tenant_id,
                    )
                )
            lifetime = max(0.0, answer.expires_in - RENEW_BEFORE)
            self._token = (answer.access_token, self._clock() + lifetime)
        return self._token[0]

    @asynccontextmanager
    async def _conversations(self, service_url: str) -> AsyncIterator[ConversationClient]:
        async with self._http(self.token) as http:
            yield ConversationClient(service_url, http)

    async def send(self, service_url: str, conversation_id: str, card: dict[str, Any],
                   text: str, reply_to: str | None = None) -> str:  # fmt: skip
        """Post a card into the conversation (under ``reply_to``, in a channel's thread); the
        new activity's id."""
        activity = card_activity(card, text)
        async with self._conversations(service_url) as conversations:
            if reply_to is None:
                sent = await conversations.create_activity(conversation_id, activity)
            else:
                sent = await conversations.reply_to_activity(conversation_id, reply_to, activity)
        return str(sent.id)

    async def update(self, service_url: str, conversation_id: str, activity_id: str,
                     card: dict[str, Any], text: str) -> str:  # fmt: skip
        """Replace the card of activity ``activity_id`` in place."""
        async with self._conversations(service_url) as conversations:
            sent = await conversations.update_activity(
                conversation_id, activity_id, card_activity(card, text)
            )
        return str(sent.id)

    async def email_of(self, service_url: str, conversation_id: str, user_id: str) -> str | None:
        """The member's email (or user principal name), as Teams knows them."""
        async with self._conversations(service_url) as conversations:
            member = await conversations.get_member_by_id(conversation_id, user_id)
        return member.email or member.user_principal_name or None


def call(work: Callable[[], Awaitable[T]]) -> T:
    """Run a connector call from synchronous code (the outbox's worker threads)."""

    async def run() -> T:
        return await work()

    return asyncio.run(run())
