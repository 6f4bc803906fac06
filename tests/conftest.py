"""Shared fixtures: a migrated store on SQLite (always) and on PostgreSQL (when
KPIBOT_TEST_DATABASE_URL is set, as in CI), each test in its own database or schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from bot.settings import VARIABLES
from bot.store.database import make_engine, migrate

POSTGRES_URL = os.environ.get("KPIBOT_TEST_DATABASE_URL")

# A developer's .env (the README says to copy .env.example there) must not reach the tests, nor
# the kpibot processes they start: a variable set in the process, even empty, wins over it.
for _name in VARIABLES:
    os.environ.setdefault(_name, "")


def postgres_engine() -> Iterator[Engine]:
    """A fresh schema on the test PostgreSQL server, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("KPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(
        POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty store on each supported database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    for engine in postgres_engine():
        migrate(engine)
        yield engine


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    migrate(engine)
    yield engine
    engine.dispose()
