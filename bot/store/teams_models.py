"""The Teams bot's own state: the conversations it was installed in or spoken to, kept so that
digests and alerts can be posted there later (proactive messages). Created by migration 0008."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.models import Base


class TeamsConversation(Base):
    """A conversation reference: what the Bot Connector needs to post into a Teams channel,
    group chat or 1:1 chat without being spoken to first. ``name`` is what the config's
    ``teams:`` routes call it (a team's or channel's name, ``user:<email or AAD id>`` for a
    1:1 chat)."""

    __tablename__ = "teams_conversations"
    # Teams conversation ids are long: "19:…@thread.tacv2", "a:1…" for 1:1 chats (~150).
    conversation_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # personal | groupChat | channel
    service_url: Mapped[str] = mapped_column(String(300))
    tenant_id: Mapped[str | None] = mapped_column(String(100))
    bot_id: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(400))
    installed_by: Mapped[str | None] = mapped_column(String(100))  # AAD object id
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
