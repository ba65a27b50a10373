"""deliveries: index provider ids only where there is one (issue 25, item 6)

A fan-out inserts every delivery without a provider id; a plain index took one entry per row for
nothing. The status callbacks look ids up by value, which the partial index serves.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_ID = sa.text("provider_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_deliveries_provider_id", table_name="deliveries")
    op.create_index(
        "ix_deliveries_provider_id",
        "deliveries",
        ["provider_id"],
        postgresql_where=HAS_ID,
        sqlite_where=HAS_ID,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_provider_id", table_name="deliveries")
    op.create_index("ix_deliveries_provider_id", "deliveries", ["provider_id"])
