"""Conversation references: the Teams conversations kpibot was installed in or spoken to,
remembered so that digests and alerts can be posted there later, and the names by which the
config's ``teams:`` routes and ``teams:<name>`` destinations find them.

A name is what sales-ops sees in Teams: the team's name for its General channel (where a bot
installed in a team is first spoken to), ``Team/Channel`` for another channel, a group chat's
title, ``user:<email>`` for a 1:1 chat (``user:<Entra object id>`` when Teams gives no email).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.chat_models import to_db
from bot.store.database import transaction
from bot.store.teams_models import TeamsConversation


@dataclass(frozen=True)
class Reference:
    """What the Bot Connector needs to post into a conversation."""

    conversation_id: str
    name: str
    kind: str  # personal | groupChat | channel
    service_url: str
    tenant_id: str | None
    bot_id: str
    team_id: str | None = None
    installed_by: str | None = None


def conversation_name(
    kind: str,
    conversation_id: str,
    *,
    team: str | None = None,
    team_id: str | None = None,
    channel: str | None = None,
    title: str | None = None,
    user: str | None = None,
) -> str:
    if kind == "channel" and team:
        # Teams leaves the General channel unnamed (its id is the team's).
        general = channel is None or conversation_id.split(";")[0] == team_id
        return team if general else f"{team}/{channel}"
    if kind == "personal" and user:
        return f"user:{user}"
    return title or conversation_id


def remember(sessions: sessionmaker[Session], reference: Reference, now: datetime) -> None:
    """Insert or refresh the reference (the service URL may change; Microsoft says to keep
    the latest one)."""
    with transaction(sessions) as session:
        row = session.get(TeamsConversation, reference.conversation_id)
        if row is None:
            row = TeamsConversation(conversation_id=reference.conversation_id)
            session.add(row)
        row.name = reference.name
        row.kind = reference.kind
        row.service_url = reference.service_url
        row.tenant_id = reference.tenant_id
        row.bot_id = reference.bot_id
        row.team_id = reference.team_id
        row.installed_by = reference.installed_by or row.installed_by
        row.updated_at = to_db(now)


def forget(sessions: sessionmaker[Session], conversation_id: str) -> None:
    """The bot was uninstalled: nothing can be posted there any more."""
    with transaction(sessions) as session:
        session.execute(
            delete(TeamsConversation).where(TeamsConversation.conversation_id == conversation_id)
        )


def _reference(row: TeamsConversation) -> Reference:
    return Reference(
        row.conversation_id, row.name, row.kind, row.service_url, row.tenant_id, row.bot_id,
        row.team_id, row.installed_by,
    )  # fmt: skip


def find(sessions: sessionmaker[Session], name: str) -> Reference | None:
    """The conversation a route names, by its name (in any case: compared in Python, as
    SQLite's ``lower`` folds ASCII only) or its conversation id; the most recently seen one if
    several share a name. A bot is in a few hundred conversations at most."""
    with sessions() as session:
        rows = session.scalars(
            select(TeamsConversation).order_by(TeamsConversation.updated_at.desc())
        )
        wanted = name.casefold()
        row = next(
            (r for r in rows if r.conversation_id == name or r.name.casefold() == wanted), None
        )
        return None if row is None else _reference(row)


def known(sessions: sessionmaker[Session]) -> Sequence[Reference]:
    """Every stored conversation, by name."""
    with sessions() as session:
        rows = session.scalars(select(TeamsConversation).order_by(TeamsConversation.name))
        return [_reference(row) for row in rows]
