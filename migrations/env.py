"""Alembic environment: runs migrations on the connection kpibot hands over (see
``bot.store.database.migrate``), or on ``sqlalchemy.url`` when run from the alembic CLI."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from bot.store import (
    chat_models,  # noqa: F401  (registers the chat tables on Base)
    delivery_models,  # noqa: F401  (outbox, claims, sync runs)
    sync_models,  # noqa: F401  (sync state per source and object)
)
from bot.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as fresh:
        _migrate(fresh)


def _migrate(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
