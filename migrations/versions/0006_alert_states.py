"""alert states: damping and flapping between evaluations; the gap as last notified

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("alert_key", sa.String(length=300), nullable=False),
        sa.Column("firing", sa.String(length=20), nullable=True),
        sa.Column("alerting", sa.Boolean(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("evaluated_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("alert_key", name=op.f("pk_alert_states")),
    )
    with op.batch_alter_table("notification_log") as batch:
        batch.add_column(sa.Column("gap", sa.Numeric(precision=20, scale=6), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_log") as batch:
        batch.drop_column("gap")
    op.drop_table("alert_states")
