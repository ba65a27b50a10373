"""voice channel and fallback between channels (issue 22)

Voice is one more channel: its consent column on patients (and the phone's type where known), the
words a call speaks kept for the call's TwiML, a notice's fallback order on its broadcasts, and on
a delivery the one whose permanent failure queued it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("voice_consent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("phone_type", sa.String(length=10), nullable=True))
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback", sa.String(length=100), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_of", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_fallback_of_deliveries"),
            "deliveries",
            ["fallback_of"],
            ["id"],
        )
    op.create_table(
        "spoken_messages",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_spoken_messages_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_spoken_messages")),
    )


def downgrade() -> None:
    op.drop_table("spoken_messages")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_deliveries_fallback_of_deliveries"), type_="foreignkey"
        )
        batch_op.drop_column("fallback_of")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_column("fallback")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("phone_type")
        batch_op.drop_column("voice_consent")
