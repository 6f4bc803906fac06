"""The Teams bot: an activity from the Bot Connector (already authenticated and parsed by
``bot.teams.http``) → its listener → what to answer.

- A message in a 1:1 chat, a group chat or a channel (where Teams delivers only those that
  @mention the bot): the bot's mention stripped, parsed by the one grammar, answered by the
  conversation core for the Teams user (their Entra object id), rendered as an Adaptive Card
  and posted back through the Bot Connector; in a channel, in the thread of the question, for
  the whole channel to read (decided like Slack's @mention: only what both the asker and the
  channel may see).
- A card action (``Action.Execute``, an ``adaptiveCard/action`` invoke): Acknowledge or
  Snooze on an alert card, through the same core function and authorization as Slack's buttons;
  the invoke response carries the card re-rendered, which Teams shows in place.
- The bot installed in a team, a group chat or a 1:1 chat (``installationUpdate``, or
  ``conversationUpdate`` adding the bot), or spoken to: the conversation reference is stored
  for proactive messages; uninstalled: forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import httpx
from microsoft_teams.api.activities.conversation import ConversationUpdateActivity
from microsoft_teams.api.activities.install_update import (
    InstalledActivity,
    InstalledUpgradeActivity,
    UninstalledActivity,
)
from microsoft_teams.api.activities.invoke.adaptive_card import AdaptiveCardInvokeActivity
from microsoft_teams.api.activities.message import MessageActivity
from microsoft_teams.api.activities.utils.strip_mentions_text import (
    StripMentionsTextOptions,
    strip_mentions_text,
)
from microsoft_teams.api.models import Account
from sqlalchemy.orm import Session, sessionmaker

from bot.core import ConversationCore
from bot.delivery.notifier import TEAMS, destination_of
from bot.teams.cards import CardRenderer
from bot.teams.connector import ADAPTIVE_CARD, Connector
from bot.teams.conversations import Reference, conversation_name, find, forget, remember
from bot.teams.users import TeamsUsers
from conversation.authorization import Action
from conversation.grammar import parse_request
from conversation.views import Reply

logger = logging.getLogger(__name__)

# Card actions (``data.kpibot`` of an ``Action.Execute``, see ``bot.teams.cards``).
ACTIONS = {"kpi.ack": Action.ACKNOWLEDGE, "kpi.snooze": Action.SNOOZE}
MESSAGE_RESPONSE = "application/vnd.microsoft.activity.message"
ERROR_RESPONSE = "application/vnd.microsoft.error"
_COMMAND = re.compile(r"^\s*/?kpi\b\s*", re.IGNORECASE)


Installation: TypeAlias = (
    InstalledActivity | InstalledUpgradeActivity | UninstalledActivity | ConversationUpdateActivity
)


@dataclass(frozen=True)
class Outcome:
    """The HTTP answer to the Bot Connector: 200 with no body for most activities, an invoke
    response (``{"statusCode": …, "type": …, "value": …}``) for a card action."""

    status: int = 200
    body: dict[str, Any] | None = None


def invoke_card(card: dict[str, Any]) -> Outcome:
    """The card Teams draws in place of the one acted on."""
    return Outcome(body={"statusCode": 200, "type": ADAPTIVE_CARD, "value": card})


def invoke_message(text: str) -> Outcome:
    """A message Teams shows the clicker alone; the card stays as it was."""
    return Outcome(body={"statusCode": 200, "type": MESSAGE_RESPONSE, "value": text})


def invoke_error(status: int, reason: str) -> Outcome:
    code = {400: "BadRequest", 404: "NotFound"}.get(status, "InternalServerError")
    error = {"code": code, "message": reason}
    return Outcome(body={"statusCode": status, "type": ERROR_RESPONSE, "value": error})


def user_id_of(account: Account) -> str:
    """The id the core knows a Teams user by: the Entra object id, which the config's
    ``access`` section may name (the Teams id ``29:…`` differs in every tenant and app)."""
    return account.aad_object_id or account.id


class TeamsBot:
    def __init__(
        self,
        core: ConversationCore,
        users: TeamsUsers,
        connector: Connector,
        cards: CardRenderer,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.core = core
        self.users = users
        self.connector = connector
        self.cards = cards
        self.sessions = sessions
        self.clock = clock

    async def on_activity(self, activity: Any) -> Outcome:
        match activity:
            case AdaptiveCardInvokeActivity():
                return await self.on_card_action(activity)
            case MessageActivity():
                await self.on_message(activity)
            case InstalledActivity() | InstalledUpgradeActivity():
                await self.on_installation(activity, installed=True)
            case UninstalledActivity():
                await self.on_installation(activity, installed=False)
            case ConversationUpdateActivity():
                await self.on_conversation_update(activity)
        return Outcome()

    async def apologise(self, activity: Any) -> Outcome:
        """After a listener failed (logged by the caller): the user is told, never shown a
        trace. A message gets an apology card in its conversation; a card action an error the
        card shows; anything else 500, for the Bot Framework to retry."""
        apology = self.cards.apology()
        match activity:
            case AdaptiveCardInvokeActivity():
                return invoke_error(500, apology.text)
            case MessageActivity():
                try:
                    await self.connector.send(activity.service_url or "", activity.conversation.id,
                                              apology.card, apology.text)  # fmt: skip
                except httpx.HTTPError as error:
                    logger.error("could not apologise in Teams: %s", error)
                return Outcome()
        return Outcome(status=500)

    # --- messages ----------------------------------------------------------------------------

    async def on_message(self, activity: MessageActivity) -> None:
        now = self.clock()
        service_url = activity.service_url or ""
        conversation = activity.conversation
        user = user_id_of(activity.from_)
        await self.users.look_up(service_url, conversation.id, activity.from_.id, user, now)
        reference = await self._reference(activity, now)
        await asyncio.to_thread(remember, self.sessions, reference, now)
        text = strip_mentions_text(
            activity, StripMentionsTextOptions(account_id=activity.recipient.id)
        )
        # The app's command menu (and Slack habits) put "kpi" before the question.
        text = _COMMAND.sub("", text or "", count=1)
        in_channel = conversation.conversation_type == "channel"
        reply = await asyncio.to_thread(
            self.core.handle,
            user,
            parse_request(text),
            now,
            into=destination_of(TEAMS, reference.name) if in_channel else None,
        )
        answer = self.cards.render(reply)
        await self.connector.send(
            service_url,
            conversation.id,
            answer.card,
            answer.text,
            reply_to=activity.id if in_channel else None,
        )

    # --- card actions ------------------------------------------------------------------------

    async def on_card_action(self, activity: AdaptiveCardInvokeActivity) -> Outcome:
        """Acknowledge or Snooze on an alert card: the core decides and records
        (``ConversationCore.act_on_alerts``, as for Slack's buttons); the card is drawn again
        for everyone (the activity updated in place) and returned to the clicker."""
        now = self.clock()
        data = activity.value.action.data
        verb, key = data.get("kpibot"), data.get("key")
        action = ACTIONS.get(verb) if isinstance(verb, str) else None
        if action is None or not isinstance(key, str):
            return invoke_error(400, "not a kpibot card action")
        value = key if action is Action.ACKNOWLEDGE else f"{key}|{data.get('duration')}"
        service_url = activity.service_url or ""
        conversation = activity.conversation.id
        user = user_id_of(activity.from_)
        await self.users.look_up(service_url, conversation, activity.from_.id, user, now)
        posted = await asyncio.to_thread(find, self.sessions, conversation.split(";")[0])
        card_id = activity.reply_to_id or ""
        where = destination_of(TEAMS, posted.name) if posted is not None else ""
        outcome = await asyncio.to_thread(
            self.core.act_on_alerts, user, action, value, now, where, card_id
        )
        if outcome is None:
            return invoke_error(404, "this alert message is no longer known")
        if isinstance(outcome, Reply):
            return invoke_message(self.cards.render(outcome).text)
        card = self.cards.alert_group(outcome.group)
        if posted is not None:
            await self.connector.update(
                posted.service_url, posted.conversation_id, card_id, card.card, card.text
            )
        return invoke_card(card.card)

    # --- installation ------------------------------------------------------------------------

    async def on_installation(self, activity: Installation, *, installed: bool) -> None:
        now = self.clock()
        if not installed:
            await asyncio.to_thread(forget, self.sessions, activity.conversation.id)
            return
        reference = await self._reference(activity, now)
        await asyncio.to_thread(remember, self.sessions, reference, now)

    async def on_conversation_update(self, activity: ConversationUpdateActivity) -> None:
        bot = activity.recipient.id
        if any(member.id == bot for member in activity.members_added or ()):
            await self.on_installation(activity, installed=True)
        elif any(member.id == bot for member in activity.members_removed or ()):
            await self.on_installation(activity, installed=False)

    async def _reference(
        self, activity: Installation | MessageActivity, now: datetime
    ) -> Reference:
        conversation = activity.conversation
        data = activity.channel_data
        team = data.team if data is not None else None
        channel = data.channel if data is not None else None
        kind = str(conversation.conversation_type or "personal")
        user = None
        if kind == "personal":
            aad = user_id_of(activity.from_)
            service_url = activity.service_url or ""
            await self.users.look_up(service_url, conversation.id, activity.from_.id, aad, now)
            user = await asyncio.to_thread(self.users.email, aad, now) or aad
        name = conversation_name(
            kind,
            conversation.id,
            team=team.name if team else None,
            team_id=team.id if team else None,
            channel=channel.name if channel else None,
            title=conversation.name,
            user=user,
        )
        tenant = conversation.tenant_id or (data.tenant.id if data and data.tenant else None)
        return Reference(
            conversation_id=conversation.id,
            name=name,
            kind=kind,
            service_url=activity.service_url or "",
            tenant_id=tenant,
            bot_id=activity.recipient.id,
            team_id=team.id if team else None,
            installed_by=activity.from_.aad_object_id,
        )
