"""How long each text column is, read from the models, so input checks cannot drift from the
schema: change ``String(100)`` in ``models.py`` and every check that uses this follows."""

from __future__ import annotations

from sqlalchemy import String

from notifier.storage.models import Base


def string_lengths(model: type[Base]) -> dict[str, int]:
    """``{column: maximum characters}`` for every length-limited text column of ``model``."""
    return {
        column.name: column.type.length
        for column in model.__table__.columns
        if isinstance(column.type, String) and column.type.length is not None
    }
