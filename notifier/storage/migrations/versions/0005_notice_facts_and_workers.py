"""notices keep the zone and business hours they were judged against; worker heartbeats

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.storage.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("business_hours", sa.JSON(), nullable=True))
    _backfill_notices()
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("timezone", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("business_hours", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("intervals", existing_type=sa.JSON(), nullable=False)
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )


def _backfill_notices() -> None:
    """Notices stored before this revision take their location's current zone and hours (the
    best record there is) and their envelope as their one interval when they had none."""
    notices = sa.table(
        "notices",
        sa.column("id", sa.Integer),
        sa.column("location_id", sa.Integer),
        sa.column("starts_at", UTCDateTime()),
        sa.column("ends_at", UTCDateTime()),
        sa.column("intervals", sa.JSON),
        sa.column("timezone", sa.String),
        sa.column("business_hours", sa.JSON),
    )
    locations = sa.table(
        "locations",
        sa.column("id", sa.Integer),
        sa.column("timezone", sa.String),
        sa.column("business_hours", sa.JSON),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            notices.c.id,
            notices.c.starts_at,
            notices.c.ends_at,
            notices.c.intervals,
            locations.c.timezone,
            locations.c.business_hours,
        ).join(locations, locations.c.id == notices.c.location_id)
    ).all()
    for row in rows:
        intervals = row.intervals or [[row.starts_at.isoformat(), row.ends_at.isoformat()]]
        connection.execute(
            sa.update(notices)
            .where(notices.c.id == row.id)
            .values(intervals=intervals, timezone=row.timezone, business_hours=row.business_hours)
        )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("intervals", existing_type=sa.JSON(), nullable=True)
        batch.drop_column("business_hours")
        batch.drop_column("timezone")
