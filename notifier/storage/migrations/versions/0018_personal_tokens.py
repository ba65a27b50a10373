"""personal API tokens: a token may act as a console user, and what such a token did says
which token it was (the audit trail, a notice's creator, approver and canceller)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMPS = ("created_by", "approved_by", "cancelled_by")


def upgrade() -> None:
    # Existing tokens are service tokens (no user): they keep acting as themselves.
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_user_id_users"), "users", ["user_id"], ["id"]
        )
    # Plain ADD and DROP COLUMNs, never SQLite's batch copy: that would drop audit_events'
    # append-only triggers with the old table, and no row is rewritten.
    for stamp in STAMPS:
        op.add_column("notices", sa.Column(f"{stamp}_token_id", sa.Integer(), nullable=True))
    op.add_column("audit_events", sa.Column("token_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_events", "token_id")
    for stamp in STAMPS:
        op.drop_column("notices", f"{stamp}_token_id")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_tokens_user_id_users"), type_="foreignkey")
        batch_op.drop_column("user_id")
