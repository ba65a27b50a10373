"""What staff read of patients' conversations: each with its patient, place, waiting time and
messages (the inbox's views; ``usecases.replies`` does the work)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.closures import BusinessHours, zone
from notifier.domain.contacts import display_phone
from notifier.domain.conversations import business_minutes
from notifier.domain.erasure import ERASED
from notifier.storage import accounts as account_rows
from notifier.storage import consent as consent_rows
from notifier.storage import conversations as rows
from notifier.storage.models import Conversation, ConversationMessage, Patient


@dataclass(frozen=True)
class MessageView:
    id: int
    at: str
    author: str  # patient, staff, auto
    body: str | None  # None once erased
    state: str  # received, sending, sent, delivered, undelivered, failed, refused
    error: str | None
    sent_by: str | None  # user:3, token:2, operator; "auto" for the auto-reply


@dataclass(frozen=True)
class ConversationView:
    id: int
    location: str | None  # slug; None: a number no patient or delivery places
    location_name: str | None
    timezone: str | None  # the location's: times shown as the clinic reads them
    number: str  # the patient's, as people dial it (staff call back)
    sender: str | None  # the number the patient wrote to: answers go from it
    patient: str | None  # external id
    patient_name: str | None
    language: str | None
    notice_id: int | None  # the notice the texts most likely answer
    unread: int
    done: bool
    assigned_to: str | None  # the user's email
    waiting_since: str | None  # the first unanswered text, ISO
    waiting_minutes: int | None  # of business hours
    opted_out: bool
    last_message_at: str
    messages: list[MessageView]


@dataclass(frozen=True)
class InboxLocation:
    slug: str
    name: str
    auto_reply: bool


def conversation_views(
    s: Session, now: datetime, found: Sequence[Conversation]
) -> list[ConversationView]:
    """The conversations as staff read them: patient, place, waiting time in the location's
    business hours (``now``), whether the number opted out, and every message."""
    ids = [c.id for c in found]
    messages = rows.messages_of(s, ids)
    places = rows.locations(s, sorted({c.location_id for c in found if c.location_id}))
    views = []
    for c in found:
        place = places.get(c.location_id) if c.location_id else None
        patient = s.get(Patient, c.patient_id) if c.patient_id else None
        user = account_rows.user_by_id(s, c.assigned_to) if c.assigned_to else None
        waited = None
        if c.waiting_since is not None and not c.done:
            if place is not None:
                hours = BusinessHours.from_json(place.business_hours)
                minutes = business_minutes(c.waiting_since, now, hours, zone(place.timezone))
            else:
                minutes = (now - c.waiting_since).total_seconds() / 60
            waited = int(minutes)
        erased = c.address.startswith(ERASED)
        views.append(
            ConversationView(
                id=c.id,
                location=place.slug if place else None,
                location_name=place.name if place else None,
                timezone=place.timezone if place else None,
                number=c.address if erased else display_phone(c.address),
                sender=display_phone(c.sender) if c.sender else None,
                patient=patient.external_id if patient else None,
                patient_name=(
                    f"{patient.first_name} {patient.last_name}".strip()
                    if patient and patient.forgotten_at is None
                    else None
                ),
                language=patient.language if patient else None,
                notice_id=c.notice_id,
                unread=c.unread,
                done=c.done,
                assigned_to=user.email if user else None,
                waiting_since=c.waiting_since.isoformat() if c.waiting_since else None,
                waiting_minutes=waited,
                opted_out=not erased and consent_rows.opt_out_exists(s, c.channel, c.address),
                last_message_at=c.last_message_at.isoformat(),
                messages=[message_view(m) for m in messages[c.id]],
            )
        )
    return views


def message_view(row: ConversationMessage) -> MessageView:
    return MessageView(
        id=row.id,
        at=row.at.isoformat(),
        author=row.author,
        body=row.body,
        state=row.state,
        error=row.error_message,
        sent_by=row.sent_by,
    )
