"""receipts intake (status callbacks taken in, applied in batches) and provider checks

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint(
            "channel", "provider_id", "status", name=op.f("uq_receipts_channel_provider_id_status")
        ),
    )
    op.create_index("ix_receipts_claim", "receipts", ["applied_at", "due_at", "id"], unique=False)
    op.create_table(
        "provider_checks",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_provider_checks_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_provider_checks")),
    )


def downgrade() -> None:
    op.drop_table("provider_checks")
    op.drop_index("ix_receipts_claim", table_name="receipts")
    op.drop_table("receipts")
