"""Words staff read: counts with their nouns ("1 row", "3 rows")."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, "row")`` → "1 row"; ``plural(3, "row")`` → "3 rows"."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
