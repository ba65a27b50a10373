"""Notices: create (checked, rendered once, stored with what it was judged against), list,
update (a new version), cancel, retry a broadcast that failed, and the appointments a closure
affects."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.channels import parse_fallback
from notifier.domain.closures import (
    BusinessHours,
    Closure,
    Interval,
    intervals_from_json,
    intervals_to_json,
    parse_interval,
    parse_local,
    zone,
)
from notifier.domain.notices import (
    Audience,
    BroadcastStatus,
    Clinic,
    NoticeChange,
    NoticeFacts,
    NoticeKind,
    NoticeStatus,
    ReminderAudience,
    check_not_over,
    check_send_time,
    check_wording,
    parse_audience,
    parse_kind,
    parse_reminder_audience,
    too_late,
)
from notifier.domain.quiet_hours import QuietHours, send_time_warning
from notifier.errors import ValidationError
from notifier.storage import notices as notice_rows
from notifier.storage.models import Broadcast, Location, Notice
from notifier.usecases import Deps, UseCase
from notifier.usecases.lookups import location_id_of, require_location, require_notice
from notifier.usecases.previews import Previews
from notifier.usecases.views import (
    AffectedAppointment,
    Created,
    NoticeView,
    Preview,
    notice_view,
)

log = logging.getLogger(__name__)


class Notices(UseCase):
    def __init__(self, deps: Deps, previews: Previews) -> None:
        super().__init__(deps)
        self.previews = previews

    # --- reading ------------------------------------------------------------------------

    def get(self, notice_id: int) -> NoticeView:
        with self.db.session() as s:
            return self._view(s, require_notice(s, notice_id))

    def all(self, location_slug: str | None = None) -> list[NoticeView]:
        """Every notice (of a location), as stored: nothing is re-checked, so one notice whose
        location has changed since never stops the list."""
        with self.db.session() as s:
            return self._views(s, notice_rows.notices(s, location_id_of(s, location_slug)))

    def chain(self, notice_id: int) -> list[NoticeView]:
        """Every version of a notice, oldest first."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
            return self._views(s, notice_rows.chain(s, notice.root_id or notice.id))

    def _views(self, s: Session, notices: Sequence[Notice]) -> list[NoticeView]:
        """Notices as staff should read them now (what replaced each, in one query)."""
        now = self.clock.now()
        followed = notice_rows.successors(s, [n.id for n in notices])
        return [notice_view(n, now, followed.get(n.id)) for n in notices]

    def _view(self, s: Session, notice: Notice) -> NoticeView:
        return self._views(s, [notice])[0]

    def affected(self, notice_id: int) -> list[AffectedAppointment]:
        """Appointments inside the notice's closed intervals, for the front desk to reschedule."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
            tz = zone(notice.timezone)
            rows = notice_rows.affected_appointments(
                s, notice.location_id, intervals_from_json(notice.intervals)
            )
            return [
                AffectedAppointment(
                    appointment=a.external_id,
                    patient=a.patient.external_id,
                    first_name=a.patient.first_name,
                    last_name=a.patient.last_name,
                    starts=a.starts_at.astimezone(tz).isoformat(),
                    ends=a.ends_at.astimezone(tz).isoformat(),
                    provider=a.provider,
                    status=a.status,
                )
                for a in rows
            ]

    # --- creating -----------------------------------------------------------------------

    def create(
        self,
        location_slug: str,
        starts: str | None,
        ends: str | None,
        reason: str,
        kind: str | None = None,
        message: str | None = None,
        send_at: str | None = "now",
        channels: str | None = None,
        urgent: bool | None = None,
        *,
        intervals: Sequence[str] = (),
        audience: str = Audience.EVERYONE.value,
        reminder_at: str | None = None,
        reminder_audience: str = ReminderAudience.RECIPIENTS.value,
        publish_at: str | None = None,
        private: bool = False,
        fallback: str | None = None,
    ) -> Created:
        """Check everything, render every message once (that rendering is the preview), then
        store the notice, what it was judged against, and its broadcast(s).

        The closure is ``starts``–``ends``, or one or more ``intervals`` ("START/END"). A
        ``reminder_at`` adds a second broadcast of the same message: to those the first reached
        (``reminder_audience="recipients"``, the default) or to the audience as it is then
        (``"everyone"``). ``channels`` defaults to every registered channel. Without a
        ``send_at`` (None) the notice is a draft: stored and previewable, sent by ``send``.
        The public page and feeds show it from ``publish_at`` (a local time; default: when it
        is queued, i.e. now, or when a draft is sent); a ``private`` notice never.
        A ``fallback`` ("sms>voice>email") tries the next channel with consent for a patient
        whose delivery failed for good for a reason that channel may cure, once.
        """
        now = self.clock.now()
        with self.db.session() as s:
            draft = self._draft(s, location_slug, starts, ends, intervals, reason, message)
            planned = send_at is not None
            send_instant = _send_instant(draft.facts.closure, send_at or "now", now)
            reminder = _reminder_instant(reminder_at, draft.facts.closure, send_instant, now)
            notice_kind = parse_kind(kind, draft.facts.closure)
            reminded = parse_reminder_audience(reminder_audience)
            facts = replace(draft.facts, audience=parse_audience(audience))
            names = self.previews.channel_names(channels or self.deps.default_channels())
            chain = parse_fallback(fallback, self.deps.channels) if fallback else None
            # Templates fail here, before anything is stored, never first at send time.
            preview = self.previews.compose(s, facts, draft.location.id, names)
            status = BroadcastStatus.SCHEDULED if planned else BroadcastStatus.DRAFT
            if planned:
                warnings = self._send_warnings(facts.closure, send_instant, names, urgent)
                preview.warnings.extend(warnings)
            notice = _notice_row(draft.location, facts, notice_kind, now)
            notice.private = private
            notice.publish_at = _publish_instant(
                publish_at, private, draft.facts.closure, planned, now
            )
            s.add(notice)
            first = _broadcast_row(notice, send_instant, names, urgent, now, status=status)
            first.fallback = ">".join(chain) if chain else None
            s.add(first)
            if reminder is not None:
                s.flush()
                repeats = first.id if reminded is ReminderAudience.RECIPIENTS else None
                again = _broadcast_row(notice, reminder, names, urgent, now, repeats, status)
                again.fallback = first.fallback
                s.add(again)
            s.flush()
            preview.notice_id = notice.id
            log.info("notice created", extra={"action": "notice_created", "notice_id": notice.id})
            return Created(self._view(s, notice), preview)

    def draft(
        self,
        location_slug: str,
        starts: str,
        ends: str,
        reason: str,
        kind: str | None = None,
        message: str | None = None,
        send_at: str = "now",
        channels: str | None = None,
        change: str = NoticeChange.ORIGINAL.value,
        reminder_at: str | None = None,
        reminder_audience: str = ReminderAudience.RECIPIENTS.value,
        urgent: bool | None = None,
    ) -> Preview:
        """What ``create`` with these fields would send, checked the same way; stores nothing.
        ``change="update"`` words it as an update of an earlier notice."""
        now = self.clock.now()
        with self.db.session() as s:
            draft = self._draft(s, location_slug, starts, ends, (), reason or "…", message)
            closure = draft.facts.closure
            send_instant = _send_instant(closure, send_at, now)
            _reminder_instant(reminder_at, closure, send_instant, now)
            parse_kind(kind, closure)
            parse_reminder_audience(reminder_audience)
            facts = replace(draft.facts, change=NoticeChange(change))
            names = self.previews.channel_names(channels or self.deps.default_channels())
            preview = self.previews.compose(s, facts, draft.location.id, names, estimate=False)
            preview.warnings.extend(self._send_warnings(closure, send_instant, names, urgent))
            return preview

    def _send_warnings(
        self, closure: Closure, send_at: datetime, channels: Sequence[str], urgent: bool | None
    ) -> list[str]:
        """When texts scheduled at ``send_at`` really go out, where quiet hours change it."""
        if not any(self.deps.spec(name).quiet_hours for name in channels):
            return []
        warning = send_time_warning(
            QuietHours.parse(self.settings.quiet_hours),
            send_at,
            closure.tz,
            urgent,
            closure.starts,
            closure.ends,
        )
        return [warning] if warning else []

    def _draft(
        self,
        s: Session,
        location_slug: str,
        starts: str | None,
        ends: str | None,
        intervals: Sequence[str],
        reason: str,
        message: str | None,
    ) -> _Draft:
        """A notice's facts from people's input, checked against the location as it is now."""
        location = require_location(s, location_slug, ": add it first")
        closure = closure_from_input(location, starts, ends, intervals)
        check_wording(reason, message)
        facts = NoticeFacts(
            id=0,
            closure=closure,
            reason=reason.strip(),
            message=message.strip() if message else None,
            change=NoticeChange.ORIGINAL,
            audience=Audience.EVERYONE,
            clinic=Clinic(location.name, location.phone, location.default_language),
        )
        return _Draft(location, facts)

    def send(self, notice_id: int, send_at: str) -> tuple[NoticeView, list[str]]:
        """Schedule a draft: its broadcast goes out at ``send_at`` ('now' or a local time),
        its reminders at their times. Returns the notice and what to know about the time
        (quiet hours)."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = self._latest(s, notice_id)
            drafts = [b for b in notice.broadcasts if b.status == BroadcastStatus.DRAFT]
            if not drafts:
                raise ValidationError(
                    f"notice {notice_id} is not a draft: it is {self._view(s, notice).state}"
                )
            closure = notice_rows.closure_of(notice)
            instant = _send_instant(closure, send_at, now)
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
            names = self.previews.channel_names([b.channels for b in drafts])
            warnings = self._send_warnings(closure, instant, names, first.urgent)
            s.flush()
            log.info(
                "draft scheduled", extra={"action": "notice_scheduled", "notice_id": notice_id}
            )
            return self._view(s, notice), warnings

    # --- versions: update, cancel -------------------------------------------------------

    def update(
        self,
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
        now = self.clock.now()
        with self.db.session() as s:
            original = self._latest(s, notice_id)
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
            )
            return self._view(s, new)

    def cancel(self, notice_id: int, notify: bool = False) -> NoticeView:
        """Cancel a notice. With ``notify``, patients an earlier version reached are told the
        clinic is open after all (a new version in the chain); nobody else hears anything."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
            if notice.status == NoticeStatus.CANCELLED:
                raise ValidationError(f"notice {notice_id} is already cancelled")
            if notify:
                original = self._latest(s, notice_id)
                new = self._next_version(
                    s,
                    original,
                    notice_rows.closure_of(original),
                    NoticeChange.CANCELLATION,
                    original.reason,
                    original.message,
                    now,
                )
                return self._view(s, new)
            broadcasts, deliveries = notice_rows.cancel(s, notice_id, now)
            log.info(
                "notice cancelled",
                extra={
                    "action": "notice_cancelled",
                    "notice_id": notice_id,
                    "broadcasts": broadcasts,
                    "deliveries": deliveries,
                },
            )
            s.expire_all()
            return self._view(s, require_notice(s, notice_id))

    def retry(self, notice_id: int) -> int:
        """Schedule again the broadcasts of a notice whose fan-out failed (after the cause was
        fixed): they go out at once, or at their send time if that is still ahead."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
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
        log.info(
            "failed broadcasts scheduled again",
            extra={"action": "broadcast_retry", "notice_id": notice_id, "count": len(retried)},
        )
        return len(retried)

    def _latest(self, s: Session, notice_id: int) -> Notice:
        notice = require_notice(s, notice_id)
        if notice.status == NoticeStatus.SUPERSEDED:
            newest = notice_rows.chain(s, notice.root_id or notice.id)[-1]
            raise ValidationError(
                f"notice {notice_id} was replaced by notice {newest.id}; change that one"
            )
        if notice.status == NoticeStatus.CANCELLED:
            raise ValidationError(f"notice {notice_id} is cancelled")
        return notice

    def _next_version(
        self,
        s: Session,
        original: Notice,
        closure: Closure,
        change: NoticeChange,
        reason: str,
        message: str | None,
        now: datetime,
    ) -> Notice:
        """Store the next version of ``original`` and withdraw what of it has not gone out, in
        the caller's transaction."""
        root = original.root_id or original.id
        notice_rows.hold_waiting(s, root)
        told = notice_rows.chain_reached_anyone(s, root)
        # Read before the withdrawal below cancels whatever of the original still waits.
        first, *reminders = original.broadcasts
        drafted = first.status == BroadcastStatus.DRAFT  # a draft's next version is one too
        waiting = (BroadcastStatus.SCHEDULED, BroadcastStatus.DRAFT)
        first_waiting = first.status in waiting
        first_send_at, urgent = first.send_at, first.urgent
        carried = [
            (reminder.send_at, reminder.repeats_id is not None)
            for reminder in reminders
            if reminder.status in waiting
        ]
        status = BroadcastStatus.DRAFT if drafted else BroadcastStatus.SCHEDULED
        names = self.previews.channel_names([b.channels for b in original.broadcasts])
        if not told and change is NoticeChange.CANCELLATION:
            notice_rows.cancel(s, original.id, now)  # nobody heard of it: nobody to tell
            s.expire_all()
            return require_notice(s, original.id)
        location = original.location
        facts = NoticeFacts(
            id=0,
            closure=closure,
            reason=reason,
            message=message,
            # Nothing went out yet: the new version replaces the old one for everyone.
            change=change if told else NoticeChange.ORIGINAL,
            audience=Audience(original.audience),
            clinic=Clinic(location.name, location.phone, location.default_language),
        )
        self.previews.compose(s, facts, location.id, names, estimate=False)
        new = _notice_row(location, facts, parse_kind(None, closure), now)
        new.supersedes_id = original.id
        new.root_id = root
        new.publish_at, new.private = original.publish_at, original.private
        new.version = original.version + 1
        s.add(new)
        s.flush()
        if change is NoticeChange.CANCELLATION:
            notice_rows.cancel(s, original.id, now)
        else:
            notice_rows.supersede(s, original.id, new.id, now)
        send_at = now if told or not first_waiting else max(now, first_send_at)
        broadcast = _broadcast_row(new, send_at, names, urgent, now, status=status)
        s.add(broadcast)
        s.flush()
        if change is not NoticeChange.CANCELLATION:  # waiting reminders carry over
            for at, to_recipients in carried:
                if not too_late(closure.ends, at):
                    repeats = broadcast.id if to_recipients else None
                    s.add(_broadcast_row(new, at, names, urgent, now, repeats, status))
            s.flush()
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
        return require_notice(s, new.id)


