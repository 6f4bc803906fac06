"""The store: the canonical CRM model and the app's own state in SQLAlchemy, created through
Alembic migrations, and the loading of facts into DataFrames once per data version."""
