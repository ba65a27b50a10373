"""How many rows a write touched (SQLAlchemy types ``rowcount`` only on cursor results), and
inserts that a unique key may turn into "already there"."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def changed(s: Session, statement: Executable) -> int:
    """Run an INSERT, UPDATE or DELETE; the number of rows it changed. ``preserve_rowcount``:
    without it SQLAlchemy reports -1 for an ``INSERT … SELECT`` on psycopg (PostgreSQL)."""
    result = s.execute(statement, execution_options={"preserve_rowcount": True})
    return int(cast(CursorResult[Any], result).rowcount)


def insert_new(s: Session, model: type[DeclarativeBase], **values: Any) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING``: True if the row was added, False if a row with the
    same unique key exists (or is being added by a concurrent transaction, which PostgreSQL
    waits for): no check-then-insert race, no integrity error to catch."""
    table = cast(Table, model.__table__)
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    # RETURNING says whether a row was added (psycopg's row count is -1 here).
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return s.execute(statement).first() is not None
