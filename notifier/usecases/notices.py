"""Notice commands: create (checked, rendered once, stored with what it was judged against),
draft (the same, stored nowhere), send a draft, update (a new version), cancel, and retry a
broadcast that failed. Reading is in ``usecases.notice_queries``, approval and history in
``usecases.approvals``; the request's shape and its checks in ``usecases.notice_requests``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.channels import parse_fallback
from notifier.domain.closures import BusinessHours, Closure, intervals_from_json, zone
from notifier.domain.notices import (
    WAITING,
    Audience,
    BroadcastStatus,
    Clinic,
    NoticeChange,
    NoticeFacts,
    NoticeStatus,
    ReminderAudience,
    channels_of,
    check_not_over,
    check_send_time,
    check_wording,
    parse_audience,
    parse_kind,
    parse_reason_code,
    parse_reminder_audience,
    too_late,
)
from notifier.domain.quiet_hours import QuietHours, held_warning, send_time_warning
from notifier.errors import ValidationError
from notifier.storage import notices as notice_rows
from notifier.storage.models import Location, Notice
from notifier.usecases import Deps
from notifier.usecases.approvals import NoticeApprovals, emergency_reason, stamp
from notifier.usecases.audit import record
from notifier.usecases.lookups import (
    latest_version,
    require_location,
    require_manager,
    require_notice,
)
from notifier.usecases.notice_requests import (
    NoticeRequest,
    closure_from_input,
    publish_instant,
    reminder_instant,
    send_instant,
    translations,
)
from notifier.usecases.plans import Plans
from notifier.usecases.previews import Previews
from notifier.usecases.views import Created, NoticeView, Preview

_EVERYWHERE = Actor.operator()  # re-reading a row the caller was already allowed to change

log = logging.getLogger(__name__)


class Notices(NoticeApprovals):
    def __init__(self, deps: Deps, previews: Previews, plans: Plans) -> None:
        super().__init__(deps, plans)
        self.previews = previews

    # --- creating -----------------------------------------------------------------------

    def create(self, actor: Actor, request: NoticeRequest) -> Created:
        """Check everything, render every message once (that rendering is the preview), then
        store the notice, what it was judged against, and its broadcast(s).

        A ``reminder_at`` adds a second broadcast of the same message: to those the first
        reached (``reminder_audience="recipients"``, the default) or to the audience as it is
        then (``"everyone"``). Without a ``send_at`` (None) the notice is a draft: stored and
        previewable, sent by ``send``. A broadcast to more patients than
        ``NOTIFIER_APPROVAL_THRESHOLD`` waits for a second manager (``approve``) unless the
        request gives an emergency reason. The public page and feeds show it from ``publish_at``
        (default: when it is queued); a ``private`` notice never. A ``fallback``
        ("sms>voice>email") tries the next channel with consent for a patient whose delivery
        failed for good for a reason that channel may cure, once.
        """
        require_manager(actor)
        now = self.clock.now()
        emergency = emergency_reason(request.emergency_reason)
        with self.db.session() as s:
            draft = self._draft(s, actor, request, request.reason)
            planned = request.send_at is not None
            first_at = send_instant(draft.facts.closure, request.send_at or "now", now)
            reminder = reminder_instant(request.reminder_at, draft.facts.closure, first_at, now)
            notice_kind = parse_kind(request.kind, draft.facts.closure)
            reminded = parse_reminder_audience(request.reminder_audience)
            facts = replace(draft.facts, audience=parse_audience(request.audience))
            names = self.previews.chosen_channels(request.channels)
            urgent = request.urgent
            chain = (
                parse_fallback(request.fallback, self.deps.channels) if request.fallback else None
            )
            # Templates fail here, before anything is stored, never first at send time.
            preview = self.previews.compose(s, facts, draft.location.id, names)
            status = BroadcastStatus.SCHEDULED if planned else BroadcastStatus.DRAFT
            if planned:
                warnings = self._send_warnings(facts.closure, first_at, names, urgent)
                preview.warnings.extend(warnings)
            notice = notice_rows.new_notice(draft.location, facts, notice_kind, now)
            stamp(notice, "created_by", actor)
            notice.emergency_reason = emergency
            notice.private = request.private
            notice.publish_at = publish_instant(
                request.publish_at, request.private, draft.facts.closure, planned, now
            )
            s.add(notice)
            first = notice_rows.new_broadcast(notice, first_at, names, urgent, now, status=status)
            first.fallback = ">".join(chain) if chain else None
            s.add(first)
            if reminder is not None:
                s.flush()
                repeats = first.id if reminded is ReminderAudience.RECIPIENTS else None
                again = notice_rows.new_broadcast(
                    notice, reminder, names, urgent, now, repeats, status
                )
                again.fallback = first.fallback
                s.add(again)
            s.flush()
            preview.notice_id = notice.id
            record(s, actor, "notice_create", now, f"notice:{notice.id}")
            log.info("notice created", extra={"action": "notice_created", "notice_id": notice.id})
            if planned:
                self._gate(s, notice)
            return Created(self._view(s, notice), preview)

    def draft(
        self, actor: Actor, request: NoticeRequest, change: NoticeChange = NoticeChange.ORIGINAL
    ) -> Preview:
        """What ``create`` with this request would send, checked the same way; stores nothing.
        ``change=UPDATE`` words it as an update of an earlier notice."""
        now = self.clock.now()
        with self.db.session() as s:
            placeholder = "" if request.reason_code else "…"
            draft = self._draft(s, actor, request, request.reason or placeholder)
            closure = draft.facts.closure
            first_at = send_instant(closure, request.send_at or "now", now)
            reminder_instant(request.reminder_at, closure, first_at, now)
            parse_kind(request.kind, closure)
            parse_reminder_audience(request.reminder_audience)
            facts = replace(draft.facts, change=change)
            names = self.previews.chosen_channels(request.channels)
            preview = self.previews.compose(s, facts, draft.location.id, names, estimate=False)
            preview.warnings.extend(self._send_warnings(closure, first_at, names, request.urgent))
            return preview

    def _send_warnings(
        self, closure: Closure, send_at: datetime, channels: Sequence[str], urgent: bool | None
    ) -> list[str]:
        """When messages scheduled at ``send_at`` really go out, where quiet hours change it."""
        quiet = QuietHours.parse(self.settings.quiet_hours)
        specs = [self.deps.spec(name) for name in channels]
        warnings = []
        if any(spec.quiet_hours and spec.urgent_in_quiet_hours for spec in specs):
            warning = send_time_warning(
                quiet, send_at, closure.tz, urgent, closure.starts, closure.ends
            )
            warnings.append(warning)
        for spec in specs:
            if spec.quiet_hours and not spec.urgent_in_quiet_hours:
                what = f"{spec.label}s"
                warnings.append(
                    held_warning(quiet, send_at, closure.tz, closure.starts, closure.ends, what)
                )
        return [warning for warning in warnings if warning]

    def _draft(self, s: Session, actor: Actor, request: NoticeRequest, reason: str) -> _Draft:
        """A notice's facts from people's input, checked against the location as it is now."""
        location = require_location(s, request.location, actor, ": add it first")
        closure = closure_from_input(location, request.starts, request.ends, request.intervals)
        message = request.message
        code = parse_reason_code(request.reason_code)
        check_wording(reason, message, code)
        available = self.deps.messages.languages()
        default = location.default_language
        messages = translations(request.message_texts, available, default, "message")
        if messages and not message:
            raise ValidationError(
                "a custom message in another language needs one in the location's language "
                "too (--message): patients of other languages get that one",
                "message",
            )
        facts = NoticeFacts(
            id=0,
            closure=closure,
            reason=reason.strip(),
            message=message.strip() if message else None,
            change=NoticeChange.ORIGINAL,
            audience=Audience.EVERYONE,
            clinic=Clinic(location.name, location.phone, default),
            reason_code=code,
            reasons=translations(request.reason_texts, available, default, "reason"),
            messages=messages,
        )
        return _Draft(location, facts)

    def send(self, actor: Actor, notice_id: int, send_at: str) -> tuple[NoticeView, list[str]]:
        """Schedule a draft: its broadcast goes out at ``send_at`` ('now' or a local time),
        its reminders at their times. Returns the notice and what to know about the time
        (quiet hours)."""
        require_manager(actor)
        now = self.clock.now()
        with self.db.session() as s:
            notice = latest_version(s, notice_id, actor)
            drafts = [b for b in notice.broadcasts if b.status == BroadcastStatus.DRAFT]
            if not drafts:
                raise ValidationError(
                    f"notice {notice_id} is not a draft: it is {self._view(s, notice).state}"
                )
            closure = notice_rows.closure_of(notice)
            instant = send_instant(closure, send_at, now)
            first, *reminders = drafts
            for reminder in reminders:
                if reminder.send_at <= instant:
                    raise ValidationError(
                        f"the reminder at {closure.local(reminder.send_at):%Y-%m-%d %H:%M} "
                        "would go before the notice: send it earlier",
                        "send_at",
                    )
                check_send_time(reminder.send_at, closure, now, "reminder_at")
            first.send_at = instant
            if notice.publish_at is None:  # queued now: the public feeds show it from now
                notice.publish_at = now
            for broadcast in drafts:
                broadcast.status = BroadcastStatus.SCHEDULED.value
            names = channels_of([b.channel_names for b in drafts])
            warnings = self._send_warnings(closure, instant, names, first.urgent)
            s.flush()
            record(s, actor, "notice_send", now, f"notice:{notice_id}")
            log.info(
                "draft scheduled",
                extra={"action": "notice_scheduled", "notice_id": notice_id, "by": actor.name},
            )
            self._gate(s, notice)
            return self._view(s, notice), warnings

    # --- versions: update, cancel -------------------------------------------------------

    def update(
        self,
        actor: Actor,
        notice_id: int,
        *,
        starts: str | None = None,
        ends: str | None = None,
        intervals: Sequence[str] = (),
        reason: str | None = None,
        message: str | None = None,
    ) -> NoticeView:
        """New times or wording as a new version of the notice, judged against the location's
        zone and hours as they are now (so an update also re-words a notice after the hours
        changed).

        In one transaction: the new version is stored, the old one's unsent copies are
        withdrawn, and a broadcast is queued that goes only to the addresses an earlier version
        actually reached (per channel). If nothing had gone out yet, the new version simply
        replaces the old one and goes to everyone at the old send time.
        """
        require_manager(actor)
        now = self.clock.now()
        with self.db.session() as s:
            original = latest_version(s, notice_id, actor)
            location = original.location
            tz = zone(original.timezone)
            if (starts or ends) and not intervals:  # one end moved: keep the other
                starts = starts or f"{original.starts_at.astimezone(tz):%Y-%m-%d %H:%M}"
                ends = ends or f"{original.ends_at.astimezone(tz):%Y-%m-%d %H:%M}"
            if starts or ends or intervals:
                closure = closure_from_input(location, starts, ends, intervals)
            else:
                closure = Closure.checked(
                    intervals_from_json(original.intervals),
                    zone(location.timezone),
                    BusinessHours.from_json(location.business_hours),
                )
            if too_late(closure.ends, now):
                raise ValidationError("the updated closure is already over", "ends")
            check_wording(reason, message)
            new = self._next_version(
                s,
                original,
                closure,
                NoticeChange.UPDATE,
                reason.strip() if reason else original.reason,
                message.strip() if message else original.message,
                now,
                actor,
            )
            record(s, actor, "notice_update", now, f"notice:{notice_id}")
            return self._view(s, new)

    def cancel(self, actor: Actor, notice_id: int, notify: bool = False) -> NoticeView:
        """Cancel a notice. With ``notify``, patients an earlier version reached are told the
        clinic is open after all (a new version in the chain); nobody else hears anything."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            require_manager(actor)
            if notice.status == NoticeStatus.CANCELLED:
                raise ValidationError(f"notice {notice_id} is already cancelled")
            record(s, actor, "notice_cancel", now, f"notice:{notice_id}")
            if notify:
                original = latest_version(s, notice_id, actor)
                new = self._next_version(
                    s,
                    original,
                    notice_rows.closure_of(original),
                    NoticeChange.CANCELLATION,
                    original.reason,
                    original.message,
                    now,
                    actor,
                )
                self._cancelled_by(s, notice_id, actor, now)
                return self._view(s, new)
            broadcasts, deliveries = notice_rows.cancel(s, notice_id, now)
            self._cancelled_by(s, notice_id, actor, now)
            log.info(
                "notice cancelled",
                extra={
                    "action": "notice_cancelled",
                    "notice_id": notice_id,
                    "broadcasts": broadcasts,
                    "deliveries": deliveries,
                    "by": actor.name,
                },
            )
            s.expire_all()
            return self._view(s, require_notice(s, notice_id, actor))

    def _cancelled_by(self, s: Session, notice_id: int, actor: Actor, now: datetime) -> None:
        s.expire_all()
        cancelled = require_notice(s, notice_id, _EVERYWHERE)
        stamp(cancelled, "cancelled_by", actor)
        cancelled.cancelled_at = now
        s.flush()

    def retry(self, actor: Actor, notice_id: int) -> int:
        """Schedule again the broadcasts of a notice whose fan-out failed (after the cause was
        fixed): they go out at once, or at their send time if that is still ahead."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            require_manager(actor)
            if notice.status != NoticeStatus.ACTIVE:
                raise ValidationError(f"notice {notice_id} is {notice.status}: nothing to retry")
            check_not_over(notice_rows.closure_of(notice), now)
            retried = [
                broadcast_id
                for broadcast_id in notice_rows.failed_broadcast_ids(s, notice_id)
                if notice_rows.transition_broadcast(
                    s, broadcast_id, BroadcastStatus.FAILED, BroadcastStatus.SCHEDULED, now
                )
            ]
            record(s, actor, "notice_retry", now, f"notice:{notice_id}", len(retried))
        log.info(
            "failed broadcasts scheduled again",
            extra={"action": "broadcast_retry", "notice_id": notice_id, "count": len(retried)},
        )
        return len(retried)

    def _next_version(
        self,
        s: Session,
        original: Notice,
        closure: Closure,
        change: NoticeChange,
        reason: str,
        message: str | None,
        now: datetime,
        actor: Actor,
    ) -> Notice:
        """Store the next version of ``original`` and withdraw what of it has not gone out, in
        the caller's transaction. An edit voids an approval: the new version is judged by the
        threshold again ("open after all" to those already told never waits)."""
        root = original.root_id or original.id
        notice_rows.hold_waiting(s, root)
        told = notice_rows.chain_reached_anyone(s, root)
        # Read before the withdrawal below cancels whatever of the original still waits.
        first, *reminders = original.broadcasts
        drafted = first.status == BroadcastStatus.DRAFT  # a draft's next version is one too
        first_waiting = first.status in WAITING
        first_send_at, urgent = first.send_at, first.urgent
        carried = [
            (reminder.send_at, reminder.repeats_id is not None)
            for reminder in reminders
            if reminder.status in WAITING
        ]
        status = BroadcastStatus.DRAFT if drafted else BroadcastStatus.SCHEDULED
        names = channels_of([b.channel_names for b in original.broadcasts])
        if not told and change is NoticeChange.CANCELLATION:
            notice_rows.cancel(s, original.id, now)  # nobody heard of it: nobody to tell
            s.expire_all()
            return require_notice(s, original.id, _EVERYWHERE)
        location = original.location
        said = notice_rows.facts(original)
        facts = NoticeFacts(
            id=0,
            closure=closure,
            reason=reason,
            message=message,
            # Nothing went out yet: the new version replaces the old one for everyone.
            change=change if told else NoticeChange.ORIGINAL,
            audience=Audience(original.audience),
            clinic=Clinic(location.name, location.phone, location.default_language),
            # The category and other languages' texts carry over; a new reason or message in
            # the location's language drops the old translations of it (they would say the old
            # thing).
            reason_code=said.reason_code,
            reasons=said.reasons if reason == original.reason else {},
            messages=said.messages if message == original.message else {},
        )
        self.previews.compose(s, facts, location.id, names, estimate=False)
        new = notice_rows.new_notice(location, facts, parse_kind(None, closure), now)
        new.supersedes_id = original.id
        new.root_id = root
        new.publish_at, new.private = original.publish_at, original.private
        new.version = original.version + 1
        stamp(new, "created_by", actor)
        s.add(new)
        s.flush()
        if change is NoticeChange.CANCELLATION:
            notice_rows.cancel(s, original.id, now)
        else:
            notice_rows.supersede(s, original.id, new.id, now)
        send_at = now if told or not first_waiting else max(now, first_send_at)
        broadcast = notice_rows.new_broadcast(new, send_at, names, urgent, now, status=status)
        s.add(broadcast)
        s.flush()
        if change is not NoticeChange.CANCELLATION:  # waiting reminders carry over
            for at, to_recipients in carried:
                if not too_late(closure.ends, at):
                    repeats = broadcast.id if to_recipients else None
                    s.add(notice_rows.new_broadcast(new, at, names, urgent, now, repeats, status))
            s.flush()
            self._gate(s, new)
        log.info(
            "notice version created",
            extra={
                "action": f"notice_{change.value}",
                "notice_id": new.id,
                "supersedes_id": original.id,
                "version": new.version,
            },
        )
        s.expire_all()
        return require_notice(s, new.id, _EVERYWHERE)


@dataclass(frozen=True)
class _Draft:
    """A checked notice not stored yet: where, and what it says."""

    location: Location
    facts: NoticeFacts
