"""The audit trail: rows are only ever added (on PostgreSQL a trigger refuses the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.storage.models import AuditEvent


def add_event(s: Session, event: AuditEvent) -> None:
    s.add(event)
    s.flush()


def events(
    s: Session, since: datetime | None, actor_name: str | None, limit: int
) -> Sequence[AuditEvent]:
    """Audit rows, oldest first, since a time and of one actor (by label or name) if given."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if actor_name is not None:
        query = query.where(AuditEvent.actor_name == actor_name)
    return s.scalars(query.limit(limit)).all()
