"""what the staff see: reasons, import reports, not-reached

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:00:00

A placeholder so that parallel work (issue 16) has a fixed place in one straight history;
it is filled in by that work, or stays a no-op.
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
