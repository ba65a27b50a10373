"""Patients' texts that are not keywords, and the answers to them: who wrote what, who answers,
how long a question has waited (counted in the clinic's business hours), and the words of the
automatic answer sent while the clinic is closed. Pure: no storage, no provider."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from notifier.domain.closures import BusinessHours
from notifier.domain.deliveries import DeliveryState
from notifier.errors import ValidationError

MAX_ANSWER_CHARS = 1600  # what Twilio takes in one message (error 21617 beyond)


class Author(StrEnum):
    PATIENT = "patient"  # the patient's text (inbound)
    STAFF = "staff"  # a manager's answer
    AUTO = "auto"  # the closure auto-reply


class MessageState(StrEnum):
    RECEIVED = "received"  # a patient's text, stored
    QUEUED = "queued"  # an answer stored, waiting for the worker (or for a retry)
    SENDING = "sending"  # claimed by a worker: the provider call may be in flight
    SENT = "sent"  # the provider took it (its id is kept)
    DELIVERED = "delivered"  # the provider's status callback: it reached the phone
    UNDELIVERED = "undelivered"  # the provider's status callback: the carrier could not
    FAILED = "failed"  # the provider refused it or could not be reached; the reason is kept
    REFUSED = "refused"  # not sent: the patient opted out


OUTGOING = (Author.STAFF, Author.AUTO)
"""The messages that go out (and so appear in the delivery log)."""

LOG_KINDS = {Author.STAFF: "answer", Author.AUTO: "auto_reply"}
"""How the delivery log names what is not a notice's message."""

QUEUED_ALIKE = {"pending": MessageState.QUEUED.value, "queued": "pending"}
"""The delivery log's filter: a delivery's ``pending`` is an answer's ``queued`` and back."""


# What a provider's delivery report makes of an answer that went out: only forward, from
# handed over (sending, sent) to an end (delivered, undelivered, failed), never back.
_REPORTED = {
    DeliveryState.DELIVERED: MessageState.DELIVERED,
    DeliveryState.UNDELIVERED: MessageState.UNDELIVERED,
    DeliveryState.FAILED: MessageState.FAILED,
}


def reported(current: MessageState, report: DeliveryState) -> MessageState | None:
    """The answer's new state after a provider's report, or None when the report changes
    nothing (a duplicate, a late one, or a report that only says it was sent)."""
    new = _REPORTED.get(report)
    if new is None or current not in (MessageState.SENDING, MessageState.SENT):
        return None
    return new


_AUTO = {
    "en": "Automatic reply: {closure} Your message was saved; staff will answer when we reopen.",
    "es": (
        "Respuesta automática: {closure} Guardamos su mensaje; el personal le responderá cuando "
        "reabramos."
    ),
}


def auto_reply_text(language: str, closure: str) -> str:
    """The auto-reply around the closure's own wording (which names the reopening time)."""
    return _AUTO.get(language, _AUTO["en"]).format(closure=" ".join(closure.split()))


def checked_answer(text: str) -> str:
    """A manager's answer, trimmed; ValidationError naming the problem when it cannot go."""
    answer = text.strip()
    if not answer:
        raise ValidationError("the answer is empty: write a message", "message")
    if "\x00" in answer:
        raise ValidationError("the answer contains a NUL character", "message")
    if len(answer) > MAX_ANSWER_CHARS:
        raise ValidationError(
            f"the answer has {len(answer)} characters, at most {MAX_ANSWER_CHARS}", "message"
        )
    return answer


def business_minutes(since: datetime, now: datetime, hours: BusinessHours, tz: ZoneInfo) -> float:
    """Minutes between ``since`` and ``now`` that fall in the business hours (a text sent at
    night waits from the morning on)."""
    if now <= since:
        return 0.0
    total = timedelta()
    day = since.astimezone(tz).date()
    last = now.astimezone(tz).date()
    while day <= last:
        window = hours.window(day, tz)
        if window is not None:
            start, end = max(window[0], since), min(window[1], now)
            if end > start:
                total += end - start
        day += timedelta(days=1)
    return total.total_seconds() / 60
