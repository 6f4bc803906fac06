"""change tracking: the data version each fact row last changed in, and the rows deleted in a
version, so that a sync's readers (history, facts refresh) cost what the sync changed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACKED = ("opportunities", "leads", "spend", "surveys")


def upgrade() -> None:
    for table in TRACKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("changed_in", sa.Integer(), nullable=True))
        # Rows already there changed at the latest version or before; NULL means "changed in
        # the transaction under way", which bump_data_version stamps.
        op.execute(
            f"UPDATE {table} SET changed_in = "
            "COALESCE((SELECT version FROM data_version WHERE id = 1), 0)"
        )
        op.create_index(op.f(f"ix_{table}_changed_in"), table, ["changed_in"], unique=False)
    op.create_table(
        "fact_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_deletions")),
    )
    op.create_index(op.f("ix_fact_deletions_version"), "fact_deletions", ["version"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_fact_deletions_version"), table_name="fact_deletions")
    op.drop_table("fact_deletions")
    for table in TRACKED:
        op.drop_index(op.f(f"ix_{table}_changed_in"), table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("changed_in")
