"""Use cases for clinic managers and ops: locations, notices, previews, the delivery log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from notifier import store
from notifier.clock import Clock
from notifier.contacts import display_phone, mask_address, normalize_phone
from notifier.db import Database
from notifier.domain import (
    BroadcastStatus,
    BusinessHours,
    Closure,
    NoticeKind,
    NoticeStatus,
    check_send_time,
    parse_channels,
    parse_local,
    zone,
)
from notifier.errors import NotFoundError, ValidationError
from notifier.models import Broadcast, Delivery, Location, Notice
from notifier.rendering import MessageContext, Renderer
from notifier.settings import Settings

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class EmailPreview:
    language: str
    subject: str
    text: str
    html: str


@dataclass
class Preview:
    notice_id: int
    channels: dict[str, str]  # channel -> "enabled" or the reason it is disabled
    sms: list[SmsPreview] = field(default_factory=list)
    email: list[EmailPreview] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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


@dataclass(frozen=True)
class DeliveryView:
    id: int
    notice_id: int
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


# --- building message contexts ------------------------------------------------------------


def closure_of(notice: Notice, location: Location) -> Closure:
    return Closure(
        starts=notice.starts_at,
        ends=notice.ends_at,
        tz=zone(location.timezone),
        hours=BusinessHours.from_json(location.business_hours),
    )


def message_context(
    notice: Notice, location: Location, language: str, first_name: str = ""
) -> MessageContext:
    closure = closure_of(notice, location)
    return MessageContext(
        language=language,
        location_name=location.name,
        location_phone=display_phone(location.phone) if location.phone else None,
        location_phone_e164=location.phone,
        reason=notice.reason,
        segments=closure.segments(),
        reopens=closure.reopens(),
        custom_message=notice.message,
        first_name=first_name,
    )


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
        starts: str,
        ends: str,
        reason: str,
        kind: str | None = None,
        message: str | None = None,
        send_at: str = "now",
        channels: str = "sms,email",
    ) -> NoticeView:
        """Validate everything, render every message once, then store notice and broadcast."""
        now = self.clock.now()
        with self.db.session() as s:
            location = store.location_by_slug(s, location_slug)
            if location is None:
                raise NotFoundError(f"no location {location_slug!r}: add it first")
            tz = zone(location.timezone)
            closure = Closure(
                parse_local(starts, tz, "start"),
                parse_local(ends, tz, "end"),
                tz,
                BusinessHours.from_json(location.business_hours),
            )
            if closure.ends <= now:
                raise ValidationError(
                    f"the closure ended at {closure.local(closure.ends):%Y-%m-%d %H:%M}; "
                    "there is nothing left to tell patients"
                )
            send_instant = (
                now if send_at.strip().lower() == "now" else parse_local(send_at, tz, "send time")
            )
            check_send_time(send_instant, closure, now)
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
            s.add(
                Broadcast(
                    notice=notice,
                    send_at=send_instant,
                    channels=",".join(channel_names),
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
            if notice.status == NoticeStatus.CANCELLED:
                result.warnings.append("this notice is cancelled: nothing more will be sent")
            return result

    def cancel_notice(self, notice_id: int) -> NoticeView:
        now = self.clock.now()
        with self.db.session() as s:
            notice = self._notice(s, notice_id)
            if notice.status == NoticeStatus.CANCELLED:
                raise ValidationError(f"notice {notice_id} is already cancelled")
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
        self, notice_id: int | None = None, state: str | None = None
    ) -> list[DeliveryView]:
        with self.db.session() as s:
            if notice_id is not None:
                self._notice(s, notice_id)
            return [_delivery_view(d) for d in store.delivery_log(s, notice_id, state)]

    def summary(self, notice_id: int) -> dict[str, dict[str, int]]:
        with self.db.session() as s:
            self._notice(s, notice_id)
            counts: dict[str, dict[str, int]] = {}
            for (channel, state), count in store.state_counts(s, notice_id).items():
                counts.setdefault(channel, {})[state] = count
            return counts

    # helpers

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
        for language in sorted(languages):
            ctx = message_context(notice, location, language)
            if "sms" in channels:
                sms = self.renderer.render_sms(ctx)
                if into is not None:
                    into.sms.append(
                        SmsPreview(
                            language,
                            sms.text,
                            sms.info.segments,
                            sms.info.encoding,
                            len(sms.text),
                        )
                    )
            if "email" in channels:
                email = self.renderer.render_email(ctx)
                if into is not None:
                    into.email.append(EmailPreview(language, email.subject, email.text, email.html))


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
        broadcasts=[
            {
                "id": b.id,
                "send_at": _local_iso(b.send_at, tz),
                "channels": b.channels.split(","),
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
