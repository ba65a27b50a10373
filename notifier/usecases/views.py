"""What use cases return to the CLI, the API and the console: plain data, addresses masked,
times in the location's zone (ISO 8601)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifier.domain.closures import BusinessHours, intervals_from_json, zone
from notifier.domain.contacts import mask_address
from notifier.domain.conversations import LOG_KINDS, Author
from notifier.domain.erasure import ERASED
from notifier.domain.notices import (
    Audience,
    BroadcastStatus,
    NoticeChange,
    NoticeKind,
    NoticeStatus,
    Period,
    standing,
)
from notifier.errors import ValidationError
from notifier.rendering.renderer import Rendered
from notifier.storage.models import Delivery, DeliveryEvent, Location, Notice
from notifier.storage.reports import Answer

DELIVERY_CSV_COLUMNS = (
    "id",
    "kind",
    "conversation_id",
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
    "fallback_of",  # the delivery this one stands in for (a notice's fallback), last: added later
)
"""The delivery log's CSV columns, the same from the CLI and the console."""


@dataclass(frozen=True)
class LocationView:
    slug: str
    name: str
    timezone: str
    phone: str | None
    business_hours: str
    default_language: str
    public_feeds: bool = True  # the public page, banner and feeds (web/public.py)


@dataclass(frozen=True)
class MessagePreview:
    channel: str
    language: str
    template: str
    text: str
    characters: int
    segments: int | None = None  # short texts: SMS segments and encoding
    encoding: str | None = None
    subject: str | None = None  # emails
    html: str | None = None

    @classmethod
    def of(cls, channel: str, language: str, template: str, rendered: Rendered) -> MessagePreview:
        info = rendered.info
        return cls(
            channel=channel,
            language=language,
            template=template,
            text=rendered.text,
            characters=len(rendered.text),
            segments=info.segments if info else None,
            encoding=info.encoding if info else None,
            subject=rendered.subject,
            html=rendered.html,
        )

    def longer_than(self, other: MessagePreview | None) -> bool:
        return other is None or (self.segments or 0, self.characters) > (
            other.segments or 0,
            other.characters,
        )


@dataclass
class Preview:
    notice_id: int
    channels: dict[str, str]  # channel -> "enabled" or the reason it is disabled
    messages: dict[str, list[MessagePreview]] = field(default_factory=dict)  # by channel
    warnings: list[str] = field(default_factory=list)
    # channel -> seconds the broadcast needs at the configured rate (texts count segments)
    estimated_seconds: dict[str, float] = field(default_factory=dict)
    # Per text channel: the message with the most segments any one patient gets (names and
    # appointment times vary).
    longest: dict[str, MessagePreview] = field(default_factory=dict)


@dataclass(frozen=True)
class BroadcastView:
    id: int
    send_at: str | None
    channels: list[str]
    urgent: bool | None
    status: str
    status_reason: str | None
    repeats_id: int | None = None  # a reminder to the recipients of that broadcast
    # The channels a patient whose message failed for good is tried on next, in order.
    fallback: list[str] = field(default_factory=list)


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
    broadcasts: list[BroadcastView]
    intervals: list[list[str]] = field(default_factory=list)  # local ISO [start, end] pairs
    audience: str = Audience.EVERYONE.value
    change: str = NoticeChange.ORIGINAL.value
    supersedes_id: int | None = None
    root_id: int | None = None
    timezone: str = "UTC"  # the zone its times were given and are worded in
    # What it is, in staff's words ("upcoming closure", "open after all · sent"), where it is
    # listed (upcoming, now, past) and what can still be done to it (send, update, ...).
    state: str = ""
    period: str = Period.UPCOMING.value
    actions: list[str] = field(default_factory=list)
    clinic: str = ""  # the location's name
    # When the public page and feeds show it (local ISO; None: once sent); never if private.
    publish_at: str | None = None
    private: bool = False
    public_feeds: bool = True  # the location's public feeds are on
    # Who did what, with times (local ISO): each "kind:name" of the actor, e.g. "user:ana@…",
    # and " via token:5" when a user acted through a personal API token.
    reason_code: str | None = None  # the reason's category, worded in every language
    created_by: str | None = None
    created_at: str | None = None
    needs_approval: bool = False  # more patients than NOTIFIER_APPROVAL_THRESHOLD
    approved_by: str | None = None
    approved_at: str | None = None
    emergency_reason: str | None = None  # sent by one manager alone, saying why
    cancelled_by: str | None = None
    cancelled_at: str | None = None
    # The undo window: the first broadcast is due and held until then (local ISO), seconds left.
    held_until: str | None = None
    hold_seconds_left: int | None = None

    @property
    def channels(self) -> list[str]:
        return list(dict.fromkeys(c for b in self.broadcasts for c in b.channels))


