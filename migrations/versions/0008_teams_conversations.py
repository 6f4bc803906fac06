"""teams conversations: where the Teams bot was installed or spoken to, for proactive messages

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


def upgrade() -> None:
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
    op.drop_index(op.f("ix_teams_conversations_name"), table_name="teams_conversations")
    op.drop_table("teams_conversations")
