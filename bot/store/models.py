"""The canonical model every CRM is mapped onto. Each fact row keeps its ``source`` and
``source_id`` so that a re-sync or re-import upserts instead of duplicating."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that Alembic migrations are portable between SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# A delivery destination: a Slack id, or "teams:<conversation name>" (migration 0008 widened
# the columns from Slack's 40 characters).
DESTINATION = 320


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _Sourced:
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(120))


class _Tracked:
    """A fact row that records the data version it last changed in (``bot.store.changes``):
    None while it is changed in a transaction under way, stamped by ``bump_data_version``."""

    changed_in: Mapped[int | None] = mapped_column(Integer, index=True)


class Team(_Sourced, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    name: Mapped[str] = mapped_column(String(200), index=True)
    region: Mapped[str | None] = mapped_column(String(200))
    manager: Mapped[str | None] = mapped_column(String(200))


class Rep(_Sourced, Base):
    __tablename__ = "reps"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    name: Mapped[str] = mapped_column(String(200), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    slack_user_id: Mapped[str | None] = mapped_column(String(40))
    active_from: Mapped[date | None] = mapped_column(Date)
    active_to: Mapped[date | None] = mapped_column(Date)


class Account(_Sourced, Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    name: Mapped[str] = mapped_column(String(300), index=True)
    segment: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(100))


class Lead(_Sourced, _Tracked, Base):
    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    created_at: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    converted_at: Mapped[date | None] = mapped_column(Date)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))


class Opportunity(_Sourced, _Tracked, Base):
    __tablename__ = "opportunities"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    name: Mapped[str | None] = mapped_column(String(300))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"), index=True)
    product: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(100))
    is_closed: Mapped[bool]
    is_won: Mapped[bool]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[date | None] = mapped_column(Date)
    close_date: Mapped[date | None] = mapped_column(Date)
    probability: Mapped[float | None] = mapped_column(Float)
    forecast_category: Mapped[str | None] = mapped_column(String(40))
    last_activity_at: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a full import no longer holds the deal (or the CRM deleted it); the row stays
    # so that its history keeps its name and a reappearance reopens it.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OpportunityHistory(Base):
    """An opportunity's pipeline fields while they held: from ``valid_from`` until
    ``valid_to`` (None while current). ``status`` is open, won, lost or deleted. Written by
    ``bot.store.history`` whenever facts change, so storage grows with changes, not syncs."""

    __tablename__ = "opportunity_history"
    __table_args__ = (
        Index("ix_opportunity_history_current", "opportunity_id", "valid_to"),
        Index("ix_opportunity_history_valid_from", "valid_from"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # A row removed outright (the demo's rebuild) takes its history along; importers mark
    # deletions instead, so that the history keeps them.
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10))
    stage: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    close_date: Mapped[date | None] = mapped_column(Date)
    probability: Mapped[float | None] = mapped_column(Float)
    owner_id: Mapped[int | None] = mapped_column(Integer)


class Spend(_Sourced, _Tracked, Base):
    __tablename__ = "spend"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    date: Mapped[date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    region: Mapped[str | None] = mapped_column(String(200))


class Survey(_Sourced, _Tracked, Base):
    __tablename__ = "surveys"
    __table_args__ = (UniqueConstraint("source", "source_id"),)
    date: Mapped[date] = mapped_column(Date)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    kind: Mapped[str] = mapped_column(String(10))
    score: Mapped[float] = mapped_column(Float)


class FxRate(Base):
    """Rate to the base currency: one unit of ``currency`` is worth ``rate`` base units."""

    __tablename__ = "fx_rates"
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    valid_from: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8))


class VersionToken(Base):
    """A random token made with each data version: a version number names facts only within
    one store's history, and a store made again (its file deleted and imported anew) or
    restored from a backup reaches numbers again beside snapshots of facts it never held
    (``bot.store.facts_snapshot`` names them by both)."""

    __tablename__ = "version_tokens"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))


class FactDeletion(Base):
    """A fact row deleted outright (``bot.store.changes``), in data version ``version`` (None
    while the transaction deleting it is under way): how a refresh learns of deletions it
    cannot see in the table any more. Opportunities are soft-deleted (``deleted_at``) by the
    importers and only removed outright by the demo's rebuild."""

    __tablename__ = "fact_deletions"
    id: Mapped[int] = mapped_column(primary_key=True)
    table_name: Mapped[str] = mapped_column(String(40))
    row_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer, index=True)


class DataVersion(Base):
    """Bumped by every import or sync that changed a fact, so caches know when to reload."""

    __tablename__ = "data_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
