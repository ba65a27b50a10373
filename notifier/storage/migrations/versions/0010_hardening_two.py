"""hardening round two

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:00:00

A placeholder so that parallel work (issue 24) has a fixed place in one straight history;
it is filled in by that work, or stays a no-op.
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
