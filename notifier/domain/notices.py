"""Notices, their broadcasts and versions: the states, who hears, which message, and when it is
too late to tell anyone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.closures import Closure, SegmentKind
from notifier.errors import ValidationError


class NoticeKind(StrEnum):
    CLOSURE = "closure"
    EARLY_CLOSE = "early-close"
    DELAYED_OPEN = "delayed-open"


class NoticeStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # a newer version of the notice replaced it


WITHDRAWN = (NoticeStatus.CANCELLED, NoticeStatus.SUPERSEDED)
"""A notice in one of these states sends nothing more."""


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


class ReminderAudience(StrEnum):
    """Who a reminder goes to."""

    RECIPIENTS = "recipients"  # whom the first message reached: nobody new hears of it late
    EVERYONE = "everyone"  # the notice's audience as it is when the reminder goes out


def parse_reminder_audience(value: str) -> ReminderAudience:
    try:
        return ReminderAudience(value.strip().lower())
    except ValueError:
        raise ValidationError(
            f"reminder audience {value!r} not understood: use "
            f"{', '.join(a.value for a in ReminderAudience)}",
            "reminder_audience",
        ) from None


class BroadcastStatus(StrEnum):
    DRAFT = "draft"  # planned, not scheduled: waits for someone to say when (``notice send``)
    # More patients than NOTIFIER_APPROVAL_THRESHOLD: waits for a second manager's approval.
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"  # waiting for its send time
    SENDING = "sending"  # fanned out into deliveries
    DONE = "done"  # every delivery reached a final state
    EXPIRED = "expired"  # the closure ended before it could go out
    CANCELLED = "cancelled"
    FAILED = "failed"  # the fan-out hit an unexpected error (status_reason); can be retried


WAITING = (BroadcastStatus.DRAFT, BroadcastStatus.AWAITING_APPROVAL, BroadcastStatus.SCHEDULED)
"""A broadcast in one of these states has not gone out yet."""


class Template(StrEnum):
    """The messages a notice can send: the general notice, a patient's own affected
    appointments, and "open after all"."""

    CLOSURE = "closure"
    APPOINTMENT = "appointment"
    OPEN = "open"


ACTIVE_APPOINTMENT_STATUSES = ("scheduled", "confirmed")
APPOINTMENT_STATUSES = ("scheduled", "confirmed", "cancelled", "completed", "no-show")


class ReasonCode(StrEnum):
    """Why a clinic closes, as a category each template language words in its own way
    (``templates/_macros/reasons.<language>.j2``)."""

    WEATHER = "weather"
    POWER = "power"
    WATER = "water"
    STAFF = "staff"
    HOLIDAY = "holiday"
    EMERGENCY = "emergency"
    MAINTENANCE = "maintenance"
    OTHER = "other"  # no words of its own: the free text is the reason


def parse_reason_code(value: str | None) -> ReasonCode | None:
    if not value:
        return None
    try:
        return ReasonCode(value.strip().lower())
    except ValueError:
        raise ValidationError(
            f"reason code {value!r} not understood: use {', '.join(c.value for c in ReasonCode)}",
            "reason_code",
        ) from None


@dataclass(frozen=True)
class Clinic:
    """The location as messages name it."""

    name: str
    phone: str | None  # E.164
    default_language: str


@dataclass(frozen=True)
class NoticeFacts:
    """What a stored notice says, as stored: the words and the timing come from these alone."""

    id: int
    closure: Closure
    reason: str
    message: str | None
    change: NoticeChange
    audience: Audience
    clinic: Clinic
    # What this version changed from the one it replaced ("times", "reason", "wording"):
    # an update's messages say so.
    changed: tuple[str, ...] = ()
    # A reason category, worded by each language's templates; ``reason`` and ``message`` are in
    # the clinic's language, ``reasons`` and ``messages`` the same in other languages (a
    # message never carries text written in another language).
    reason_code: ReasonCode | None = None
    reasons: Mapping[str, str] = field(default_factory=dict)
    messages: Mapping[str, str] = field(default_factory=dict)

    def reason_in(self, language: str) -> str:
        """The free-text reason written in ``language`` ("" when there is none)."""
        if language == self.clinic.default_language:
            return self.reason
        return self.reasons.get(language, "")

    def message_in(self, language: str) -> str | None:
        """The custom message written in ``language`` (None when there is none)."""
        if language == self.clinic.default_language:
            return self.message
        return self.messages.get(language)


def what_changed(before: NoticeFacts, after: NoticeFacts) -> tuple[str, ...]:
    """What an update changed, in the order messages name it."""
    changes = []
    if before.closure.intervals != after.closure.intervals:
        changes.append("times")
    if (before.reason, before.reason_code, dict(before.reasons)) != (
        after.reason,
        after.reason_code,
        dict(after.reasons),
    ):
        changes.append("reason")
    if (before.message, dict(before.messages)) != (after.message, dict(after.messages)):
        changes.append("wording")
    return tuple(changes)


# --- which message ------------------------------------------------------------------------


class Heard(StrEnum):
    """What an address heard of a notice's earlier versions."""

    TOLD = "told"  # a message of an earlier version reached it
    MAYBE = "maybe"  # one may be at the provider right now (told or not): wait for its outcome
    NEVER = "never"