@dataclass(frozen=True)
class _Draft:
    """A checked notice not stored yet: where, and what it says."""

    location: Location
    facts: NoticeFacts


def closure_from_input(
    location: Location, starts: str | None, ends: str | None, intervals: Sequence[str]
) -> Closure:
    """One closure from ``--starts/--ends`` or from one or more ``--interval START/END``,
    checked against the location's zone and business hours as they are now."""
    tz = zone(location.timezone)
    hours = BusinessHours.from_json(location.business_hours)
    parsed: list[Interval] = [parse_interval(text, tz) for text in intervals]
    if starts or ends:
        if not (starts and ends):
            raise ValidationError(
                "give both a start and an end (or intervals 'START/END')",
                "ends" if starts else "starts",
            )
        parsed.append(
            (parse_local(starts, tz, "start", "starts"), parse_local(ends, tz, "end", "ends"))
        )
    if not parsed:
        raise ValidationError(
            "give the closure's start and end, or one or more intervals", "starts"
        )
    return Closure.checked(parsed, tz, hours)


def _send_instant(closure: Closure, send_at: str, now: datetime) -> datetime:
    """The send instant for ``send_at`` ('now' or a local time), checked against the closure."""
    check_not_over(closure, now)
    if send_at.strip().lower() == "now":
        instant = now
    else:
        instant = parse_local(send_at, closure.tz, "send time", "send_at")
    check_send_time(instant, closure, now)
    return instant


