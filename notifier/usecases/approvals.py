"""Two people for a mass send: a broadcast reaching more patients than
NOTIFIER_APPROVAL_THRESHOLD waits for a second manager (``approve``) unless it is an emergency
send with a stated reason; ``history`` says who created, approved and cancelled each version."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor, ActorKind
from notifier.domain.notices import BroadcastStatus, check_not_over
from notifier.errors import ForbiddenError, NotifierError, ValidationError
from notifier.storage import notices as notice_rows
from notifier.storage.models import Notice
from notifier.usecases import Deps
from notifier.usecases.audit import record
from notifier.usecases.lookups import latest_version, require_notice
from notifier.usecases.notice_queries import NoticeQueries
from notifier.usecases.plans import Plans
from notifier.usecases.views import HistoryEntry, NoticeView, history_of

log = logging.getLogger(__name__)
NEEDS_A_PERSON = (
    "approval needs a person: a personal token (`notifier token create --name NAME --user "
    "EMAIL`), the console, or `notifier notice approve ID --as EMAIL`"
)


class NoticeApprovals(NoticeQueries):
    def __init__(self, deps: Deps, plans: Plans) -> None:
        super().__init__(deps)
        self.plans = plans

    def _gate(self, s: Session, notice: Notice) -> None:
        """Hold the notice's scheduled broadcasts for a second manager when the plan reaches
        more patients than NOTIFIER_APPROVAL_THRESHOLD, unless it is an emergency send (logged
        as a warning, to be seen)."""
        scheduled = [b for b in notice.broadcasts if b.status == BroadcastStatus.SCHEDULED]
        if not scheduled:
            return
        if notice.emergency_reason:
            log.warning(
                "emergency broadcast without a second manager: %s",
                notice.emergency_reason,
                extra={
                    "action": "notice_emergency",
                    "notice_id": notice.id,
                    "by": notice.created_by,
                },
            )
            return
        if not self.plans.of(s, notice).needs_approval:
            return
        notice.needs_approval = True
        for broadcast in scheduled:
            broadcast.status = BroadcastStatus.AWAITING_APPROVAL.value
        s.flush()
        log.info(
            "notice awaits approval",
            extra={"action": "notice_awaiting_approval", "notice_id": notice.id},
        )

    def approve(self, actor: Actor, notice_id: int) -> NoticeView:
        """A second manager lets a notice awaiting approval go out: at its send time, or, when
        that has passed, as soon as the undo window after this approval is over. Only a person
        approves (a console user, the CLI's --as, a personal API token; never the operator or
        a service token), a manager, never the notice's creator."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = latest_version(s, notice_id, actor)
            refused = _not_an_approver(actor, notice, notice_id)
            if refused is None:
                return self._approved(s, actor, notice, notice_id, now)
            # Committed, then raised: the trail keeps who tried to approve and was refused.
            record(s, actor, "notice_approve", now, f"notice:{notice_id}", outcome="refused")
        raise refused

    def _approved(
        self, s: Session, actor: Actor, notice: Notice, notice_id: int, now: datetime
    ) -> NoticeView:
        waiting = [b for b in notice.broadcasts if b.status == BroadcastStatus.AWAITING_APPROVAL]
        if not waiting:
            raise ValidationError(
                f"notice {notice_id} does not await approval: it is {self._view(s, notice).state}"
            )
        check_not_over(notice_rows.closure_of(notice), now)
        for broadcast in waiting:
            broadcast.send_at = max(broadcast.send_at, now)
            broadcast.status = BroadcastStatus.SCHEDULED.value
        stamp(notice, "approved_by", actor)
        notice.approved_at = now
        s.flush()
        record(s, actor, "notice_approve", now, f"notice:{notice_id}")
        log.info(
            "notice approved",
            extra={"action": "notice_approved", "notice_id": notice_id, "by": actor.name},
        )
        return self._view(s, notice)

    def history(self, actor: Actor, notice_id: int) -> list[HistoryEntry]:
        """Who did what to a notice and its versions, and when, oldest first."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            entries = [
                entry
                for version in notice_rows.chain(s, notice.root_id or notice.id)
                for entry in history_of(version)
            ]
            return sorted(entries, key=lambda e: e.at)


def _not_an_approver(actor: Actor, notice: Notice, notice_id: int) -> NotifierError | None:
    """Why ``actor`` may not approve ``notice`` (None: they may): only a person, a manager,
    other than its creator."""
    if actor.kind is not ActorKind.USER:
        return ForbiddenError(NEEDS_A_PERSON)
    if not actor.can_manage:
        return ForbiddenError(
            "approval needs a manager: a viewer, or a personal token of the read scope, "
            "cannot approve"
        )
    if (notice.created_by_kind, notice.created_by_id) == (actor.kind.value, actor.id):
        return ValidationError(
            f"{actor.name} created notice {notice_id}: another manager must approve it "
            "(or send it alone with --emergency and a reason)",
            "actor",
        )
    return None


def stamp(notice: Notice, role: str, actor: Actor) -> None:
    """Record ``actor`` as the notice's ``created_by``, ``approved_by`` or ``cancelled_by``
    (and the personal token they acted through, if any)."""
    setattr(notice, f"{role}_kind", actor.kind.value)
    setattr(notice, f"{role}_id", actor.id)
    setattr(notice, role, actor.name)
    setattr(notice, f"{role}_token_id", actor.token_id)


def emergency_reason(reason: str | None) -> str | None:
    """An emergency send needs a stated reason (and, like every change, a manager)."""
    if reason is None:
        return None
    if not reason.strip():
        raise ValidationError("an emergency send needs a reason (--emergency-reason)", "emergency")
    return reason.strip()
