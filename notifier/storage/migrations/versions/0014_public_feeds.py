"""public feeds: publish time and per-location switch (issue 21)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of a table others point at would trip
    # SQLite's foreign keys on a database that holds rows.
    op.add_column("notices", sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "notices", sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    # Notices stored before: published from their creation, as a new one is by default;
    # drafts (never sent) wait for their send like a new draft does.
    op.execute(
        "UPDATE notices SET publish_at = created_at WHERE NOT EXISTS (SELECT 1 FROM broadcasts"
        " WHERE broadcasts.notice_id = notices.id AND broadcasts.status = 'draft')"
    )
    op.add_column(
        "locations",
        sa.Column("public_feeds", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("locations") as batch:
        batch.drop_column("public_feeds")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("private")
        batch.drop_column("publish_at")
