"""Text from outside (webhook fields): what of it may be compared, stored and logged.

PostgreSQL refuses NUL in text and a value longer than its column, and either used to turn a
signed webhook into a 500; so every field is cleaned and cut before it reaches a query.
"""

from __future__ import annotations

import re

CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"  # Unicode's Cc, as a regular expression range
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
FREE_TEXT_LIMIT = 1000  # characters kept of free text bound for an unlimited (Text) column


def printable(value: str, limit: int | None = None) -> str:
    """``value`` without control characters (line breaks and tabs become spaces), trimmed, cut to
    ``limit`` characters."""
    kept = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", value).strip()
    return kept[:limit] if limit is not None else kept
