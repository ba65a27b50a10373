"""answers and auto-replies go out through a worker: a queue on conversation_messages (issue 23)

Staff answers and closure auto-replies are stored ``queued`` and sent by the ``send_answers``
job, with retries and a lease, as deliveries are: their attempts, when the next one is due, who
holds the claim and until when, whether the provider must be asked before a resend, and when
the provider took it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("next_attempt_at", "lease_until", "sent_at", "updated_at")


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite's batch mode would rebuild the table.
    op.add_column(
        "conversation_messages",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "conversation_messages",
        sa.Column("needs_reconcile", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "conversation_messages", sa.Column("claimed_by", sa.String(length=100), nullable=True)
    )
    for name in _TIMES:
        op.add_column(
            "conversation_messages", sa.Column(name, sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_conversation_messages_claim",
        "conversation_messages",
        ["state", "next_attempt_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_claim", table_name="conversation_messages")
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        for name in ("attempts", "needs_reconcile", "claimed_by", *_TIMES):
            batch_op.drop_column(name)
