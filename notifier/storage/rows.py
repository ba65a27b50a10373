"""How many rows a write touched (SQLAlchemy types ``rowcount`` only on cursor results)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def changed(s: Session, statement: Executable) -> int:
    """Run an INSERT, UPDATE or DELETE; the number of rows it changed."""
    return int(cast(CursorResult[Any], s.execute(statement)).rowcount)
