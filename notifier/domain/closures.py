"""Closures: business hours, closed intervals, and the per-day facts the wording comes from.

A closure is built in two ways. From people's input, ``Closure.checked`` enforces every rule
(order, no overlap, each interval touches the business hours). From a stored notice, the plain
constructor takes what was stored — the intervals, the zone and the business hours they were
judged against — and checks nothing: a stored notice is a fact, never re-validated against
hours edited since.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.errors import ValidationError

Interval = tuple[datetime, datetime]


class SegmentKind(StrEnum):
    FULL_DAY = "full_day"
    EARLY_CLOSE = "early_close"
    LATE_OPEN = "late_open"
    PARTIAL = "partial"
    OPEN = "open"  # wording only: a business day left open between closed ones


# --- time zones and local times ------------------------------------------------------------


def zone(name: str, field: str | None = None) -> ZoneInfo:
    """The IANA zone ``name``, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York'", field
        ) from None


def localize(
    naive: datetime, tz: ZoneInfo, what: str = "time", field: str | None = None
) -> datetime:
    """Attach ``tz`` to a wall-clock time, refusing times a DST change skips."""
    if naive.tzinfo is not None:
        return naive.astimezone(tz)
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(UTC).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:
        raise ValidationError(
            f"{what} {naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (clocks skip it for DST)",
            field,
        )
    return aware