@dataclass(frozen=True)
class Created:
    """A stored notice, and the preview its creation rendered (nothing is rendered twice)."""

    notice: NoticeView
    preview: Preview

    @property
    def id(self) -> int:
        return self.notice.id


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
    """One line of the delivery log: a notice's message (``kind`` "notice"), or a staff
    answer ("answer") or closure auto-reply ("auto_reply") of a conversation: those have their
    own ids (a conversation message's), no broadcast, and a notice only when they answer one."""

    id: int
    notice_id: int | None
    notice_version: int | None
    supersedes_id: int | None
    broadcast_id: int | None
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
    # Who it is for (external id and name): filled in only for those allowed to see patients
    # (managers, ``--show-patients``, API tokens with that right); None otherwise.
    patient: str | None = None
    patient_name: str | None = None
    # The delivery this one stands in for (the notice's fallback: a text a landline refused).
    fallback_of: int | None = None
    kind: str = "notice"  # notice, answer, auto_reply
    conversation_id: int | None = None  # answers and auto-replies: their conversation


NOT_REACHED_COLUMNS = (
    "patient",
    "first_name",
    "last_name",
    "channel",
    "state",
    "reason",
    "reached_by",
    "phone",
    "email",
)
"""The not-reached list's columns, the same from the CLI, the console and the API."""


@dataclass(frozen=True)
class NotReached:
    """A message of a notice that did not reach its patient, for the front desk to call:
    addresses unmasked (this list is for managers only)."""

    patient: str  # external id
    first_name: str
    last_name: str
    channel: str
    state: str  # undelivered, failed, skipped, expired
    reason: str | None
    reached_by: str  # the channels this notice did reach them on ("email"), or ""
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class Progress:
    """How far a notice's sending is: what ``notice watch`` and the console's summary show."""

    notice_id: int
    state: str  # the notice in staff's words
    total: int
    counts: dict[str, int]  # by bucket: delivered, sent, queued, failed, skipped, stopped
    waits: list[str]  # why queued messages wait
    rate: float | None  # messages finished per second since the fan-out
    eta_seconds: float | None  # until the queued ones are done at that pace
    finished: bool  # nothing queued, nothing due: watching can stop
    next_send_at: str | None = None  # a broadcast still ahead (local ISO), if any

    @property
    def done(self) -> int:
        return self.total - self.counts.get("queued", 0)


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
    consent: dict[str, str]  # channel -> "consented", "no consent" or "opted out"


def local_iso(instant: datetime | None, tz_name: str) -> str | None:
    return instant.astimezone(zone(tz_name)).isoformat() if instant else None


def _readable_zone(name: str) -> bool:
    try:
        zone(name)
    except ValidationError:
        return False
    return True


def location_view(location: Location) -> LocationView:
    return LocationView(
        slug=location.slug,
        name=location.name,
        timezone=location.timezone,
        phone=location.phone,
        business_hours=str(BusinessHours.from_json(location.business_hours)),
        default_language=location.default_language,
        public_feeds=location.public_feeds,
    )


def notice_view(
    notice: Notice,
    now: datetime,
    followed_by: str | None = None,
    hold: timedelta = timedelta(0),
) -> NoticeView:
    """A notice as stored, and what it is at ``now`` (``followed_by``: the change of the
    version that replaced it). One whose stored zone or intervals cannot be read (a corrupted
    row) is still shown — in UTC, with no intervals — so one bad row never stops a list."""
    tz = notice.timezone if _readable_zone(notice.timezone) else "UTC"
    try:
        intervals = [
            [local_iso(a, tz) or "", local_iso(b, tz) or ""]
            for a, b in intervals_from_json(notice.intervals)
        ]
    except (TypeError, ValueError):
        intervals = []
    told = standing(
        NoticeStatus(notice.status),
        NoticeChange(notice.change),
        NoticeKind(notice.kind),
        notice.starts_at,
        notice.ends_at,
        [BroadcastStatus(b.status) for b in notice.broadcasts],
        NoticeChange(followed_by) if followed_by else None,
        now,
    )
    held = _held_until(notice, now, hold)
    return NoticeView(
        id=notice.id,
        location=notice.location.slug,
        clinic=notice.location.name,
        reason_code=notice.reason_code,
        created_by=_actor(notice, "created_by"),
        created_at=local_iso(notice.created_at, tz),
        needs_approval=notice.needs_approval,
        approved_by=_actor(notice, "approved_by"),
        approved_at=local_iso(notice.approved_at, tz),
        emergency_reason=notice.emergency_reason,
        cancelled_by=_actor(notice, "cancelled_by"),
        cancelled_at=local_iso(notice.cancelled_at, tz),
        held_until=local_iso(held, tz) if held else None,
        hold_seconds_left=max(0, math.ceil((held - now).total_seconds())) if held else None,
        state=told.words,
        period=told.period.value,
        actions=[a.value for a in told.actions],
        kind=notice.kind,
        status=notice.status,
        version=notice.version,
        starts=local_iso(notice.starts_at, tz) or "",
        ends=local_iso(notice.ends_at, tz) or "",
        reason=notice.reason,
        message=notice.message,
        intervals=intervals,
        audience=notice.audience,
        change=notice.change,
        supersedes_id=notice.supersedes_id,
        root_id=notice.root_id,
        timezone=tz,
        publish_at=local_iso(notice.publish_at, tz),
        private=notice.private,
        public_feeds=notice.location.public_feeds,
        broadcasts=[
            BroadcastView(
                id=b.id,
                send_at=local_iso(b.send_at, tz),
                channels=list(b.channel_names),
                urgent=b.urgent,
                status=b.status,
                status_reason=b.status_reason,
                repeats_id=b.repeats_id,
                fallback=b.fallback.split(">") if b.fallback else [],
            )
            for b in notice.broadcasts
        ],
    )