def _publish_instant(
    publish_at: str | None, private: bool, closure: Closure, queued: bool, now: datetime
) -> datetime | None:
    """When the public feeds show a new notice: at ``publish_at`` (local), else once queued
    (now, or for a draft when it is sent: None until then)."""
    if publish_at is None or not publish_at.strip():
        return now if queued else None
    if private:
        raise ValidationError(
            "a private notice is never published: give a publish time or --no-publish, not both",
            "publish_at",
        )
    instant = parse_local(publish_at, closure.tz, "the publish time", "publish_at")
    if too_late(closure.ends, instant):
        raise ValidationError(
            f"the publish time {closure.local(instant):%Y-%m-%d %H:%M} is after the closure "
            f"ends ({closure.local(closure.ends):%Y-%m-%d %H:%M}); nobody would see it",
            "publish_at",
        )
    return instant


def _reminder_instant(
    reminder_at: str | None, closure: Closure, send_instant: datetime, now: datetime
) -> datetime | None:
    """A reminder goes out after the first send and, like it, before the closure is over."""
    if reminder_at is None or not reminder_at.strip():
        return None
    reminder = parse_local(reminder_at, closure.tz, "the reminder time", "reminder_at")
    if reminder <= send_instant:
        raise ValidationError(
            f"the reminder time {closure.local(reminder):%Y-%m-%d %H:%M} must be after the send "
            f"time ({closure.local(send_instant):%Y-%m-%d %H:%M})",
            "reminder_at",
        )
    try:
        check_send_time(reminder, closure, now, "reminder_at")
    except ValidationError as exc:
        raise ValidationError(f"the reminder: {exc}", "reminder_at") from None
    return reminder