def parse_local(text: str, tz: ZoneInfo, what: str, field: str | None = None) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM`` (or a bare date, meaning midnight) in ``tz``."""
    raw = text.strip()
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return localize(parsed, tz, what, field)
    raise ValidationError(f"{what} {raw!r} is not a date and time: use 'YYYY-MM-DD HH:MM'", field)


def parse_interval(text: str, tz: ZoneInfo) -> Interval:
    """Parse ``"YYYY-MM-DD HH:MM/YYYY-MM-DD HH:MM"`` in ``tz``."""
    starts, sep, ends = text.partition("/")
    if not sep:
        raise ValidationError(
            f"interval {text!r} is not like 'YYYY-MM-DD HH:MM/YYYY-MM-DD HH:MM' (start/end)",
            "intervals",
        )
    return (
        parse_local(starts, tz, "interval start", "intervals"),
        parse_local(ends, tz, "interval end", "intervals"),
    )


def intervals_to_json(intervals: Iterable[Interval]) -> list[list[str]]:
    return [[a.astimezone(UTC).isoformat(), b.astimezone(UTC).isoformat()] for a, b in intervals]


def intervals_from_json(data: Iterable[Iterable[str]]) -> tuple[Interval, ...]:
    return tuple(
        (datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in (tuple(x) for x in data)
    )


def affects(starts: datetime, ends: datetime, intervals: Iterable[Interval]) -> bool:
    """True when an appointment overlaps a closed interval; touching an edge is not overlap.

    The pure twin of the SQL in ``storage.notices.overlapping``; tests check one against the
    other."""
    return any(starts < closed_to and ends > closed_from for closed_from, closed_to in intervals)


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
                    f"business hours rule {rule!r} is not like 'Mon-Fri 08:00-17:00'", "hours"
                )
            opens, closes = _parse_hhmm(match["open"]), _parse_hhmm(match["close"])
            if closes <= opens:
                raise ValidationError(
                    f"business hours rule {rule!r} closes before it opens", "hours"
                )
            for day in _expand_days(match["days"]):
                days[day] = DayHours(opens, closes)
        if not days:
            raise ValidationError("business hours are empty: give at least one open day", "hours")
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
        raise ValidationError(f"{text!r} is not a time of day", "hours")
    return time(hours, minutes)


def _expand_days(spec: str) -> Iterable[int]:
    for part in spec.split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name not in _DAY_NAMES:
                raise ValidationError(f"{name!r} is not a weekday (use Mon, Tue, ... Sun)", "hours")
        start, end = _DAY_NAMES.index(first), _DAY_NAMES.index(last or first)
        if end < start:
            raise ValidationError(f"weekday range {part!r} runs backwards", "hours")
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


@dataclass(frozen=True)
class Closure:
    """One or more closed intervals at a location, in order, with the zone and the business
    hours they are worded by. ``starts``/``ends`` are the envelope."""

    intervals: tuple[Interval, ...]
    tz: ZoneInfo
    hours: BusinessHours

    @classmethod
    def checked(cls, intervals: Iterable[Interval], tz: ZoneInfo, hours: BusinessHours) -> Closure:
        """A closure from people's input: in order, not overlapping, each touching the hours."""
        closure = cls(tuple(sorted(intervals)), tz, hours)
        if not closure.intervals:
            raise ValidationError("a closure needs at least one interval", "intervals")
        previous: Interval | None = None
        for starts, ends in closure.intervals:
            closure._check_interval(starts, ends)
            if previous is not None and starts < previous[1]:
                raise ValidationError(
                    f"closed intervals overlap: {closure._span(*previous)} and "
                    f"{closure._span(starts, ends)}; merge them into one",
                    "intervals",
                )
            previous = (starts, ends)
        return closure

    @property
    def starts(self) -> datetime:
        return self.intervals[0][0]

    @property
    def ends(self) -> datetime:
        return max(end for _, end in self.intervals)

    def _span(self, starts: datetime, ends: datetime) -> str:
        return f"{self.local(starts):%Y-%m-%d %H:%M}–{self.local(ends):%Y-%m-%d %H:%M}"

    def _check_interval(self, starts: datetime, ends: datetime) -> None:
        if starts.tzinfo is None or ends.tzinfo is None:
            raise ValidationError("closure times must be timezone-aware", "starts")
        if ends <= starts:
            raise ValidationError(
                f"the closure ends ({self.local(ends):%Y-%m-%d %H:%M}) before it starts "
                f"({self.local(starts):%Y-%m-%d %H:%M}); the end must be later than the start",
                "ends",
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
        return [segment for found in self.segments_by_interval() for segment in found]

    def segments_by_interval(self) -> list[list[ClosureSegment]]:
        """The affected business days of each interval, interval by interval."""
        return [self._interval_segments(starts, ends) for starts, ends in self.intervals]

    def wording(self) -> list[ClosureSegment]:
        """Segments for the words: consecutive closed business days merged into one run, and
        when the clinic opens on a business day left open between two closed ones.

        Two full days merge when no business day lies open between them (a weekend does not
        break "closed from Thursday through Monday"; an open Friday does, and is said: "open
        Friday, 2/21/2025 at 8:00 AM").
        """
        merged: list[ClosureSegment] = []
        for segment in self.segments():
            last = merged[-1] if merged else None
            open_between = (
                self._first_open_day_between(last.last_day or last.day, segment.day)
                if last is not None
                else None
            )
            if (
                last is not None
                and open_between is None
                and last.kind is SegmentKind.FULL_DAY
                and segment.kind is SegmentKind.FULL_DAY
            ):
                merged[-1] = ClosureSegment(
                    SegmentKind.FULL_DAY, last.day, last.starts, segment.ends, segment.day
                )
                continue
            if open_between is not None:
                merged.append(
                    ClosureSegment(
                        SegmentKind.OPEN, open_between.date(), open_between, open_between
                    )
                )
            merged.append(segment)
        return merged

    def _first_open_day_between(self, first: date, last: date) -> datetime | None:
        """When the doors open on the first business day strictly between two days, if any."""
        day = first + timedelta(days=1)
        while day < last:
            window = self.hours.window(day, self.tz)
            if window is not None:
                return window[0]
            day += timedelta(days=1)
        return None

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

    def reopening_to_say(self) -> datetime | None:
        """When the doors open again, unless the words already say it: a closure that ends by
        opening late has said its time ("opening late Thursday at 10:00 AM")."""
        reopens = self.reopens()
        segments = self.segments()
        said = bool(segments) and segments[-1].kind is SegmentKind.LATE_OPEN
        return None if said and segments[-1].ends == reopens else reopens

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

    def kinds(self) -> set[SegmentKind]:
        return {segment.kind for segment in self.segments()}


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
