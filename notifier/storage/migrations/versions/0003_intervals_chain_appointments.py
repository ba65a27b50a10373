"""notice intervals, update chain, appointments, weekly SMS cap index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_appointments_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_appointments_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("external_id", name=op.f("uq_appointments_external_id")),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_location_starts", ["location_id", "starts_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_appointments_patient_id"), ["patient_id"], unique=False
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_kind", sa.String(length=20), nullable=True))
        batch_op.create_index(
            "ix_deliveries_cap", ["channel", "address", "created_at"], unique=False
        )

    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("intervals", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("audience", sa.String(length=20), server_default="everyone", nullable=False)
        )
        batch_op.add_column(
            sa.Column("change", sa.String(length=20), server_default="original", nullable=False)
        )
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("root_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_notices_root_id"), ["root_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notices_supersedes_id"), ["supersedes_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_notices_supersedes_id_notices"), "notices", ["supersedes_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_notices_root_id_notices"), "notices", ["root_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_notices_root_id_notices"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_notices_supersedes_id_notices"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_notices_supersedes_id"))
        batch_op.drop_index(batch_op.f("ix_notices_root_id"))
        batch_op.drop_column("root_id")
        batch_op.drop_column("supersedes_id")
        batch_op.drop_column("change")
        batch_op.drop_column("audience")
        batch_op.drop_column("intervals")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_cap")
        batch_op.drop_column("message_kind")

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointments_patient_id"))
        batch_op.drop_index("ix_appointments_location_starts")

    op.drop_table("appointments")