@dataclass(frozen=True)
class HistoryEntry:
    """One thing a person did to a notice: created, approved, sent alone (emergency),
    cancelled."""

    at: str  # local ISO time
    notice_id: int
    version: int
    action: str
    by: str  # "kind:name", and " via token:5" for a user's personal token
    detail: str | None = None


def history_of(notice: Notice) -> list[HistoryEntry]:
    """What the notice's own columns say was done to it."""
    tz = notice.timezone if _readable_zone(notice.timezone) else "UTC"
    created = _actor(notice, "created_by")
    done: list[tuple[datetime | None, str, str | None, str | None]] = [
        (notice.created_at, "created", created, None),
        (
            notice.created_at if notice.emergency_reason else None,
            "emergency send (no second manager)",
            created,
            notice.emergency_reason,
        ),
        (notice.approved_at, "approved", _actor(notice, "approved_by"), None),
        (notice.cancelled_at, "cancelled", _actor(notice, "cancelled_by"), None),
    ]
    return [
        HistoryEntry(
            at=local_iso(at, tz) or "",
            notice_id=notice.id,
            version=notice.version,
            action=action,
            by=by or "unknown (before issue 20)",
            detail=detail,
        )
        for at, action, by, detail in done
        if at is not None
    ]


def _actor(notice: Notice, role: str) -> str | None:
    """Who the notice's ``created_by``, ``approved_by`` or ``cancelled_by`` is: "user:ana@…",
    "token:clinic website", or "user:ana@… via token:5" (a user's personal API token)."""
    kind: str | None = getattr(notice, f"{role}_kind")
    name: str | None = getattr(notice, role)
    token_id: int | None = getattr(notice, f"{role}_token_id")
    if not kind or not name:
        return None
    return f"{kind}:{name}" if token_id is None else f"{kind}:{name} via token:{token_id}"


def _held_until(notice: Notice, now: datetime, hold: timedelta) -> datetime | None:
    """When the undo window of a due, scheduled broadcast of the notice ends (None: none is
    held now)."""
    for b in notice.broadcasts:
        if b.status == BroadcastStatus.SCHEDULED and b.send_at <= now < b.send_at + hold:
            return b.send_at + hold
    return None


def delivery_view(d: Delivery, with_patient: bool = False) -> DeliveryView:
    """A delivery, its address masked; ``with_patient`` names its patient (managers only)."""
    patient = d.patient if with_patient else None
    return DeliveryView(
        id=d.id,
        notice_id=d.broadcast.notice_id,
        notice_version=d.broadcast.notice.version,
        supersedes_id=d.broadcast.notice.supersedes_id,
        broadcast_id=d.broadcast_id,
        channel=d.channel,
        address="erased" if d.address.startswith(ERASED) else mask_address(d.address),
        state=d.state,
        attempts=d.attempts,
        provider_id=d.provider_id,
        error_code=d.error_code,
        error=d.error_message,
        segments=d.segments,
        sent_at=d.sent_at.isoformat() if d.sent_at else None,
        updated_at=d.updated_at.isoformat(),
        patient=patient.external_id if patient else None,
        patient_name=f"{patient.first_name} {patient.last_name}" if patient else None,
        fallback_of=d.fallback_of,
    )


def answer_log_view(a: Answer, with_patient: bool = False) -> DeliveryView:
    """A staff answer or auto-reply as a line of the delivery log, its address masked."""
    m, conversation, patient = a.message, a.conversation, a.patient if with_patient else None
    address = conversation.address
    return DeliveryView(
        id=m.id,
        notice_id=m.notice_id,
        notice_version=a.notice.version if a.notice else None,
        supersedes_id=a.notice.supersedes_id if a.notice else None,
        broadcast_id=None,
        channel=m.channel,
        address="erased" if address.startswith(ERASED) else mask_address(address),
        state=m.state,
        attempts=m.attempts,
        provider_id=m.provider_id,
        error_code=m.error_code,
        error=m.error_message,
        segments=None,
        sent_at=m.sent_at.isoformat() if m.sent_at else None,
        updated_at=(m.updated_at or m.at).isoformat(),
        patient=patient.external_id if patient else None,
        patient_name=f"{patient.first_name} {patient.last_name}" if patient else None,
        kind=LOG_KINDS[Author(m.author)],
        conversation_id=m.conversation_id,
    )


def log_view(row: Delivery | Answer, with_patient: bool = False) -> DeliveryView:
    if isinstance(row, Answer):
        return answer_log_view(row, with_patient)
    return delivery_view(row, with_patient)


def event_view(e: DeliveryEvent) -> EventView:
    return EventView(
        at=e.at.isoformat(),
        kind=e.kind,
        state=e.state,
        attempt=e.attempt,
        code=e.code,
        detail=e.detail,
    )
