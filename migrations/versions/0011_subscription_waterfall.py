"""chat subscriptions' waterfall: the grain of the period whose pipeline movements over the
last seven days a digest subscribed from chat carries (``/kpi subscribe … with pipeline
changes``), none for the rows before it

Revision ID: 0011
Revises: 0008 (0010 once the migrations of the same stop, 0009 and 0010, are merged before it)
Create Date: 2026-12-01 22:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_subscriptions") as batch:
        batch.add_column(sa.Column("waterfall", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_subscriptions") as batch:
        batch.drop_column("waterfall")
