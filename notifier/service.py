"""Use cases for clinic managers and ops: locations, notices, previews, the delivery log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from notifier import store
from notifier.clock import Clock
from notifier.contacts import display_phone, mask_address, normalize_phone
from notifier.db import Database
from notifier.domain import (
    Audience,
    BroadcastStatus,
    BusinessHours,
    Closure,
    Interval,
    NoticeChange,
    NoticeKind,
    NoticeStatus,
    check_send_time,
    intervals_from_json,
    intervals_to_json,
    parse_channels,
    parse_interval,
    parse_local,
    zone,
)
from notifier.errors import NotFoundError, ValidationError
from notifier.models import Appointment, Broadcast, Delivery, Location, Notice
from notifier.rendering import AppointmentInfo, MessageContext, RenderedSms, Renderer
from notifier.settings import Settings

log = logging.getLogger(__name__)


DELIVERY_CSV_COLUMNS = (
    "id",
    "notice_id",
    "notice_version",
    "supersedes_id",
    "channel",
    "address",
    "state",
    "attempts",
    "provider_id",
    "error_code",
    "error",
    "segments",
    "sent_at",
    "updated_at",
)
"""The delivery log's CSV columns, the same from the CLI and the console."""


# --- views returned to the CLI / API ------------------------------------------------------


@dataclass(frozen=True)
class LocationView:
    slug: str
    name: str
    timezone: str
    phone: str | None
    business_hours: str
    default_language: str


@dataclass(frozen=True)
class SmsPreview:
    language: str
    text: str
    segments: int
    encoding: str
    characters: int
    template: str = "closure"


@dataclass(frozen=True)
class EmailPreview:
    language: str
    subject: str
    text: str
    html: str
    template: str = "closure"


@dataclass
class Preview:
    notice_id: int
    channels: dict[str, str]  # channel -> "enabled" or the reason it is disabled
    sms: list[SmsPreview] = field(default_factory=list)
    email: list[EmailPreview] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # channel -> seconds the broadcast needs at the configured rate (SMS counts segments)
    estimated_seconds: dict[str, float] = field(default_factory=dict)
    # The SMS with the most segments any one patient gets (names, appointment times vary).
    longest_sms: SmsPreview | None = None


@dataclass(frozen=True)
class NoticeView:
    id: int
    location: str
    kind: str
    status: str
    version: int
    starts: str  # local ISO time at the location
    ends: str
    reason: str
    message: str | None
    broadcasts: list[dict[str, object]]
    intervals: list[list[str]] = field(default_factory=list)  # local ISO [start, end] pairs
    audience: str = Audience.EVERYONE.value
    change: str = NoticeChange.ORIGINAL.value
    supersedes_id: int | None = None
    root_id: int | None = None


@dataclass(frozen=True)
class AffectedAppointment:
    appointment: str  # external ids, as the practice's schedule knows them
    patient: str
    first_name: str
    last_name: str
    starts: str  # local ISO time at the location
    ends: str
    provider: str
    status: str


@dataclass(frozen=True)
class DeliveryView:
    id: int
    notice_id: int
    notice_version: int
    supersedes_id: int | None
    broadcast_id: int
    channel: str
    address: str  # masked
    state: str
    attempts: int
    provider_id: str | None
    error_code: str | None
    error: str | None
    segments: int | None
    sent_at: str | None
    updated_at: str


@dataclass(frozen=True)
class EventView:
    at: str
    kind: str
    state: str
    attempt: int
    code: str | None
    detail: str | None


@dataclass(frozen=True)
class PatientView:
    external_id: str
    name: str
    location: str
    language: str
    phone: str | None  # masked
    email: str | None  # masked
    sms: str  # "consented", "no consent" or "opted out"
    email_state: str


def _consent_state(consented: bool, opted_out: bool) -> str:
    if opted_out:
        return "opted out"
    return "consented" if consented else "no consent"


# --- building message contexts ------------------------------------------------------------


def closure_of(notice: Notice, location: Location) -> Closure:
    tz = zone(location.timezone)
    hours = BusinessHours.from_json(location.business_hours)
    if notice.intervals:
        return Closure.of(intervals_from_json(notice.intervals), tz, hours)
    return Closure(starts=notice.starts_at, ends=notice.ends_at, tz=tz, hours=hours)


