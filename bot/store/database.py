"""Engines, sessions and migrations. SQLite is the embedded default (one process); PostgreSQL
is supported for several processes sharing one database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.store.history import record_history, utc
from bot.store.models import DataVersion

# The Alembic scripts, installed as a package (setup.py maps the top-level migrations/ folder).
MIGRATIONS = "bot.migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (idempotent)."""
    config = AlembicConfig()
    # A wheel is unpacked on disk, so the package is a real folder Alembic can list.
    config.set_main_option("script_location", str(files(MIGRATIONS)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def data_version(session: Session) -> int:
    row = session.scalar(select(DataVersion.version).where(DataVersion.id == 1))
    return row or 0


def bump_data_version(session: Session, at: datetime | None = None) -> int:
    """Mark the facts as changed at ``at`` (now by default) and record the opportunities'
    history at that moment; call in the transaction that changed them."""
    now = datetime.now(UTC) if at is None else utc(at)
    record_history(session, now)
    updated = session.execute(
        update(DataVersion)
        .where(DataVersion.id == 1)
        .values(version=DataVersion.version + 1, changed_at=now)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(DataVersion(id=1, version=1, changed_at=now))
    session.flush()
    return data_version(session)
