"""message files: the bytes a message carries (the digest's chart PNG), stored once beside its
outbox row and pruned with it; chat subscriptions' chart switch

Revision ID: 0010
Revises: 0008 (0009 once the change-tracking migration is merged before it)
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_files",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_message_files")),
    )
    with op.batch_alter_table("chat_subscriptions") as batch:
        batch.add_column(sa.Column("chart", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("chat_subscriptions") as batch:
        batch.drop_column("chart")
    op.drop_table("message_files")
