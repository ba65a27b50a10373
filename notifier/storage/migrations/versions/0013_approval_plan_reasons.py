"""broadcast plan, approval, undo window, reason codes (issue 20)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ACTORS = ("created_by", "approved_by", "cancelled_by")


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        for who in _ACTORS:
            batch.add_column(sa.Column(f"{who}_kind", sa.String(length=20), nullable=True))
            batch.add_column(sa.Column(f"{who}_id", sa.Integer(), nullable=True))
            batch.add_column(sa.Column(who, sa.String(length=254), nullable=True))
        batch.add_column(
            sa.Column("needs_approval", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("emergency_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reason_code", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("texts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        for name in (
            "texts",
            "reason_code",
            "emergency_reason",
            "cancelled_at",
            "approved_at",
            "needs_approval",
        ):
            batch.drop_column(name)
        for who in reversed(_ACTORS):
            for name in (who, f"{who}_id", f"{who}_kind"):
                batch.drop_column(name)
