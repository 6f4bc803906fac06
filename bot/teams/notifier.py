"""The Teams bot as a delivery surface: ``teams:<conversation name>`` destinations, posted
through the Bot Connector into a conversation the bot was installed in or spoken to
(``bot.teams.conversations``). ``send`` posts the card and returns its activity id, which the
outbox keeps, so that a resolution can ``update`` the card in place and ``reply`` under it (in
a channel, in the card's thread). The destination it returns names the conversation as it is
stored (``teams:Équipe Lyon`` for a route written ``teams:équipe lyon``), so that a card
action, which knows only its conversation, names the same message.

Failures are sorted for the outbox (``SurfaceCallError``): a 429 waits for its
``Retry-After``; a 5xx or a connection dropped after the request went out may have posted
the message (ambiguous); a token that could not be had, or a connection that was never made,
posted nothing; an unknown conversation name, a conversation Teams does not know (404) or one
the bot was removed from (403) is permanent, reported to sales-ops with advice.

Teams keeps no metadata on a bot's messages and a bot cannot read a channel's history, so
this notifier cannot look a message up by its idempotency key (it is no ``MessageFinder``):
after an ambiguous failure the outbox sends again, and the message may show twice. That is
the bot path's guarantee: at least once, with the activity id kept once Teams has answered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery.notifier import TEAMS, Delivered, Message, destination_of
from bot.delivery.retry import CallFailure, FailureKind, SurfaceCallError
from bot.teams.connector import Connector, call
from bot.teams.conversations import Reference, find
from bot.teams.pictures import with_file

# Error codes of the admin notice (``advice.<code>`` in the catalogs).
UNKNOWN_CONVERSATION = "teams_unknown_conversation"
BOT_REMOVED = "teams_bot_removed"
CREDENTIALS_REFUSED = "teams_credentials_refused"

T = TypeVar("T")


def failure_of(error: httpx.HTTPError) -> CallFailure:
    """What the outbox should do after ``error`` from the token endpoint or the connector."""
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        status = response.status_code
        if "/oauth2/" in response.request.url.path:
            # Entra ID refused or failed to give a token: nothing was posted.
            if status in (400, 401):
                return CallFailure(FailureKind.PERMANENT, CREDENTIALS_REFUSED)
            return CallFailure(FailureKind.RATE_LIMITED, f"token_http_{status}")
        if status == 429:
            retry_after = response.headers.get("Retry-After", "1")
            return CallFailure(FailureKind.RATE_LIMITED, "ratelimited", _seconds(retry_after))
        if status >= 500:
            return CallFailure(FailureKind.AMBIGUOUS, f"http_{status}")
        if status == 403:
            return CallFailure(FailureKind.PERMANENT, BOT_REMOVED)
        if status == 404:
            return CallFailure(FailureKind.PERMANENT, UNKNOWN_CONVERSATION)
        return CallFailure(FailureKind.PERMANENT, f"http_{status}")
    if isinstance(error, httpx.ConnectError):
        # The connection was never made: the request did not go out.
        return CallFailure(FailureKind.RATE_LIMITED, "connection_refused")
    return CallFailure(FailureKind.AMBIGUOUS, "connection_error")


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0  # an HTTP date: rare from the Bot Connector; a second, then back off


class TeamsBotNotifier:
    def __init__(self, connector: Connector, sessions: sessionmaker[Session]) -> None:
        self.connector = connector
        self.sessions = sessions

    def _reference(self, message: Message) -> Reference:
        reference = find(self.sessions, message.channel)
        if reference is None:
            raise SurfaceCallError(CallFailure(FailureKind.PERMANENT, UNKNOWN_CONVERSATION))
        return reference

    def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return call(work)
        except httpx.HTTPError as error:
            raise SurfaceCallError(failure_of(error)) from None

    def send(self, message: Message) -> Delivered:
        to = self._reference(message)
        card = with_file(message.body, message.file)
        activity_id = self._call(
            lambda: self.connector.send(to.service_url, to.conversation_id, card, message.text)
        )
        return Delivered(destination_of(TEAMS, to.name), activity_id)

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        to = self._reference(message)
        self._call(
            lambda: self.connector.update(to.service_url, to.conversation_id, delivered.ts,
                                          message.body, message.text)
        )  # fmt: skip
        return delivered

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        to = self._reference(message)
        # A channel's thread is the conversation "<channel id>;messageid=<root activity id>";
        # chats have no threads: the reply follows the card.
        thread = to.conversation_id
        if to.kind == "channel":
            thread = f"{to.conversation_id.split(';')[0]};messageid={delivered.ts}"
        card = with_file(message.body, message.file)
        activity_id = self._call(
            lambda: self.connector.send(to.service_url, thread, card, message.text,
                                        reply_to=delivered.ts)
        )  # fmt: skip
        return Delivered(destination_of(TEAMS, to.name), activity_id)
