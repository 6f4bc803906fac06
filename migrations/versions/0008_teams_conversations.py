"""teams conversations: where the Teams bot was installed or spoken to, for proactive messages;
destination columns widened from Slack's 40 characters to hold "teams:<conversation name>"

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (table, column) holding a delivery destination.
DESTINATIONS = (
    ("outbox", "channel"),
    ("outbox", "delivered_channel"),
    ("delivery_failures", "channel"),
    ("alert_messages", "channel"),
    ("chat_subscriptions", "channel"),
)


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths (and would have to copy each table to change them).
    if op.get_bind().dialect.name != "sqlite":
        for table, column in DESTINATIONS:
            op.alter_column(table, column, type_=sa.String(length=320))
    op.create_table(
        "teams_conversations",
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("service_url", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=True),
        sa.Column("bot_id", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.String(length=400), nullable=True),
        sa.Column("installed_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_teams_conversations")),
    )
    op.create_index(
        op.f("ix_teams_conversations_name"), "teams_conversations", ["name"], unique=False
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, column in DESTINATIONS:
            op.alter_column(table, column, type_=sa.String(length=40))
    op.drop_index(op.f("ix_teams_conversations_name"), table_name="teams_conversations")
    op.drop_table("teams_conversations")
