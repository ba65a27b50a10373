"""The closure-notice domain: states, business hours, and the rules a closure must obey.

Pure Python: nothing here knows about SQL, Twilio, SMTP, HTTP or the scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.errors import ValidationError

CHANNELS = ("sms", "email")
SUPPORTED_LANGUAGES = ("en", "es")


class NoticeKind(StrEnum):
    CLOSURE = "closure"
    EARLY_CLOSE = "early-close"
    DELAYED_OPEN = "delayed-open"


class NoticeStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # a newer version of the notice replaced it


class NoticeChange(StrEnum):
    """What a version in a notice's chain says about the one it supersedes."""

    ORIGINAL = "original"
    UPDATE = "update"  # new times or wording
    CANCELLATION = "cancellation"  # "we are open after all"


class Audience(StrEnum):
    """Who hears about a closure."""

    EVERYONE = "everyone"  # every patient at the location gets the general notice
    AFFECTED = "affected"  # only patients with an appointment inside a closed interval
    BOTH = "both"  # affected patients get their appointments, everyone else the general notice


ACTIVE_APPOINTMENT_STATUSES = ("scheduled", "confirmed")


class BroadcastStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its send time
    SENDING = "sending"  # fanned out into deliveries
    DONE = "done"  # every delivery reached a final state
    EXPIRED = "expired"  # the closure ended before it could go out
    CANCELLED = "cancelled"


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its first attempt or a retry (see next_attempt_at)
    SENDING = "sending"  # claimed by a worker; the provider call may be in flight
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the provider confirmed delivery to the handset
    UNDELIVERED = "undelivered"  # the provider reported that delivery failed
    FAILED = "failed"  # refused permanently, or retries exhausted
    EXPIRED = "expired"  # the closure ended before it could be sent
    CANCELLED = "cancelled"  # the notice was cancelled before it was sent
    SKIPPED = "skipped"  # not sent on purpose (no consent, opted out, ...)


FINAL_STATES = frozenset(
    {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.UNDELIVERED,
        DeliveryState.FAILED,
        DeliveryState.EXPIRED,
        DeliveryState.CANCELLED,
        DeliveryState.SKIPPED,
    }
)
"""States the dispatcher never leaves (a status callback may still refine SENT)."""


class SegmentKind(StrEnum):
    FULL_DAY = "full_day"
    EARLY_CLOSE = "early_close"
    LATE_OPEN = "late_open"
    PARTIAL = "partial"


# --- time zones and local times ------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York'"
        ) from None


def localize(naive: datetime, tz: ZoneInfo, what: str = "time") -> datetime:
    """Attach ``tz`` to a wall-clock time, refusing times a DST change skips."""
    if naive.tzinfo is not None:
        return naive.astimezone(tz)
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:
        raise ValidationError(
            f"{what} {naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (clocks skip it for DST)"
        )
    return aware