def message_context(
    notice: Notice,
    location: Location,
    language: str,
    first_name: str = "",
    appointments: Sequence[Appointment] = (),
) -> MessageContext:
    closure = closure_of(notice, location)
    return MessageContext(
        language=language,
        location_name=location.name,
        location_phone=display_phone(location.phone) if location.phone else None,
        location_phone_e164=location.phone,
        reason=notice.reason,
        segments=closure.wording(),
        reopens=closure.reopens(),
        custom_message=notice.message,
        first_name=first_name,
        change=notice.change or NoticeChange.ORIGINAL.value,
        appointments=[
            AppointmentInfo(a.starts_at.astimezone(closure.tz), a.provider) for a in appointments
        ],
    )


def template_for(notice: Notice, message_kind: str | None) -> str:
    """Which message a delivery carries: "open after all", the patient's appointments, or the
    general notice."""
    if notice.change == NoticeChange.CANCELLATION:
        return "open"
    if message_kind == store.MESSAGE_APPOINTMENT:
        return "appointment"
    return "closure"


def delivery_message(s: Session, delivery: Delivery, language: str) -> tuple[MessageContext, str]:
    """The context and template for one delivery (its patient's own appointments included)."""
    notice = delivery.broadcast.notice
    template = template_for(notice, delivery.message_kind)
    appointments: Sequence[Appointment] = ()
    if template == "appointment":
        appointments = store.affected_appointments(s, notice, delivery.patient_id)
        if not appointments:  # rescheduled since the fan-out: the general notice still fits
            template = "closure"
    ctx = message_context(
        notice, notice.location, language, delivery.patient.first_name, appointments
    )
    return ctx, template


def resolve_language(wanted: str | None, fallback: str, available: Sequence[str]) -> str:
    """The patient's language when we have templates for it, else the location's default."""
    if wanted and wanted.lower() in available:
        return wanted.lower()
    return fallback


# --- the service --------------------------------------------------------------------------


