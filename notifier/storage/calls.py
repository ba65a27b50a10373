"""The words a call speaks (kept when the call is prepared, read when Twilio fetches its TwiML)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from notifier.storage.models import Delivery, SpokenMessage


def keep(s: Session, rows: Sequence[tuple[int, str, str]], now: datetime) -> None:
    """(delivery id, language, text) of calls about to be placed; a redial's words replace the
    last call's."""
    if not rows:
        return
    s.execute(delete(SpokenMessage).where(SpokenMessage.delivery_id.in_([r[0] for r in rows])))
    s.execute(
        insert(SpokenMessage),
        [
            {"delivery_id": i, "language": language, "text": text, "created_at": now}
            for i, language, text in rows
        ],
    )


def spoken(s: Session, delivery_id: int) -> tuple[SpokenMessage, Delivery] | None:
    row = s.execute(
        select(SpokenMessage, Delivery)
        .join(Delivery, Delivery.id == SpokenMessage.delivery_id)
        .where(SpokenMessage.delivery_id == delivery_id)
    ).first()
    return (row[0], row[1]) if row is not None else None
