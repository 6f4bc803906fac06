"""What each source's sync remembers per object between runs: the high-water mark the next
incremental sync starts from, the last run's counts, the CRM's API budget and the last error.
Created by migration 0005; written by ``bot.sources.service``, read by ``bot.status``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.models import Base


class SyncState(Base):
    """One (source, object) pair, e.g. ("sf", "Opportunity"). The high-water mark is the
    latest modification time seen in a finished sync of that object; it is written in the
    transaction that wrote the object's rows, so the two never disagree."""

    __tablename__ = "sync_state"
    source: Mapped[str] = mapped_column(String(120), primary_key=True)
    object: Mapped[str] = mapped_column(String(80), primary_key=True)
    high_water_mark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    # The CRM's own count of API requests (Salesforce's Sforce-Limit-Info, HubSpot's daily
    # limit headers), as last reported.
    api_used: Mapped[int | None] = mapped_column(Integer)
    api_limit: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