class NotifierService:
    def __init__(self, db: Database, renderer: Renderer, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.renderer = renderer
        self.clock = clock
        self.settings = settings

    # locations

    def add_location(
        self,
        slug: str,
        name: str,
        timezone: str,
        business_hours: str,
        phone: str | None = None,
        default_language: str = "en",
    ) -> LocationView:
        slug = slug.strip().lower()
        if not slug or not slug.replace("-", "").isalnum():
            raise ValidationError(f"location slug {slug!r} must be letters, digits and dashes")
        if not name.strip():
            raise ValidationError("location name is empty")
        zone(timezone)
        hours = BusinessHours.parse(business_hours)
        phone_e164 = normalize_phone(phone, self.settings.default_region) if phone else None
        if default_language not in self.renderer.languages():
            raise ValidationError(
                f"default language {default_language!r} has no templates "
                f"(available: {', '.join(self.renderer.languages())})"
            )
        now = self.clock.now()
        with self.db.session() as s:
            location = store.location_by_slug(s, slug)
            if location is None:
                location = Location(slug=slug, created_at=now)
                s.add(location)
            location.name = name.strip()
            location.timezone = timezone
            location.business_hours = hours.to_json()
            location.phone = phone_e164
            location.default_language = default_language
            s.flush()
            return _location_view(location)

    def list_locations(self) -> list[LocationView]:
        with self.db.session() as s:
            return [_location_view(loc) for loc in store.locations(s)]

    # notices

    def create_notice(
        self,
        location_slug: str,
        starts: str | None,
        ends: str | None,
        reason: str,
        kind: str | None = None,
        message: str | None = None,
        send_at: str = "now",
        channels: str = "sms,email",
        urgent: bool | None = None,
        *,
        intervals: Sequence[str] = (),
        audience: str = Audience.EVERYONE.value,
        reminder_at: str | None = None,
    ) -> NoticeView:
        """Validate everything, render every message once, then store notice and broadcast.

        The closure is ``starts``–``ends``, or one or more ``intervals`` ("START/END"). A
        ``reminder_at`` adds a second broadcast of the same message to the same audience.
        """
        now = self.clock.now()
        with self.db.session() as s:
            location = store.location_by_slug(s, location_slug)
            if location is None:
                raise NotFoundError(f"no location {location_slug!r}: add it first")
            closure = _closure_from_input(location, starts, ends, intervals)
            audience = _audience(audience)
            send_instant = _check_timing(closure, send_at, now)
            reminder = _reminder_instant(reminder_at, closure, send_instant, now)
            notice_kind = NoticeKind(kind) if kind else closure.inferred_kind()
            if not reason.strip():
                raise ValidationError("give a reason (e.g. 'inclement weather')")
            if message is not None and not message.strip():
                raise ValidationError("the custom message is empty: leave it out or write it")
            channel_names = parse_channels(channels)
            notice = Notice(
                location=location,
                kind=notice_kind.value,
                starts_at=closure.starts,
                ends_at=closure.ends,
                intervals=intervals_to_json(closure.intervals),
                audience=audience,
                change=NoticeChange.ORIGINAL.value,
                reason=reason.strip(),
                message=message.strip() if message else None,
                status=NoticeStatus.ACTIVE.value,
                version=1,
                created_at=now,
                updated_at=now,
            )
            # Templates fail here, before anything is stored, never first at send time.
            self._render_all(s, notice, location, channel_names)
            s.add(notice)
            for instant in (send_instant, reminder):
                if instant is None:
                    continue
                s.add(
                    Broadcast(
                        notice=notice,
                        send_at=instant,
                        channels=",".join(channel_names),
                        urgent=urgent,
                        status=BroadcastStatus.SCHEDULED.value,
                        created_at=now,
                    )
                )
            s.flush()
            log.info(
                "notice created",
                extra={"action": "notice_created", "notice_id": notice.id},
            )
            return _notice_view(notice)

    def notice(self, notice_id: int) -> NoticeView:
        with self.db.session() as s:
            return _notice_view(self._notice(s, notice_id))

    def list_notices(self, location_slug: str | None = None) -> list[NoticeView]:
        with self.db.session() as s:
            location_id = None
            if location_slug:
                location = store.location_by_slug(s, location_slug)
                if location is None:
                    raise NotFoundError(f"no location {location_slug!r}")
                location_id = location.id
            return [_notice_view(n) for n in store.notices(s, location_id)]

    def preview(self, notice_id: int, channel: str | None = None) -> Preview:
        with self.db.session() as s:
            notice = self._notice(s, notice_id)
            wanted = parse_channels(channel) if channel else _notice_channels(notice)
            result = Preview(notice_id=notice.id, channels={})
            for name in wanted:
                status = self.settings.channel_statuses()[name]
                result.channels[name] = "enabled" if status.enabled else status.reason
                if not status.enabled:
                    result.warnings.append(status.reason)
            self._render_all(s, notice, notice.location, wanted, into=result)
            enabled = [n for n in wanted if result.channels[n] == "enabled"]
            result.estimated_seconds = estimate_broadcast(
                s, notice, enabled, self.renderer, self.settings
            )
            result.warnings.extend(estimate_warnings(result.estimated_seconds, self.settings))
            if notice.status == NoticeStatus.CANCELLED:
                result.warnings.append("this notice is cancelled: nothing more will be sent")
            return result

    def update_notice(
        self,
        notice_id: int,
        *,
        starts: str | None = None,
        ends: str | None = None,
        intervals: Sequence[str] = (),
        reason: str | None = None,
        message: str | None = None,
    ) -> NoticeView:
        """New times or wording as a new version of the notice.

        In one transaction: the new version is stored, the old one's unsent copies are
        withdrawn, and a broadcast is queued that goes only to the addresses an earlier version
        actually reached (per channel). If nothing had gone out yet, the new version simply
        replaces the old one and goes to everyone at the old send time.
        """
        now = self.clock.now()
        with self.db.session() as s:
            original = self._latest(s, notice_id)
            location = original.location
            if (starts or ends) and not intervals:  # one end moved: keep the other
                tz = zone(location.timezone)
                starts = starts or f"{original.starts_at.astimezone(tz):%Y-%m-%d %H:%M}"
                ends = ends or f"{original.ends_at.astimezone(tz):%Y-%m-%d %H:%M}"
            if starts or ends or intervals:
                closure = _closure_from_input(location, starts, ends, intervals)
            else:
                closure = closure_of(original, location)
            if closure.ends <= now:
                raise ValidationError("the updated closure is already over")
            if reason is not None and not reason.strip():
                raise ValidationError("give a reason (e.g. 'inclement weather')")
            if message is not None and not message.strip():
                raise ValidationError("the custom message is empty: leave it out or write it")
            new = self._next_version(
                s,
                original,
                closure,
                NoticeChange.UPDATE,
                reason.strip() if reason else original.reason,
                message.strip() if message else original.message,
                now,
            )
            return _notice_view(new)

    def cancel_notice(self, notice_id: int, notify: bool = False) -> NoticeView:
        """Cancel a notice. With ``notify``, patients an earlier version reached are told the
        clinic is open after all (a new version in the chain); nobody else hears anything."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = self._notice(s, notice_id)
            if notice.status == NoticeStatus.CANCELLED:
                raise ValidationError(f"notice {notice_id} is already cancelled")
            if notify:
                original = self._latest(s, notice_id)
                new = self._next_version(
                    s,
                    original,
                    closure_of(original, original.location),
                    NoticeChange.CANCELLATION,
                    original.reason,
                    original.message,
                    now,
                )
                return _notice_view(new)
            broadcasts, deliveries = store.cancel_notice(s, notice_id, now)
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
            return _notice_view(self._notice(s, notice_id))

    # the delivery log

    def delivery_log(
        self,
        notice_id: int | None = None,
        state: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DeliveryView]:
        with self.db.session() as s:
            if notice_id is not None:
                self._notice(s, notice_id)
            rows = store.delivery_log(s, notice_id, state, channel, limit, offset)
            return [_delivery_view(d) for d in rows]

    def retry_failed(self, notice_id: int | None = None) -> int:
        """Re-queue failed deliveries (not of cancelled notices or ended closures)."""
        now = self.clock.now()
        with self.db.session() as s:
            if notice_id is not None:
                self._notice(s, notice_id)
            ids = store.retry_failed(s, now, notice_id)
        log.info(
            "failed deliveries re-queued",
            extra={"action": "retry_requested", "notice_id": notice_id, "count": len(ids)},
        )
        return len(ids)

    def summary(self, notice_id: int) -> dict[str, dict[str, int]]:
        with self.db.session() as s:
            self._notice(s, notice_id)
            counts: dict[str, dict[str, int]] = {}
            for (channel, state), count in store.state_counts(s, notice_id).items():
                counts.setdefault(channel, {})[state] = count
            return counts

    # for the web console

    def preview_draft(
        self,
        location_slug: str,
        starts: str,
        ends: str,
        reason: str,
        kind: str | None = None,
        message: str | None = None,
        send_at: str = "now",
        channels: str = "sms,email",
        change: str = NoticeChange.ORIGINAL.value,
        reminder_at: str | None = None,
    ) -> Preview:
        """What ``create_notice`` with these fields would send, checked the same way; stores
        nothing. ``change="update"`` words it as an update of an earlier notice."""
        now = self.clock.now()
        with self.db.session() as s:
            location = store.location_by_slug(s, location_slug)
            if location is None:
                raise NotFoundError(f"no location {location_slug!r}: add it first")
            closure = _closure_from_input(location, starts, ends, ())
            _reminder_instant(reminder_at, closure, _check_timing(closure, send_at, now), now)
            if kind and kind not in {k.value for k in NoticeKind}:
                raise ValidationError(f"kind {kind!r} is not one of closure, early-close, ...")
            channel_names = parse_channels(channels)
            draft = Notice(
                location=location,
                kind=(NoticeKind(kind) if kind else closure.inferred_kind()).value,
                starts_at=closure.starts,
                ends_at=closure.ends,
                reason=reason.strip() or "…",
                message=message.strip() if message and message.strip() else None,
                change=NoticeChange(change).value,
                status=NoticeStatus.ACTIVE.value,
                version=1,
            )
            result = Preview(notice_id=0, channels={})
            for name in channel_names:
                status = self.settings.channel_statuses()[name]
                result.channels[name] = "enabled" if status.enabled else status.reason
                if not status.enabled:
                    result.warnings.append(status.reason)
            self._render_all(s, draft, location, channel_names, into=result)
            if draft in s:
                s.expunge(draft)
            return result

    def delivery_history(self, delivery_id: int) -> tuple[DeliveryView, list[EventView]]:
        """One delivery and every event it went through, oldest first."""
        with self.db.session() as s:
            rows = store.deliveries_with_context(s, [delivery_id])
            if not rows:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            events = [
                EventView(
                    at=e.at.isoformat(),
                    kind=e.kind,
                    state=e.state,
                    attempt=e.attempt,
                    code=e.code,
                    detail=e.detail,
                )
                for e in store.events_for(s, [delivery_id])
            ]
            return _delivery_view(rows[0]), events

    def list_patients(
        self, location_slug: str | None = None, limit: int = 200, offset: int = 0
    ) -> tuple[list[PatientView], int]:
        """One page of patients with their consent state (addresses masked) and the total."""
        with self.db.session() as s:
            location_id = None
            if location_slug:
                location = store.location_by_slug(s, location_slug)
                if location is None:
                    raise NotFoundError(f"no location {location_slug!r}")
                location_id = location.id
            rows, total = store.patients(s, location_id, limit, offset)
            addresses = [a for p in rows for a in (p.phone, p.email) if a]
            opted_out = store.opted_out(s, addresses) if addresses else set()
            views = [
                PatientView(
                    external_id=p.external_id,
                    name=f"{p.first_name} {p.last_name}".strip(),
                    location=p.location.slug,
                    language=p.language,
                    phone=mask_address(p.phone) if p.phone else None,
                    email=mask_address(p.email) if p.email else None,
                    sms=_consent_state(p.sms_consent, ("sms", p.phone or "") in opted_out),
                    email_state=_consent_state(
                        p.email_consent, ("email", p.email or "") in opted_out
                    ),
                )
                for p in rows
            ]
            return views, total

    def affected(self, notice_id: int) -> list[AffectedAppointment]:
        """Appointments inside the notice's closed intervals, for the front desk to reschedule."""
        with self.db.session() as s:
            notice = self._notice(s, notice_id)
            tz = zone(notice.location.timezone)
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
                for a in store.affected_appointments(s, notice)
            ]

    # helpers

    def _latest(self, s: Session, notice_id: int) -> Notice:
        notice = self._notice(s, notice_id)
        if notice.status == NoticeStatus.SUPERSEDED:
            newest = store.chain(s, notice.root_id or notice.id)[-1]
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
        told = store.chain_reached_anyone(s, root)
        waiting = [b for b in original.broadcasts if b.status == BroadcastStatus.SCHEDULED]
        channels = _notice_channels(original)
        if not told and change is NoticeChange.CANCELLATION:
            store.cancel_notice(s, original.id, now)  # nobody heard of it: nobody to tell
            s.expire_all()
            return self._notice(s, original.id)
        new = Notice(
            location=original.location,
            kind=closure.inferred_kind().value,
            starts_at=closure.starts,
            ends_at=closure.ends,
            intervals=intervals_to_json(closure.intervals),
            audience=original.audience,
            # Nothing went out yet: the new version replaces the old one for everyone.
            change=change.value if told else NoticeChange.ORIGINAL.value,
            supersedes_id=original.id,
            root_id=root,
            reason=reason,
            message=message,
            status=NoticeStatus.ACTIVE.value,
            version=original.version + 1,
            created_at=now,
            updated_at=now,
        )
        self._render_all(s, new, original.location, channels)
        s.add(new)
        s.flush()
        if change is NoticeChange.CANCELLATION:
            store.cancel_notice(s, original.id, now)
        else:
            store.supersede_notice(s, original.id, new.id, now)
        send_at = now if told or not waiting else max(now, waiting[0].send_at)
        s.add(
            Broadcast(
                notice=new,
                send_at=send_at,
                channels=",".join(channels),
                urgent=original.broadcasts[0].urgent if original.broadcasts else None,
                status=BroadcastStatus.SCHEDULED.value,
                created_at=now,
            )
        )
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
        return self._notice(s, new.id)

    def _notice(self, s: Session, notice_id: int) -> Notice:
        notice = store.notice(s, notice_id)
        if notice is None:
            raise NotFoundError(f"no notice with id {notice_id}")
        return notice

    def _render_all(
        self,
        s: Session,
        notice: Notice,
        location: Location,
        channels: Sequence[str],
        into: Preview | None = None,
    ) -> None:
        available = self.renderer.languages()
        languages = {location.default_language} | {
            resolve_language(lang, location.default_language, available)
            for lang in store.languages_at(s, location.id)
        }
        templates = _templates_of(notice)
        for language, template in ((lang, t) for lang in sorted(languages) for t in templates):
            ctx = message_context(notice, location, language)
            if template == "appointment":  # a sample: the real ones are each patient's own
                ctx = replace(ctx, appointments=[_sample_appointment(ctx)])
            if "sms" in channels:
                sms = self.renderer.render_sms(ctx, template)
                if into is not None:
                    into.sms.append(_sms_preview(language, sms, template))
            if "email" in channels:
                email = self.renderer.render_email(ctx, template)
                if into is not None:
                    into.email.append(
                        EmailPreview(language, email.subject, email.text, email.html, template)
                    )
        if into is not None and "sms" in channels:
            into.longest_sms = self._longest_sms(s, notice, location, available)

    def _longest_sms(
        self, s: Session, notice: Notice, location: Location, available: Sequence[str]
    ) -> SmsPreview | None:
        """The SMS with the most segments any one patient will get: names and appointment
        times change the length. Renders the longest first name per language, and each
        affected patient's own appointments (never every patient)."""
        longest: SmsPreview | None = None
        template = _templates_of(notice)[0]
        for language, first_name in store.longest_first_names(s, location.id):
            lang = resolve_language(language, location.default_language, available)
            ctx = message_context(notice, location, lang, first_name)
            candidate = _sms_preview(lang, self.renderer.render_sms(ctx, template), template)
            longest = _longer(longest, candidate)
        if "appointment" in _templates_of(notice):
            by_patient: dict[int, list[Appointment]] = {}
            for appointment in store.affected_appointments(s, notice):
                by_patient.setdefault(appointment.patient_id, []).append(appointment)
            for appointments in by_patient.values():
                patient = appointments[0].patient
                lang = resolve_language(patient.language, location.default_language, available)
                ctx = message_context(notice, location, lang, patient.first_name, appointments)
                sms = self.renderer.render_sms(ctx, "appointment")
                longest = _longer(longest, _sms_preview(lang, sms, "appointment"))
        return longest


