"""Engines, sessions and migrations. SQLite is the embedded default (one process); PostgreSQL
is supported for several processes sharing one database.

Migrating is a release step on a shared database: ``kpibot migrate`` (the Procfile's
``release``) runs it under an advisory lock, and the serving processes only check that the
schema is current (``ensure_schema``), so that they never race each other to create it. On
SQLite, one process owns the file and ``ensure_schema`` migrates it, so the demo and small
installs need no extra step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from bot.store.changes import KEPT_VERSIONS, forget_before, stamp
from bot.store.first_load import back_to_wal, enter_wal
from bot.store.history import record_history, utc
from bot.store.models import DataVersion, VersionToken
from bot.store.sqlite_staging import detach_staged
from bot.worded import WordedError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

# The Alembic scripts, installed as a package (setup.py maps the top-level migrations/ folder).
MIGRATIONS = "bot.migrations"
# pg_advisory_xact_lock key held while migrating ("kpibot" in ASCII): the processes that
# migrate at the same moment take turns, and all but the first find nothing left to do.
MIGRATION_LOCK = 0x6B7069626F74
# The newest revision, which a new revision file must name here too (a test compares it with
# Alembic's head): a process finds its store current without importing Alembic, whose modules
# (with Mako and Pygments) would cost every serving process memory and start time.
HEAD = "0013"


class SchemaNotCurrent(WordedError):
    """The database's schema is not the one this kpibot was built for."""

    def __init__(self, current: str | None, head: str, *, newer: bool = False) -> None:
        self.current = current
        self.head = head
        if newer:
            super().__init__("schema.newer", current=current, head=head)
        elif current:
            super().__init__("schema.behind", current=current, head=head)
        else:
            super().__init__("schema.empty", head=head)


# The page size of a new SQLite store. A large write moves every page through the WAL and back
# into the file, a system call each: at 4 KiB the benchmark's import of 3M rows made 528,000
# writes and 223,000 reads, and 32 KiB pages made it about 10 % faster; a sync of 1,000 deals
# at random writes bigger pages (about 0.1 s more, measured). It only applies to a file with
# nothing in it yet: a store made before keeps its pages (docs/decisions.md, stop 27).
STORE_PAGE_BYTES = 32_768


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # Before the journal mode: switching a new file to WAL writes its first page.
            cursor.execute(f"PRAGMA page_size={STORE_PAGE_BYTES}")
            cursor.close()
            enter_wal(dbapi_connection, record.info)

        @event.listens_for(engine, "checkin")
        def _returned(dbapi_connection, record):  # type: ignore[no-untyped-def]
            # A large upsert's rows are read from a staging database attached to the
            # connection (bot.store.sqlite_staging), which only the end of its transaction
            # lets go of; a first load left WAL for its transaction (bot.store.first_load).
            detach_staged(dbapi_connection, record.info)
            back_to_wal(dbapi_connection, record.info)

        return engine
    return create_engine(url, pool_pre_ping=True)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of an SQLite store; None for a store without a plain one (an in-memory
    SQLite, a URI filename, PostgreSQL)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


# Alembic is imported only to migrate or to explain a schema that is not current: a process
# whose store is at ``HEAD`` never loads it (``ensure_schema``).


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    # A wheel is unpacked on disk, so the package is a real folder Alembic can list.
    config.set_main_option("script_location", str(files(MIGRATIONS)))
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision(scripts: ScriptDirectory | None = None) -> str:
    """The newest revision of Alembic's scripts (``HEAD`` names it too)."""
    head = (scripts or _scripts()).get_current_head()
    assert head is not None, "no Alembic revision in bot.migrations"
    return head


def schema_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the latest Alembic revision (idempotent, and safe when several
    processes run it at once on PostgreSQL). Returns the revisions before and after."""
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends, which is when the migration is committed.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        else:
            # sqlite3 opens a transaction only before a DML statement, so the migrations' DDL
            # ran outside one: a migration failing half way left the schema half changed. An
            # explicit one makes the whole upgrade one commit (DDL is transactional in
            # SQLite), and IMMEDIATE takes the write lock first, so that two processes
            # migrating at once run one after the other.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        before = schema_revision(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return before, schema_revision(connection) or head_revision()


def ensure_schema(engine: Engine) -> None:
    """What every process but ``kpibot migrate`` does on start: migrate an SQLite database
    (one process owns it), check any other and raise ``SchemaNotCurrent`` when it is behind or
    ahead of this kpibot."""
    with engine.connect() as connection:
        current = schema_revision(connection)
    if current == HEAD:
        return
    if engine.dialect.name == "sqlite":
        migrate(engine)
        return
    from alembic.util import CommandError

    scripts = _scripts()
    head = head_revision(scripts)
    try:
        known = current is None or scripts.get_revision(current) is not None
    except CommandError:  # a revision id this kpibot's scripts do not have
        known = False
    raise SchemaNotCurrent(current, head, newer=not known)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def data_version(session: Session) -> int:
    row = session.scalar(select(DataVersion.version).where(DataVersion.id == 1))
    return row or 0


class VersionStamp(NamedTuple):
    """A data version as one store made it: its number, and the random token made with it
    (``VersionToken``; "" for version 0, or one made before tokens were)."""

    version: int
    token: str


def version_stamp(session: Session) -> VersionStamp:
    """The stamp of the store's data version: read on every question, in one statement."""
    row = session.execute(
        select(DataVersion.version, VersionToken.token)
        .outerjoin(VersionToken, VersionToken.version == DataVersion.version)
        .where(DataVersion.id == 1)
    ).first()
    return VersionStamp(0, "") if row is None else VersionStamp(row.version, row.token or "")


def version_token(session: Session, version: int) -> str:
    """The token of ``version`` ("" when it has none)."""
    token = session.scalar(select(VersionToken.token).where(VersionToken.version == version))
    return token or ""


def bump_data_version(session: Session, at: datetime | None = None) -> int:
    """Mark the facts as changed at ``at`` (now by default), record the opportunities'
    history at that moment and stamp the rows changed with the new version
    (``bot.store.changes``); call in the transaction that changed them. The version is made
    first, so that the history also finds the rows marked with it beforehand."""
    now = datetime.now(UTC) if at is None else utc(at)
    updated = session.execute(
        update(DataVersion)
        .where(DataVersion.id == 1)
        .values(version=DataVersion.version + 1, changed_at=now)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(DataVersion(id=1, version=1, changed_at=now))
    session.flush()
    version = data_version(session)
    session.execute(insert(VersionToken).values(version=version, token=uuid.uuid4().hex))
    forget_before(session, version - KEPT_VERSIONS)
    record_history(session, now, version)
    stamp(session, version)
    return version