def telling(version: NoticeChange, heard: Heard) -> NoticeChange | None:
    """Rule 1, for one address and a later version of a notice: who was told an earlier version
    gets the correction ("UPDATE: …" / "open after all"); who never was gets the latest
    version as a plain notice — or nothing, when the latest says the closure is off. (MAYBE
    has no answer yet: the caller waits for the earlier message's outcome.)"""
    if heard is Heard.TOLD:
        return version if version is NoticeChange.CANCELLATION else NoticeChange.UPDATE
    if version is NoticeChange.CANCELLATION:
        return None
    return NoticeChange.ORIGINAL


def templates_for(change: NoticeChange, audience: Audience) -> list[Template]:
    """Every message a version of a notice may send (each is rendered when it is created)."""
    if change is NoticeChange.CANCELLATION:
        return [Template.OPEN]
    if audience is Audience.AFFECTED:
        return [Template.APPOINTMENT]
    if audience is Audience.BOTH:
        return [Template.CLOSURE, Template.APPOINTMENT]
    return [Template.CLOSURE]


def template_for(change: NoticeChange, names_appointments: bool) -> Template:
    """The message one delivery carries: "open after all", the patient's own appointments, or
    the general notice."""
    if change is NoticeChange.CANCELLATION:
        return Template.OPEN
    return Template.APPOINTMENT if names_appointments else Template.CLOSURE


def infer_kind(closure: Closure) -> NoticeKind:
    kinds = closure.kinds()
    if kinds == {SegmentKind.EARLY_CLOSE}:
        return NoticeKind.EARLY_CLOSE
    if kinds == {SegmentKind.LATE_OPEN}:
        return NoticeKind.DELAYED_OPEN
    return NoticeKind.CLOSURE


def parse_kind(value: str | None, closure: Closure) -> NoticeKind:
    if not value:
        return infer_kind(closure)
    try:
        return NoticeKind(value)
    except ValueError:
        raise ValidationError(
            f"kind {value!r} is not one of {', '.join(k.value for k in NoticeKind)}", "kind"
        ) from None


def parse_audience(value: str) -> Audience:
    try:
        return Audience(value.strip().lower())
    except ValueError:
        raise ValidationError(
            f"audience {value!r} not understood: use {', '.join(a.value for a in Audience)}",
            "audience",
        ) from None


def check_wording(reason: str | None, message: str | None, code: ReasonCode | None = None) -> None:
    """A reason is required (a category, free text, or both; "other" needs the text); custom
    wording, when given, must say something."""
    words_of_its_own = code is not None and code is not ReasonCode.OTHER
    if reason is not None and not reason.strip() and not words_of_its_own:
        raise ValidationError(
            "give a reason (e.g. 'inclement weather') or a reason code (e.g. weather)", "reason"
        )
    if message is not None and not message.strip():
        raise ValidationError("the custom message is empty: leave it out or write it", "message")


# --- when ---------------------------------------------------------------------------------


def too_late(closure_ends: datetime, at: datetime) -> bool:
    """The one rule for "this closure is over": nothing is sent (or retried) at or after its
    end. SQL that must agree compares ``ends_at > at`` (see storage)."""
    return at >= closure_ends


def check_not_over(closure: Closure, now: datetime, field: str = "ends") -> None:
    if too_late(closure.ends, now):
        raise ValidationError(
            f"the closure ended at {closure.local(closure.ends):%Y-%m-%d %H:%M}; "
            "there is nothing left to tell patients",
            field,
        )