def estimate_broadcast(
    s: Session, notice: Notice, channels: Sequence[str], renderer: Renderer, settings: Settings
) -> dict[str, float]:
    """Seconds each channel needs to send this notice to everyone who consented, at the
    configured rate: SMS segments ÷ SMS rate, emails ÷ email rate. Counts, never loads, patients."""
    location = notice.location
    available = renderer.languages()
    estimate: dict[str, float] = {}
    for channel in channels:
        counts = store.recipient_counts(s, location.id, channel)
        if channel == "sms":
            units = 0
            for language, count in counts.items():
                lang = resolve_language(language, location.default_language, available)
                sms = renderer.render_sms(message_context(notice, location, lang))
                units += count * sms.info.segments
            rate = settings.sms_rate_per_second
        else:
            units = sum(counts.values())
            rate = settings.email_rate_per_second
        estimate[channel] = round(units / rate, 1)
    return estimate


def estimate_warnings(estimate: dict[str, float], settings: Settings) -> list[str]:
    """Warn when a channel needs longer than the provider will queue (Twilio: ~10 hours)."""
    window = settings.sms_queue_window_seconds
    warnings = []
    for channel, seconds in estimate.items():
        if seconds > window:
            rate_var = f"NOTIFIER_{channel.upper()}_RATE_PER_SECOND"
            warnings.append(
                f"{channel}: sending to everyone takes about {seconds / 3600:.1f} h at the "
                f"configured rate ({rate_var}), longer than the {window / 3600:.0f} h the provider "
                "queues; later messages may be dropped or arrive after the closure — use a faster "
                "sender or split the list"
            )
    return warnings


