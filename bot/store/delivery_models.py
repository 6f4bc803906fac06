"""Delivery and scheduling state: the outbox of outgoing messages, claims on scheduled runs,
CRM sync runs, permanent delivery failures and stale-data notices. Created by migration 0003;
the files messages carry by migration 0010.

Timestamps are timezone-aware UTC. Rows are only ever written through ``bot.delivery`` and
``bot.scheduling``; ``bot.status`` reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
)
from sqlalchemy import Column as SAColumn
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.models import DESTINATION, Base

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


class OutboxEntry(Base):
    """One outgoing message, keyed by its idempotency key. Written ``pending`` before the first
    attempt and ``sent`` (with Slack's ts) after; ``owner``/``attempt_started_at`` say who is
    sending it right now, so that a peer neither sends it too nor waits for a dead process."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status", "status", "created_at"),)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # send | reply
    channel: Mapped[str] = mapped_column(String(DESTINATION))
    thread_ts: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # text, blocks, card, metadata
    status: Mapped[str] = mapped_column(String(10))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(120))
    attempt_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_channel: Mapped[str | None] = mapped_column(String(DESTINATION))
    ts: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(String(200))


class MessageFile(Base):
    """The bytes an outbox message carries (the digest's chart PNG), under the message's key:
    written in the transaction that reserves the message, read back by whoever sends it, and
    deleted with the message by the retention (``bot.store.retention``). Kept out of the
    ``payload`` JSON, where they would be base64 text parsed with every read of the row."""

    __tablename__ = "message_files"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # the outbox entry's key
    media_type: Mapped[str] = mapped_column(String(40))  # image/png
    content: Mapped[bytes] = mapped_column(LargeBinary)


class JobClaim(Base):
    """The unique (job, fire time) row a process inserts before running a scheduled job: with
    several processes on one database, the one whose insert wins runs it. ``heartbeat_at`` is
    renewed while the job runs; a claim that stopped beating is taken over."""

    __tablename__ = "job_claims"
    job_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    outcome: Mapped[str | None] = mapped_column(String(20))  # ok | failed | skipped
    detail: Mapped[str | None] = mapped_column(Text)


class SyncRun(Base):
    """One CRM sync. The staleness clock is the ``finished_at`` of the last ``succeeded`` one."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_status", "status", "finished_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed
    rows_changed: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class DeliveryFailure(Base):
    """A destination that refuses our messages for good (``channel_not_found``,
    ``not_in_channel``, ``is_archived``, ``invalid_auth``…). One row per (channel, error);
    ``episode`` grows each time it comes back after being resolved by a successful delivery,
    and the admin notice's idempotency key carries it, so each episode is reported once."""

    __tablename__ = "delivery_failures"
    channel: Mapped[str] = mapped_column(String(DESTINATION), primary_key=True)
    error: Mapped[str] = mapped_column(String(100), primary_key=True)
    episode: Mapped[int] = mapped_column(Integer, default=1)
    first_key: Mapped[str] = mapped_column(String(300))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, default=1)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaleNotice(Base):
    """The one "data is stale since …" notice per staleness episode, keyed by the time the
    data was last refreshed; resolved when a sync succeeds."""

    __tablename__ = "stale_notices"
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    noticed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# APScheduler's SQLAlchemyJobStore creates this table itself (same columns); it is declared here
# only so that migrations own it and Alembic's autogenerate does not propose to drop it.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    SAColumn("id", Unicode(191), primary_key=True),
    SAColumn("next_run_time", Float(25), index=True),
    SAColumn("job_state", LargeBinary, nullable=False),
)
