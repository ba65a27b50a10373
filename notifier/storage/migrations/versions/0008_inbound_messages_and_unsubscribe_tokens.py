"""inbound messages idempotent by MessageSid; opaque unsubscribe tokens

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 17:00:00

Opaque unsubscribe tokens are stateless (a keyed tag of the address, found again among the
patient's addresses): they need no table.
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
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("keyword", sa.String(length=20), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "channel", "provider_id", name=op.f("uq_inbound_messages_channel_provider_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
