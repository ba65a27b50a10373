"""A notice as the public feeds tell it: its versions as published messages (each with a
sequence number), whether it is upcoming, under way, over or called off, the calendar events
its intervals make, the changed opening hours search engines read, and its CAP category.

Pure: the feeds' formats (HTML, iCalendar, Atom, CAP, JSON) are written in ``rendering.feeds``
from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from notifier.domain.closures import Closure, ClosureSegment, SegmentKind
from notifier.domain.notices import Clinic, NoticeChange, NoticeFacts, ReasonCode, too_late

KEEP_ENDED = timedelta(days=30)
"""How long after its end a notice stays in the calendar and Atom feeds (for the record)."""

MAX_AGE = 60
"""Seconds a client or proxy may reuse a public answer: a change shows within a minute."""


class PublicState(StrEnum):
    UPCOMING = "upcoming"
    CURRENT = "current"  # the clinic is closed (or opens late, or closed early) right now
    OVER = "over"
    CANCELLED = "cancelled"  # called off: "open after all"


class MessageType(StrEnum):
    """A CAP ``msgType``: the first message, a correction of it, or its withdrawal."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


@dataclass(frozen=True)
class Version:
    """One published message of a notice: its words and when it was issued. ``sequence``
    counts from 0 and grows with every update or cancellation (iCalendar ``SEQUENCE``)."""

    sequence: int
    facts: NoticeFacts
    cancelled: bool
    sent: datetime

    @property
    def message_type(self) -> MessageType:
        if self.cancelled:
            return MessageType.CANCEL
        return MessageType.ALERT if self.sequence == 0 else MessageType.UPDATE


@dataclass(frozen=True)
class PublicNotice:
    """A notice's chain as published: ``root_id`` names it for good (ids, UIDs)."""

    root_id: int
    versions: tuple[Version, ...]  # oldest first; the last is what is true now
    published: datetime

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @property
    def closure(self) -> Closure:
        return self.latest.facts.closure

    @property
    def updated(self) -> datetime:
        """When the feeds last had something new to say about it."""
        return max(self.published, self.latest.sent)

    def state(self, now: datetime) -> PublicState:
        if self.latest.cancelled:
            return PublicState.CANCELLED
        if too_late(self.closure.ends, now):
            return PublicState.OVER
        return PublicState.CURRENT if self.closure.starts <= now else PublicState.UPCOMING

    def version(self, sequence: int) -> Version | None:
        return self.versions[sequence] if 0 <= sequence < len(self.versions) else None


@dataclass(frozen=True)
class StoredVersion:
    """A stored version of a notice as the feeds need it (from storage)."""

    facts: NoticeFacts
    created: datetime
    updated: datetime
    withdrawn_in_place: bool  # cancelled without a new version saying so


def published_versions(stored: list[StoredVersion]) -> tuple[Version, ...]:
    """The messages a chain of stored versions makes: one per version, plus a cancellation
    when the last version was cancelled without a new one ("cancel" without telling anyone
    still withdraws it from the feeds, with a higher sequence)."""
    versions = [
        Version(i, v.facts, v.facts.change is NoticeChange.CANCELLATION, v.created)
        for i, v in enumerate(stored)
    ]
    last = stored[-1]
    if last.withdrawn_in_place and not versions[-1].cancelled:
        versions.append(Version(len(versions), last.facts, True, last.updated))
    return tuple(versions)


@dataclass(frozen=True)
class PublicFeed:
    """A location's published notices as the feeds read them at ``now``."""

    slug: str
    clinic: Clinic
    tz: ZoneInfo
    notices: tuple[PublicNotice, ...]  # by start
    changed: datetime  # ``last_change``: the feeds' Last-Modified
    now: datetime

    def shown(self) -> list[PublicNotice]:
        """What the feeds list: notices under way or ahead, and those called off (kept while
        their closure would have lasted, and ``KEEP_ENDED`` after) — not those over."""
        return [n for n in self.notices if n.state(self.now) is not PublicState.OVER]

    def live(self) -> list[PublicNotice]:
        return live(list(self.notices), self.now)


def live(notices: list[PublicNotice], now: datetime) -> list[PublicNotice]:
    """The notices a banner or the page shows: under way or still ahead."""
    shown = (PublicState.CURRENT, PublicState.UPCOMING)
    return [n for n in notices if n.state(now) in shown]


def last_change(notices: list[PublicNotice], now: datetime, since: datetime) -> datetime:
    """When the feeds' content last changed: a version issued, a notice published, or one
    beginning or ending (it moves from upcoming to current to over); ``since`` when none."""
    moments = [since]
    for notice in notices:
        moments.append(notice.updated)
        moments.extend(t for t in (notice.closure.starts, notice.closure.ends) if t <= now)
    return max(moments)