def check_send_time(
    send_at: datetime, closure: Closure, now: datetime, field: str = "send_at"
) -> None:
    """A broadcast must go out before the closure is over, and not in the past."""
    if too_late(closure.ends, send_at):
        raise ValidationError(
            f"the send time {closure.local(send_at):%Y-%m-%d %H:%M} is after the closure ends "
            f"({closure.local(closure.ends):%Y-%m-%d %H:%M}); patients would be told too late",
            field,
        )
    if send_at < now - timedelta(minutes=1):
        raise ValidationError(
            f"the send time {closure.local(send_at):%Y-%m-%d %H:%M} is in the past "
            f"(now is {closure.local(now):%Y-%m-%d %H:%M}); use 'now' to send at once",
            field,
        )


def channels_of(broadcast_channels: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The distinct channels of a notice's broadcasts (each its channel names), in order."""
    return tuple(dict.fromkeys(name for names in broadcast_channels for name in names))


# --- what staff are told a notice is ------------------------------------------------------


class Period(StrEnum):
    """Where a notice is listed: by what is true now, not by its row's status."""

    UPCOMING = "upcoming"  # a closure still ahead (or a draft)
    NOW = "now"  # the clinic is closed (or opens late, or closed early) right now
    PAST = "past"  # over, cancelled, replaced, or "open after all"


class Action(StrEnum):
    SEND = "send"  # schedule a draft
    APPROVE = "approve"  # a second manager lets a large broadcast go out
    UPDATE = "update"
    CANCEL = "cancel"
    RETRY = "retry"  # a broadcast's fan-out failed


KIND_WORDS = {
    NoticeKind.CLOSURE: ("upcoming closure", "closed now"),
    NoticeKind.EARLY_CLOSE: ("upcoming early close", "closed early now"),
    NoticeKind.DELAYED_OPEN: ("upcoming late opening", "opening late now"),
}

_SENDING_WORDS = {
    BroadcastStatus.DRAFT: "draft",
    BroadcastStatus.AWAITING_APPROVAL: "awaiting approval",
    BroadcastStatus.SCHEDULED: "scheduled",
    BroadcastStatus.SENDING: "sending",
    BroadcastStatus.DONE: "sent",
    BroadcastStatus.EXPIRED: "expired",
    BroadcastStatus.CANCELLED: "withdrawn",
    BroadcastStatus.FAILED: "failed",
}


@dataclass(frozen=True)
class Standing:
    """A notice as staff should read it: words, where it is listed, what can be done."""

    words: str  # "upcoming closure", "closed now", "cancelled · patients told", ...
    period: Period
    actions: tuple[Action, ...]


def standing(
    status: NoticeStatus,
    change: NoticeChange,
    kind: NoticeKind,
    starts: datetime,
    ends: datetime,
    broadcasts: Sequence[BroadcastStatus],
    followed_by: NoticeChange | None,
    now: datetime,
) -> Standing:
    """What a notice is, in the words a front desk uses. ``broadcasts`` are its broadcasts'
    statuses (first first); ``followed_by`` is the change of the version that replaced it."""
    first = broadcasts[0] if broadcasts else BroadcastStatus.DONE
    if change is NoticeChange.CANCELLATION:
        sent = "withdrawn" if status is not NoticeStatus.ACTIVE else _SENDING_WORDS[first]
        return Standing(f"open after all · {sent}", Period.PAST, ())
    if status is NoticeStatus.CANCELLED:
        told = followed_by is NoticeChange.CANCELLATION
        return Standing("cancelled · patients told" if told else "cancelled", Period.PAST, ())
    if status is NoticeStatus.SUPERSEDED:
        return Standing("replaced by a newer version", Period.PAST, ())
    ahead, under_way = KIND_WORDS[kind]
    if too_late(ends, now):
        return Standing(f"{ahead.removeprefix('upcoming ')} · over", Period.PAST, ())
    actions: list[Action] = [Action.UPDATE, Action.CANCEL]
    words = under_way if starts <= now else ahead
    if first is BroadcastStatus.DRAFT:
        words, actions = f"draft · {words}", [Action.SEND, *actions]
    elif first is BroadcastStatus.AWAITING_APPROVAL:
        words, actions = f"awaiting approval · {words}", [Action.APPROVE, *actions]
    elif change is NoticeChange.UPDATE:
        words += " · updated"
    if BroadcastStatus.FAILED in broadcasts:
        words += " · broadcast failed"
        actions.append(Action.RETRY)
    return Standing(words, Period.NOW if starts <= now else Period.UPCOMING, tuple(actions))
