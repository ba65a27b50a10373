"""The audit trail: rows are only ever added (on PostgreSQL a trigger refuses the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from notifier.storage.models import AuditEvent


def add_event(s: Session, event: AuditEvent) -> None:
    s.add(event)
    s.flush()


def events(
    s: Session, since: datetime | None, actor_name: str | None, limit: int
) -> Sequence[AuditEvent]:
    """Audit rows, oldest first, since a time and of one actor (by label) if given; a token's
    label ("token:5") also finds what users did through that personal token."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if actor_name is not None:
        kind, _, number = actor_name.partition(":")
        if kind == "token" and number.isascii() and number.isdigit() and len(number) < 10:
            query = query.where(
                or_(AuditEvent.actor_name == actor_name, AuditEvent.token_id == int(number))
            )
        else:
            query = query.where(AuditEvent.actor_name == actor_name)
    return s.scalars(query.limit(limit)).all()