# --- calendar events ------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEvent:
    """One VEVENT: a run of closed whole days (dates, ``last_day`` inclusive) or a closed part
    of one day (local times). ``key`` is stable within a notice: interval, then piece."""

    key: str
    all_day: bool
    starts: datetime  # local, aware
    ends: datetime
    first_day: date
    last_day: date

    @property
    def end_date(self) -> date:
        """iCalendar's exclusive ``DTEND`` of an all-day event: the day after the last."""
        return self.last_day + timedelta(days=1)


def calendar_events(closure: Closure) -> list[CalendarEvent]:
    """The closure's affected business days as calendar events: consecutive closed whole days
    of one interval make one all-day event; a day closed in part is a timed event."""
    events: list[CalendarEvent] = []
    for index, segments in enumerate(closure.segments_by_interval()):
        pieces: list[list[ClosureSegment]] = []
        for segment in segments:
            whole = segment.kind is SegmentKind.FULL_DAY
            if whole and pieces and pieces[-1][-1].kind is SegmentKind.FULL_DAY:
                pieces[-1].append(segment)
            else:
                pieces.append([segment])
        for number, piece in enumerate(pieces):
            first, last = piece[0], piece[-1]
            events.append(
                CalendarEvent(
                    key=f"{index}.{number}",
                    all_day=first.kind is SegmentKind.FULL_DAY,
                    starts=first.starts,
                    ends=last.ends,
                    first_day=first.day,
                    last_day=last.day,
                )
            )
    return events


# --- changed opening hours (schema.org) -------------------------------------------------------


@dataclass(frozen=True)
class SpecialHours:
    """A day's changed opening hours; ``opens``/``closes`` None: closed all day."""

    day: date
    opens: time | None = None
    closes: time | None = None


def special_hours(closure: Closure) -> list[SpecialHours]:
    """What remains open on each affected business day (schema.org's
    ``specialOpeningHoursSpecification``): nothing on a closed day, the hours before an early
    close, after a late opening, or both sides of a closure inside the day."""
    result: list[SpecialHours] = []
    for segment in closure.segments():
        window = closure.hours.window(segment.day, closure.tz)
        if window is None:  # segments lie on business days only
            continue
        opens, closes = (t.timetz().replace(tzinfo=None) for t in window)
        starts, ends = segment.starts.time(), segment.ends.time()
        if segment.kind is SegmentKind.FULL_DAY:
            result.append(SpecialHours(segment.day))
        elif segment.kind is SegmentKind.EARLY_CLOSE:
            result.append(SpecialHours(segment.day, opens, starts))
        elif segment.kind is SegmentKind.LATE_OPEN:
            result.append(SpecialHours(segment.day, ends, closes))
        else:
            result.append(SpecialHours(segment.day, opens, starts))
            result.append(SpecialHours(segment.day, ends, closes))
    return result


# --- CAP ----------------------------------------------------------------------------------


class CapCategory(StrEnum):
    MET = "Met"  # weather
    INFRA = "Infra"  # power, water, buildings, networks
    HEALTH = "Health"  # everything else a clinic closes for
    SAFETY = "Safety"  # an emergency (fire, a threat, an evacuation)


# Words of a free-text reason, per category. When notices carry a reason code, the code maps
# here first (``CAP_CATEGORY_BY_CODE``) and the words are the fallback for free text.
_CATEGORY_WORDS = {
    CapCategory.MET: (
        "weather", "snow", "storm", "ice", "icy", "hurricane", "flood", "tornado", "wind",
        "heat", "cold", "blizzard", "clima", "tormenta", "nieve", "huracán", "inundación",
    ),
    CapCategory.INFRA: (
        "power", "outage", "electric", "water", "internet", "network", "phone", "heating",
        "hvac", "construction", "repair", "maintenance", "building", "luz", "apagón", "agua",
    ),
}  # fmt: skip

CAP_CATEGORY_BY_CODE = {
    ReasonCode.WEATHER: CapCategory.MET,
    ReasonCode.POWER: CapCategory.INFRA,
    ReasonCode.WATER: CapCategory.INFRA,
    ReasonCode.MAINTENANCE: CapCategory.INFRA,
    ReasonCode.EMERGENCY: CapCategory.SAFETY,
    ReasonCode.STAFF: CapCategory.HEALTH,
    ReasonCode.HOLIDAY: CapCategory.HEALTH,
}  # "other" has no words of its own: its free text decides


def cap_category(reason: str, code: ReasonCode | None = None) -> CapCategory:
    """The CAP category of a closure: by its reason code when it has one, else by the words
    of its reason; a clinic closed for anything else is a health-service matter."""
    if code in CAP_CATEGORY_BY_CODE:
        return CAP_CATEGORY_BY_CODE[code]
    words = set(reason.lower().replace(",", " ").replace(".", " ").split())
    for category, known in _CATEGORY_WORDS.items():
        if words & set(known):
            return category
    return CapCategory.HEALTH
