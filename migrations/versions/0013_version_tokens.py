"""a random token made with each data version, so that snapshots of the facts are named by
both: a store made again (its file deleted and imported anew) or restored from a backup
reaches version numbers again beside snapshots of facts it never held

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tokens = op.create_table(
        "version_tokens",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_version_tokens")),
    )
    # The version in hand gets its token; the snapshots of earlier ones, which have none,
    # are not refreshed from (the first refresh reads the facts whole).
    current = sa.table("data_version", sa.column("id"), sa.column("version"))
    op.execute(
        tokens.insert().from_select(
            ["version", "token"],
            sa.select(current.c.version, sa.literal(uuid.uuid4().hex)).where(current.c.id == 1),
        )
    )


def downgrade() -> None:
    op.drop_table("version_tokens")
