"""API tokens that may see patients (not-reached lists, the log's patient field)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:00:00

API tokens may be given the right to see patients (``api_tokens.sees_patients``): the delivery
log's patient field and a notice's not-reached list. Existing tokens do not have it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.add_column(
            sa.Column("sees_patients", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("sees_patients")
