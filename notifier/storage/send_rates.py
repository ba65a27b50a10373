"""The fleet's send timelines (PostgreSQL): slots of a sender's rate, granted in one statement."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_GRANT = text(
    """
    INSERT INTO send_rates AS r (sender, tat)
    VALUES (:sender, extract(epoch FROM clock_timestamp()) - :burst + :span)
    ON CONFLICT (sender) DO UPDATE
       SET tat = greatest(r.tat, extract(epoch FROM clock_timestamp()) - :burst) + :span
    RETURNING r.tat, extract(epoch FROM clock_timestamp())
    """
)


def grant(s: Session, sender: str, span: float, burst: float = 0.0) -> tuple[float, float]:
    """Reserve the next ``span`` seconds of ``sender``'s timeline, starting no earlier than
    ``burst`` seconds ago (what an idle sender saved up): the reservation's end, and the
    database's clock, both in epoch seconds. Grants never overlap, whichever worker asks."""
    row = s.execute(_GRANT, {"sender": sender, "span": span, "burst": burst}).one()
    return float(row[0]), float(row[1])