def parse_local(text: str, tz: ZoneInfo, what: str) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM`` (or a bare date, meaning midnight) in ``tz``."""
    raw = text.strip()
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return localize(datetime.strptime(raw, fmt), tz, what)
        except ValueError:
            continue
    raise ValidationError(f"{what} {raw!r} is not a date and time: use 'YYYY-MM-DD HH:MM'")


# --- business hours -----------------------------------------------------------------------

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$"
)


@dataclass(frozen=True)
class DayHours:
    opens: time
    closes: time


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours per weekday (0 = Monday); a missing day is closed."""

    days: Mapping[int, DayHours]

    @classmethod
    def parse(cls, text: str) -> BusinessHours:
        """Parse ``"Mon-Fri 08:00-17:00; Sat 09:00-12:00"``."""
        days: dict[int, DayHours] = {}
        for rule in filter(None, (part.strip().lower() for part in text.split(";"))):
            match = _RULE.match(rule)
            if not match:
                raise ValidationError(
                    f"business hours rule {rule!r} is not like 'Mon-Fri 08:00-17:00'"
                )
            opens, closes = _parse_hhmm(match["open"]), _parse_hhmm(match["close"])
            if closes <= opens:
                raise ValidationError(f"business hours rule {rule!r} closes before it opens")
            for day in _expand_days(match["days"]):
                days[day] = DayHours(opens, closes)
        if not days:
            raise ValidationError("business hours are empty: give at least one open day")
        return cls(days)

    def __str__(self) -> str:
        """The same form ``parse`` reads, consecutive days with equal hours merged."""
        runs: list[tuple[int, int, DayHours]] = []
        for day, hours in sorted(self.days.items()):
            if runs and runs[-1][1] == day - 1 and runs[-1][2] == hours:
                runs[-1] = (runs[-1][0], day, hours)
            else:
                runs.append((day, day, hours))
        return "; ".join(
            _DAY_NAMES[first].title()
            + (f"-{_DAY_NAMES[last].title()}" if last != first else "")
            + f" {hours.opens:%H:%M}-{hours.closes:%H:%M}"
            for first, last, hours in runs
        )

    def to_json(self) -> dict[str, list[str]]:
        return {
            _DAY_NAMES[d]: [f"{h.opens:%H:%M}", f"{h.closes:%H:%M}"]
            for d, h in sorted(self.days.items())
        }

    @classmethod
    def from_json(cls, data: Mapping[str, list[str]]) -> BusinessHours:
        return cls(
            {
                _DAY_NAMES.index(name): DayHours(_parse_hhmm(o), _parse_hhmm(c))
                for name, (o, c) in data.items()
            }
        )

    def window(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The open interval on ``day`` as aware datetimes, or None when closed that day."""
        hours = self.days.get(day.weekday())
        if hours is None:
            return None
        opens = datetime.combine(day, hours.opens).replace(tzinfo=tz)
        closes = datetime.combine(day, hours.closes).replace(tzinfo=tz)
        return opens, closes


def _parse_hhmm(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValidationError(f"{text!r} is not a time of day")
    return time(hours, minutes)


def _expand_days(spec: str) -> Iterable[int]:
    for part in spec.split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name not in _DAY_NAMES:
                raise ValidationError(f"{name!r} is not a weekday (use Mon, Tue, ... Sun)")
        start, end = _DAY_NAMES.index(first), _DAY_NAMES.index(last or first)
        if end < start:
            raise ValidationError(f"weekday range {part!r} runs backwards")
        yield from range(start, end + 1)


# --- closures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosureSegment:
    """How one business day is affected; the words come from these, never from typing."""

    kind: SegmentKind
    day: date
    starts: datetime  # local, aware
    ends: datetime  # local, aware
    last_day: date | None = None  # a run of full days: the last one (see ``wording``)


Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Closure:
    """One or more closed intervals at a location, checked against its business hours.

    ``starts``/``ends`` are the envelope (first start, last end); ``intervals`` defaults to that
    single interval. Intervals must be in order, must not overlap, and must each touch the
    business hours.
    """

    starts: datetime  # aware
    ends: datetime  # aware
    tz: ZoneInfo
    hours: BusinessHours
    intervals: tuple[Interval, ...] = ()

    @classmethod
    def of(cls, intervals: Iterable[Interval], tz: ZoneInfo, hours: BusinessHours) -> Closure:
        ordered = tuple(sorted(intervals))
        if not ordered:
            raise ValidationError("a closure needs at least one interval")
        return cls(ordered[0][0], max(end for _, end in ordered), tz, hours, ordered)

    def __post_init__(self) -> None:
        if not self.intervals:
            object.__setattr__(self, "intervals", ((self.starts, self.ends),))
        previous: Interval | None = None
        for starts, ends in self.intervals:
            self._check_interval(starts, ends)
            if previous is not None and starts < previous[1]:
                raise ValidationError(
                    f"closed intervals overlap: {self._span(*previous)} and "
                    f"{self._span(starts, ends)}; merge them into one"
                )
            previous = (starts, ends)
        if (self.intervals[0][0], max(e for _, e in self.intervals)) != (self.starts, self.ends):
            raise ValidationError("the closure's start and end must enclose its intervals")

    def _span(self, starts: datetime, ends: datetime) -> str:
        return f"{self.local(starts):%Y-%m-%d %H:%M}–{self.local(ends):%Y-%m-%d %H:%M}"

    def _check_interval(self, starts: datetime, ends: datetime) -> None:
        if starts.tzinfo is None or ends.tzinfo is None:
            raise ValidationError("closure times must be timezone-aware")
        if ends <= starts:
            raise ValidationError(
                f"the closure ends ({self.local(ends):%Y-%m-%d %H:%M}) before it starts "
                f"({self.local(starts):%Y-%m-%d %H:%M}); the end must be later than the start"
            )
        if not self._interval_segments(starts, ends):
            raise ValidationError(
                f"the closure from {self.local(starts):%Y-%m-%d %H:%M} to "
                f"{self.local(ends):%Y-%m-%d %H:%M} does not touch the business hours "
                f"({self.hours}); patients would not notice it"
            )

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz)

    def segments(self) -> list[ClosureSegment]:
        """Each affected business day, with what happens to it, over all intervals."""
        result: list[ClosureSegment] = []
        for starts, ends in self.intervals:
            result.extend(self._interval_segments(starts, ends))
        return result

    def wording(self) -> list[ClosureSegment]:
        """Segments for the words: consecutive closed business days merged into one run.

        Two full days merge when no business day lies open between them (a weekend does not
        break "closed from Thursday through Monday"; an open Tuesday does).
        """
        merged: list[ClosureSegment] = []
        for segment in self.segments():
            last = merged[-1] if merged else None
            if (
                last is not None
                and last.kind is SegmentKind.FULL_DAY
                and segment.kind is SegmentKind.FULL_DAY
                and not self._business_day_between(last.last_day or last.day, segment.day)
            ):
                merged[-1] = ClosureSegment(
                    SegmentKind.FULL_DAY, last.day, last.starts, segment.ends, segment.day
                )
            else:
                merged.append(segment)
        return merged

    def _business_day_between(self, first: date, last: date) -> bool:
        day = first + timedelta(days=1)
        while day < last:
            if self.hours.window(day, self.tz) is not None:
                return True
            day += timedelta(days=1)
        return False

    def _interval_segments(self, starts: datetime, ends: datetime) -> list[ClosureSegment]:
        result = []
        start, end = self.local(starts), self.local(ends)
        day = start.date()
        while day <= end.date():
            window = self.hours.window(day, self.tz)
            if window is not None:
                opens, closes = window
                closed_from, closed_to = max(start, opens), min(end, closes)
                if closed_from < closed_to:
                    result.append(
                        ClosureSegment(
                            _segment_kind(closed_from, closed_to, opens, closes),
                            day,
                            closed_from,
                            closed_to,
                        )
                    )
            day += timedelta(days=1)
        return result

    def inferred_kind(self) -> NoticeKind:
        kinds = {segment.kind for segment in self.segments()}
        if kinds == {SegmentKind.EARLY_CLOSE}:
            return NoticeKind.EARLY_CLOSE
        if kinds == {SegmentKind.LATE_OPEN}:
            return NoticeKind.DELAYED_OPEN
        return NoticeKind.CLOSURE

    def reopens(self) -> datetime | None:
        """When the doors open again after the last interval (local), up to three weeks ahead."""
        end = self.local(self.ends)
        for offset in range(22):
            window = self.hours.window(end.date() + timedelta(days=offset), self.tz)
            if window is None:
                continue
            opens, closes = window
            if end < closes:
                return max(end, opens)
        return None


def _segment_kind(
    closed_from: datetime, closed_to: datetime, opens: datetime, closes: datetime
) -> SegmentKind:
    if closed_from <= opens and closed_to >= closes:
        return SegmentKind.FULL_DAY
    if closed_to >= closes:
        return SegmentKind.EARLY_CLOSE
    if closed_from <= opens:
        return SegmentKind.LATE_OPEN
    return SegmentKind.PARTIAL


def parse_interval(text: str, tz: ZoneInfo) -> Interval:
    """Parse ``"YYYY-MM-DD HH:MM/YYYY-MM-DD HH:MM"`` in ``tz``."""
    starts, sep, ends = text.partition("/")
    if not sep:
        raise ValidationError(
            f"interval {text!r} is not like 'YYYY-MM-DD HH:MM/YYYY-MM-DD HH:MM' (start/end)"
        )
    return parse_local(starts, tz, "interval start"), parse_local(ends, tz, "interval end")


def affects(starts: datetime, ends: datetime, intervals: Iterable[Interval]) -> bool:
    """True when an appointment overlaps a closed interval; touching an edge is not overlap."""
    return any(starts < closed_to and ends > closed_from for closed_from, closed_to in intervals)


def intervals_to_json(intervals: Iterable[Interval]) -> list[list[str]]:
    return [[a.astimezone(UTC).isoformat(), b.astimezone(UTC).isoformat()] for a, b in intervals]


def intervals_from_json(data: Iterable[Iterable[str]]) -> tuple[Interval, ...]:
    return tuple(
        (datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in (tuple(x) for x in data)
    )


def check_send_time(send_at: datetime, closure: Closure, now: datetime) -> None:
    """A broadcast must go out before the closure is over, and not in the past."""
    if send_at >= closure.ends:
        raise ValidationError(
            f"the send time {closure.local(send_at):%Y-%m-%d %H:%M} is after the closure ends "
            f"({closure.local(closure.ends):%Y-%m-%d %H:%M}); patients would be told too late"
        )
    if send_at < now - timedelta(minutes=1):
        raise ValidationError(
            f"the send time {closure.local(send_at):%Y-%m-%d %H:%M} is in the past "
            f"(now is {closure.local(now):%Y-%m-%d %H:%M}); use 'now' to send at once"
        )


def parse_channels(text: str | Iterable[str]) -> tuple[str, ...]:
    names = [c.strip().lower() for c in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in CHANNELS]
    if unknown or not names:
        raise ValidationError(
            f"channels {','.join(unknown) or '(none)'} not understood: use one or more of "
            f"{', '.join(CHANNELS)}"
        )
    return tuple(dict.fromkeys(names))


def retry_delay(
    attempt: int, base: float, cap: float, jitter: float, retry_after: float | None = None
) -> float:
    """Capped exponential backoff with full jitter; a provider's Retry-After is a floor.

    ``jitter`` is a number in [0, 1) supplied by the caller, so the rule stays deterministic.
    """
    backoff = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = backoff / 2 + backoff / 2 * jitter
    return max(delay, retry_after or 0.0)