def _notice_row(location: Location, facts: NoticeFacts, kind: NoticeKind, now: datetime) -> Notice:
    """A notice row keeping its facts: intervals, and the zone and hours they were judged by."""
    closure = facts.closure
    return Notice(
        location=location,
        kind=kind.value,
        starts_at=closure.starts,
        ends_at=closure.ends,
        intervals=intervals_to_json(closure.intervals),
        timezone=closure.tz.key,
        business_hours=closure.hours.to_json(),
        audience=facts.audience.value,
        change=facts.change.value,
        reason=facts.reason,
        message=facts.message,
        status=NoticeStatus.ACTIVE.value,
        version=1,
        created_at=now,
        updated_at=now,
    )


def _broadcast_row(
    notice: Notice,
    send_at: datetime,
    channels: Sequence[str],
    urgent: bool | None,
    now: datetime,
    repeats_id: int | None = None,
    status: BroadcastStatus = BroadcastStatus.SCHEDULED,
) -> Broadcast:
    """A broadcast row; a draft's ``send_at`` is when it was drafted until ``send`` sets it."""
    return Broadcast(
        notice=notice,
        send_at=send_at,
        channels=",".join(channels),
        urgent=urgent,
        status=status.value,
        repeats_id=repeats_id,
        created_at=now,
    )
