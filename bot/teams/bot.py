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

from microsoft_teams.api.activities.conversation import ConversationUpdateActivity
from microsoft_teams.api.activities.install_update import (
    InstalledActivity,
    InstalledUpgradeActivity,
    UninstalledActivity,
)
from microsoft_teams.api.activities.message import MessageActivity
from microsoft_teams.api.activities.utils.strip_mentions_text import (
    StripMentionsTextOptions,
    strip_mentions_text,
)
from microsoft_teams.api.models import Account
from sqlalchemy.orm import Session, sessionmaker

from bot.core import ConversationCore
from bot.teams.connector import Connector
from bot.teams.conversations import Reference, conversation_name, forget, remember
from bot.teams.users import TeamsUsers
from conversation.grammar import parse_request
from conversation.views import Reply

logger = logging.getLogger(__name__)

_COMMAND = re.compile(r"^\s*/?kpi\b\s*", re.IGNORECASE)


@dataclass(frozen=True)
class TeamsCard:
    """A view as Teams shows it: an Adaptive Card and its plain-text summary."""

    card: dict[str, Any]
    text: str


Render = Callable[[Reply], TeamsCard]
Installation: TypeAlias = (
    InstalledActivity | InstalledUpgradeActivity | UninstalledActivity | ConversationUpdateActivity
)


@dataclass(frozen=True)
class Outcome:
    """The HTTP answer to the Bot Connector: 200 with no body for most activities, an invoke
    response (``{"statusCode": …, "type": …, "value": …}``) for a card action."""

    status: int = 200
    body: dict[str, Any] | None = None


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
        render: Render,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.core = core
        self.users = users
        self.connector = connector
        self.render = render
        self.sessions = sessions
        self.clock = clock

    async def on_activity(self, activity: Any) -> Outcome:
        match activity:
            case MessageActivity():
                await self.on_message(activity)
            case InstalledActivity() | InstalledUpgradeActivity():
                await self.on_installation(activity, installed=True)
            case UninstalledActivity():
                await self.on_installation(activity, installed=False)
            case ConversationUpdateActivity():
                await self.on_conversation_update(activity)
        return Outcome()

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
            into=reference.name if in_channel else None,
        )
        answer = self.render(reply)
        await self.connector.send(
            service_url,
            conversation.id,
            answer.card,
            answer.text,
            reply_to=activity.id if in_channel else None,
        )

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
            user = self.users.email(aad, now) or aad
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
