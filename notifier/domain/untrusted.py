"""Text from outside (webhook fields): what of it may be compared, stored and logged.

PostgreSQL refuses NUL in text and a value longer than its column, and either used to turn a
signed webhook into a 500; so every field is cleaned and cut before it reaches a query.
"""

from __future__ import annotations

import unicodedata

FREE_TEXT_LIMIT = 1000  # characters kept of free text bound for an unlimited (Text) column


def printable(value: str, limit: int | None = None) -> str:
    """``value`` without control characters (line breaks and tabs become spaces), trimmed, cut to
    ``limit`` characters."""
    kept = "".join(
        " " if c in "\t\n\r" else c for c in value if c in "\t\n\r" or not _control(c)
    ).strip()
    return kept[:limit] if limit is not None else kept


def _control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"
