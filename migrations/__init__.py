"""Alembic revisions, installed as the package ``bot.migrations``; ``bot.store.database``
hands its location to Alembic."""
