"""One shape for what a person asks a notice to be (``NoticeRequest``), built by every adapter
(CLI, API, console) and taken by ``Notices.create``, ``Notices.draft`` and the plan; and the
checks that turn its text into a closure and send times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from notifier.domain.closures import (
    BusinessHours,
    Closure,
    Interval,
    parse_interval,
    parse_local,
    zone,
)
from notifier.domain.notices import (
    Audience,
    ReminderAudience,
    check_not_over,
    check_send_time,
    too_late,
)
from notifier.errors import ValidationError
from notifier.storage.models import Location


@dataclass(frozen=True)
class NoticeRequest:
    """A new notice as a person gave it: times as local text ('YYYY-MM-DD HH:MM' in the
    location's zone), checked by the use case that takes it.

    The closure is ``starts``–``ends``, or one or more ``intervals`` ("START/END"). ``send_at``
    is 'now', a local time, or None for a draft (sent later by ``Notices.send``). ``channels``
    empty means every registered channel. A ``reminder_at`` adds a second broadcast of the same
    message, to ``reminder_audience``. An ``emergency_reason`` lets it go out without a second
    manager's approval.
    """

    location: str
    starts: str | None = None
    ends: str | None = None
    reason: str = ""
    intervals: tuple[str, ...] = ()
    kind: str | None = None
    message: str | None = None
    send_at: str | None = "now"
    channels: tuple[str, ...] = ()
    urgent: bool | None = None
    audience: str = Audience.EVERYONE.value
    reminder_at: str | None = None
    reminder_audience: str = ReminderAudience.RECIPIENTS.value
    # One manager sends alone, above the approval threshold, saying why (recorded, flagged).
    emergency_reason: str | None = None
    # A reason category (domain.notices.ReasonCode), worded in every template language; and
    # the free-text reason and custom message in languages other than the location's
    # (``reason`` and ``message`` are in the location's language).
    reason_code: str | None = None
    reason_texts: Mapping[str, str] = field(default_factory=dict)
    message_texts: Mapping[str, str] = field(default_factory=dict)
    # When the public page and feeds show it (a local time; None: once queued); ``private``:
    # never.
    publish_at: str | None = None
    private: bool = False
    # Channels to try in order when a delivery fails for good for a reason the next one may
    # cure, as written: "sms>voice>email" (None: no fallback).
    fallback: str | None = None


def translations(
    texts: Mapping[str, str], available: Sequence[str], default: str, part: str
) -> dict[str, str]:
    """Texts in other languages, each in a language with templates and saying something."""
    field_name = f"{part}_texts"
    result: dict[str, str] = {}
    for language, text in texts.items():
        code = language.strip().lower()
        if code not in available:
            raise ValidationError(
                f"there are no {code!r} templates for the {part} in {code!r}: use one of "
                f"{', '.join(available)}",
                field_name,
            )
        if code == default:
            raise ValidationError(
                f"{code!r} is the location's language: give that {part} as the plain --{part}",
                field_name,
            )
        if not text.strip():
            raise ValidationError(f"the {part} in {code!r} is empty: leave it out", field_name)
        result[code] = text.strip()
    return result


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


def send_instant(closure: Closure, send_at: str, now: datetime) -> datetime:
    """The send instant for ``send_at`` ('now' or a local time), checked against the closure."""
    check_not_over(closure, now)
    if send_at.strip().lower() == "now":
        instant = now
    else:
        instant = parse_local(send_at, closure.tz, "send time", "send_at")
    check_send_time(instant, closure, now)
    return instant


def reminder_instant(
    reminder_at: str | None, closure: Closure, first: datetime, now: datetime
) -> datetime | None:
    """A reminder goes out after the first send and, like it, before the closure is over."""
    if reminder_at is None or not reminder_at.strip():
        return None
    reminder = parse_local(reminder_at, closure.tz, "the reminder time", "reminder_at")
    if reminder <= first:
        raise ValidationError(
            f"the reminder time {closure.local(reminder):%Y-%m-%d %H:%M} must be after the send "
            f"time ({closure.local(first):%Y-%m-%d %H:%M})",
            "reminder_at",
        )
    try:
        check_send_time(reminder, closure, now, "reminder_at")
    except ValidationError as exc:
        raise ValidationError(f"the reminder: {exc}", "reminder_at") from None
    return reminder


def publish_instant(
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
