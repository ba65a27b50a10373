"""How many rows a write touched (SQLAlchemy types ``rowcount`` only on cursor results)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def changed(s: Session, statement: Executable) -> int:
    """Run an INSERT, UPDATE or DELETE; the number of rows it changed. ``preserve_rowcount``:
    without it SQLAlchemy reports -1 for an ``INSERT … SELECT`` on psycopg (PostgreSQL)."""
    result = s.execute(statement, execution_options={"preserve_rowcount": True})
    return int(cast(CursorResult[Any], result).rowcount)