def _closure_from_input(
    location: Location, starts: str | None, ends: str | None, intervals: Sequence[str]
) -> Closure:
    """One closure from ``--starts/--ends`` or from one or more ``--interval START/END``."""
    tz = zone(location.timezone)
    hours = BusinessHours.from_json(location.business_hours)
    parsed: list[Interval] = [parse_interval(text, tz) for text in intervals]
    if starts or ends:
        if not (starts and ends):
            raise ValidationError("give both a start and an end (or intervals 'START/END')")
        parsed.append((parse_local(starts, tz, "start"), parse_local(ends, tz, "end")))
    if not parsed:
        raise ValidationError("give the closure's start and end, or one or more intervals")
    return Closure.of(parsed, tz, hours)


def _check_timing(closure: Closure, send_at: str, now: datetime) -> datetime:
    """The send instant for ``send_at`` ('now' or a local time), checked against the closure."""
    if closure.ends <= now:
        raise ValidationError(
            f"the closure ended at {closure.local(closure.ends):%Y-%m-%d %H:%M}; "
            "there is nothing left to tell patients"
        )
    send_instant = (
        now if send_at.strip().lower() == "now" else parse_local(send_at, closure.tz, "send time")
    )
    check_send_time(send_instant, closure, now)
    return send_instant


