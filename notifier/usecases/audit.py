"""The audit trail: every manager's and admin's action and every bulk read of patients' data,
with who (the actor's label: ``user:3``, ``token:2``, ``operator``; ``via`` names the personal
token a user acted through, ``token:5``), when, from where and what (ids and counts, never a
patient's name, phone or email). Rows are written in the transaction
of the action they record, so an action that rolls back leaves no row and none is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.errors import NotFoundError
from notifier.storage import audit as audit_rows
from notifier.storage.models import AuditEvent
from notifier.usecases import UseCase

log = logging.getLogger(__name__)
MAX_ROWS = 10_000


@dataclass(frozen=True)
class AuditView:
    id: int
    at: str
    actor: str  # user:3, token:2, operator
    ip: str | None
    action: str
    target: str | None
    count: int | None
    outcome: str
    via: str | None = None  # token:5, the personal token user:3 acted through


def record(
    s: Session,
    actor: Actor,
    action: str,
    now: datetime,
    target: str | None = None,
    count: int | None = None,
    outcome: str = "ok",
) -> None:
    """Add one audit row in the caller's transaction."""
    audit_rows.add_event(
        s,
        AuditEvent(
            at=now,
            actor_kind=actor.kind.value,
            actor_id=actor.id,
            actor_name=actor.label,
            token_id=actor.token_id,
            ip=actor.ip,
            action=action,
            target=target,
            count=count,
            outcome=outcome,
        ),
    )


class Audit(UseCase):
    def record(
        self,
        actor: Actor,
        action: str,
        target: str | None = None,
        count: int | None = None,
        outcome: str = "ok",
    ) -> None:
        """Add one audit row in a transaction of its own (for reads and sign-ins)."""
        with self.db.session() as s:
            record(s, actor, action, self.clock.now(), target, count, outcome)

    def events(
        self,
        actor: Actor,
        since: datetime | None = None,
        of: str | None = None,
        limit: int = MAX_ROWS,
    ) -> list[AuditView]:
        """The trail, oldest first; admins only (anyone else: not found). ``of``: one actor's
        rows ("user:3"), or a token's ("token:5": also what users did through it). Reading it
        is audited too."""
        if not actor.is_admin or not actor.every_location:
            raise NotFoundError("no audit trail here: admins only")
        with self.db.session() as s:
            rows = audit_rows.events(s, since, of, limit)
            views = [
                AuditView(
                    id=r.id,
                    at=r.at.isoformat(timespec="seconds"),
                    actor=r.actor_name,
                    ip=r.ip,
                    action=r.action,
                    target=r.target,
                    count=r.count,
                    outcome=r.outcome,
                    via=None if r.token_id is None else f"token:{r.token_id}",
                )
                for r in rows
            ]
            record(s, actor, "audit_read", self.clock.now(), count=len(views))
            return views
