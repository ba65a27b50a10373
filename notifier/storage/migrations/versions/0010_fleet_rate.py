"""send_rates: one send timeline per sender, shared by every worker (fleet rate limit)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:00:00

Used on PostgreSQL only (SQLite runs one worker, which keeps its rate in process); created on
both so that the schema is one.
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
        "send_rates",
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_send_rates")),
    )


def downgrade() -> None:
    op.drop_table("send_rates")
