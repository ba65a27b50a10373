"""a reminder repeats a broadcast's recipients

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("repeats_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_broadcasts_repeats_id_broadcasts"), "broadcasts", ["repeats_id"], ["id"]
        )
    # Before this revision a notice's second broadcast was always its reminder, sent to the
    # whole audience. Those already sent are marked as reminders; those still scheduled keep
    # what they were created with (no repeats_id: the audience as it is then).
    op.execute(
        "UPDATE broadcasts SET repeats_id = (SELECT min(first.id) FROM broadcasts AS first "
        "WHERE first.notice_id = broadcasts.notice_id) "
        "WHERE id > (SELECT min(first.id) FROM broadcasts AS first "
        "WHERE first.notice_id = broadcasts.notice_id) AND status <> 'scheduled'"
    )


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_constraint(op.f("fk_broadcasts_repeats_id_broadcasts"), type_="foreignkey")
        batch.drop_column("repeats_id")
