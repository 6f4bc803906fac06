"""facts' date indexes that no query reads dropped: the facts are read whole (into memory, or
into the snapshot), never filtered by date in SQL, and these indexes cost every import a sort
of their table (5 of the 27 s of a first import of a million deals and two million leads)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → its date column that had an index
DATES = {"opportunities": "close_date", "leads": "created_at", "spend": "date", "surveys": "date"}


def upgrade() -> None:
    for table, column in DATES.items():
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)


def downgrade() -> None:
    for table, column in DATES.items():
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)
