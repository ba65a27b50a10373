"""Quiet hours: no texts at night in the location's zone, unless the broadcast is urgent; no
calls at night at all (a channel's spec says whether urgency lifts them: ``urgency``).

The rule (:func:`deferral`) is pure; the dispatcher applies it to each claimed delivery of a
channel that observes quiet hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from notifier.domain.notices import too_late
from notifier.errors import ValidationError

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_OFF = {"", "off", "none"}


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local wall-clock time, e.g. 21:00-08:00 (may span midnight)."""

    starts: time
    ends: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``"21:00-08:00"``; ``"off"`` (or empty) means no quiet hours."""
        if text.strip().lower() in _OFF:
            return None
        match = _WINDOW.match(text)
        if not match:
            raise ValidationError(f"quiet hours {text!r} are not like '21:00-08:00' (or 'off')")
        h1, m1, h2, m2 = (int(x) for x in match.groups())
        if not (h1 <= 23 and h2 <= 23 and m1 <= 59 and m2 <= 59):
            raise ValidationError(f"quiet hours {text!r}: not a time of day")
        if (h1, m1) == (h2, m2):
            raise ValidationError(f"quiet hours {text!r} start and end at the same time")
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.starts:%H:%M}-{self.ends:%H:%M}"

    def ends_after(self, instant: datetime, tz: ZoneInfo) -> datetime | None:
        """If ``instant`` falls inside the window (in ``tz``), when the window opens (UTC)."""
        local = instant.astimezone(tz)
        clock = local.time().replace(tzinfo=None)
        spans_midnight = self.starts > self.ends
        if spans_midnight:
            if clock >= self.starts:
                day = local.date() + timedelta(days=1)
            elif clock < self.ends:
                day = local.date()
            else:
                return None
        elif self.starts <= clock < self.ends:
            day = local.date()
        else:
            return None
        opens = datetime.combine(day, self.ends).replace(tzinfo=tz)
        # A wall-clock time a DST change skips: the round trip moves it to a real instant.
        return opens.astimezone(UTC)


def is_urgent(flag: bool | None, closure_starts: datetime, now: datetime, tz: ZoneInfo) -> bool:
    """Explicit flag wins; by default a closure starting today (or already under way) is urgent."""
    if flag is not None:
        return flag
    return closure_starts.astimezone(tz).date() <= now.astimezone(tz).date()


@dataclass(frozen=True)
class Deferral:
    until: datetime  # when the quiet window opens (UTC)
    expired: bool  # the closure is over by then: do not send at all


def deferral(
    quiet: QuietHours | None,
    now: datetime,
    tz: ZoneInfo,
    urgent: bool | None,
    closure_starts: datetime,
    closure_ends: datetime,
) -> Deferral | None:
    """None: send now. Otherwise wait until the window opens, or expire if the closure is over.
    Unless the manager said "not urgent", a text the window would release only after the
    closure has begun is urgent by rule: nobody is told of a closure on its closed morning."""
    if quiet is None or is_urgent(urgent, closure_starts, now, tz):
        return None
    opens = quiet.ends_after(now, tz)
    if opens is None or (urgent is None and opens > closure_starts):
        return None
    return Deferral(until=opens, expired=too_late(closure_ends, opens))


def send_time_warning(
    quiet: QuietHours | None,
    send_at: datetime,
    tz: ZoneInfo,
    urgent: bool | None,
    closure_starts: datetime,
    closure_ends: datetime,
) -> str | None:
    """What a manager should know before texts are scheduled at ``send_at``: when they really
    go out if quiet hours hold them, or that they go at once by rule."""
    if quiet is None or urgent or quiet.ends_after(send_at, tz) is None:
        return None
    local = f"{send_at.astimezone(tz):%Y-%m-%d %H:%M}"
    wait = deferral(quiet, send_at, tz, urgent, closure_starts, closure_ends)
    if wait is None:
        return (
            f"the send time {local} is inside quiet hours ({quiet}), but the closure begins "
            "before they end: texts go out at once (urgent by rule; choose 'not urgent' to "
            "hold them)"
        )
    opens = f"{wait.until.astimezone(tz):%Y-%m-%d %H:%M}"
    if wait.expired:
        return (
            f"the send time {local} is inside quiet hours ({quiet}) and the closure is over "
            f"when they end at {opens}: texts will never be sent; make the notice urgent"
        )
    return (
        f"the send time {local} is inside quiet hours ({quiet}): texts go out at {opens}; "
        "make the notice urgent to send them at once"
    )


def held_warning(
    quiet: QuietHours | None,
    send_at: datetime,
    tz: ZoneInfo,
    closure_starts: datetime,
    closure_ends: datetime,
    what: str,
) -> str | None:
    """The same for ``what`` (calls) on a channel urgency does not take through quiet hours."""
    if quiet is None:
        return None
    wait = deferral(quiet, send_at, tz, False, closure_starts, closure_ends)
    if wait is None:
        return None
    local = f"{send_at.astimezone(tz):%Y-%m-%d %H:%M}"
    opens = f"{wait.until.astimezone(tz):%Y-%m-%d %H:%M}"
    if wait.expired:
        return (
            f"the send time {local} is inside quiet hours ({quiet}) and the closure is over "
            f"when they end at {opens}: {what} will never be placed"
        )
    return (
        f"the send time {local} is inside quiet hours ({quiet}): {what} wait until {opens}, "
        "urgent or not"
    )