def _reminder_instant(
    reminder_at: str | None, closure: Closure, send_instant: datetime, now: datetime
) -> datetime | None:
    """A reminder goes out after the first send and, like it, before the closure is over."""
    if reminder_at is None or not reminder_at.strip():
        return None
    reminder = parse_local(reminder_at, closure.tz, "the reminder time")
    if reminder <= send_instant:
        raise ValidationError(
            f"the reminder time {closure.local(reminder):%Y-%m-%d %H:%M} must be after the send "
            f"time ({closure.local(send_instant):%Y-%m-%d %H:%M})"
        )
    try:
        check_send_time(reminder, closure, now)
    except ValidationError as exc:
        raise ValidationError(f"the reminder: {exc}") from None
    return reminder


def _audience(value: str) -> str:
    try:
        return Audience(value.strip().lower()).value
    except ValueError:
        raise ValidationError(
            f"audience {value!r} not understood: use {', '.join(a.value for a in Audience)}"
        ) from None


def _templates_of(notice: Notice) -> list[str]:
    if notice.change == NoticeChange.CANCELLATION:
        return ["open"]
    if notice.audience == Audience.AFFECTED:
        return ["appointment"]
    if notice.audience == Audience.BOTH:
        return ["closure", "appointment"]
    return ["closure"]


def _sample_appointment(ctx: MessageContext) -> AppointmentInfo:
    first = ctx.segments[0]
    return AppointmentInfo(first.starts, "(provider)")


def _sms_preview(language: str, sms: RenderedSms, template: str) -> SmsPreview:
    return SmsPreview(
        language, sms.text, sms.info.segments, sms.info.encoding, len(sms.text), template
    )


def _longer(current: SmsPreview | None, candidate: SmsPreview) -> SmsPreview:
    if current is None or (candidate.segments, candidate.characters) > (
        current.segments,
        current.characters,
    ):
        return candidate
    return current


def _notice_channels(notice: Notice) -> tuple[str, ...]:
    names: list[str] = []
    for broadcast in notice.broadcasts:
        names.extend(broadcast.channels.split(","))
    return tuple(dict.fromkeys(names))


def _local_iso(instant: datetime | None, tz_name: str) -> str | None:
    return instant.astimezone(zone(tz_name)).isoformat() if instant else None


def _location_view(location: Location) -> LocationView:
    return LocationView(
        slug=location.slug,
        name=location.name,
        timezone=location.timezone,
        phone=location.phone,
        business_hours=str(BusinessHours.from_json(location.business_hours)),
        default_language=location.default_language,
    )


def _notice_view(notice: Notice) -> NoticeView:
    tz = notice.location.timezone
    return NoticeView(
        id=notice.id,
        location=notice.location.slug,
        kind=notice.kind,
        status=notice.status,
        version=notice.version,
        starts=_local_iso(notice.starts_at, tz) or "",
        ends=_local_iso(notice.ends_at, tz) or "",
        reason=notice.reason,
        message=notice.message,
        intervals=[
            [_local_iso(a, tz) or "", _local_iso(b, tz) or ""]
            for a, b in closure_of(notice, notice.location).intervals
        ],
        audience=notice.audience,
        change=notice.change,
        supersedes_id=notice.supersedes_id,
        root_id=notice.root_id,
        broadcasts=[
            {
                "id": b.id,
                "send_at": _local_iso(b.send_at, tz),
                "channels": b.channels.split(","),
                "urgent": b.urgent,
                "status": b.status,
                "status_reason": b.status_reason,
            }
            for b in notice.broadcasts
        ],
    )


def _delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        notice_id=d.broadcast.notice_id,
        notice_version=d.broadcast.notice.version,
        supersedes_id=d.broadcast.notice.supersedes_id,
        broadcast_id=d.broadcast_id,
        channel=d.channel,
        address=mask_address(d.address),
        state=d.state,
        attempts=d.attempts,
        provider_id=d.provider_id,
        error_code=d.error_code,
        error=d.error_message,
        segments=d.segments,
        sent_at=d.sent_at.isoformat() if d.sent_at else None,
        updated_at=d.updated_at.isoformat(),
    )
