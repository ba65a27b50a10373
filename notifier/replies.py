"""What Twilio tells us after a send: status callbacks and patients' replies (STOP, HELP...).

Use cases behind the webhooks; no HTTP here. Status callbacks never move a delivery backwards:
``sending``/``sent`` < ``delivered`` | ``undelivered`` | ``failed``. A repeated callback changes
nothing; a late one (``sent`` after ``delivered``) changes nothing but is logged as an event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session
from twilio.twiml.messaging_response import MessagingResponse

from notifier import consent, store
from notifier.clock import Clock
from notifier.contacts import display_phone, mask_address
from notifier.db import Database
from notifier.domain import DeliveryState

log = logging.getLogger(__name__)

TWILIO_STATES = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
}
"""Twilio MessageStatus → our state; the rest (queued, sending, accepted...) change nothing."""

_RANK = {
    DeliveryState.PENDING: 0,
    DeliveryState.SENDING: 0,
    DeliveryState.SENT: 1,
}  # every other state is final: rank 2


def rank(state: DeliveryState) -> int:
    return _RANK.get(state, 2)


def earlier_than(state: DeliveryState) -> list[DeliveryState]:
    return [s for s in DeliveryState if rank(s) < rank(state)]


@dataclass(frozen=True)
class StatusResult:
    outcome: str  # applied, duplicate, ignored, unknown_sid, no_op
    state: str | None = None


def apply_status(
    db: Database,
    clock: Clock,
    message_sid: str,
    status: str,
    error_code: str | None = None,
    error_message: str | None = None,
    wait_for_unknown: float = 0.0,
) -> StatusResult:
    """Apply one Twilio status callback to the delivery with that provider id."""
    new = TWILIO_STATES.get(status.lower())
    if new is None:
        return StatusResult("no_op")
    delivery_id = _find(db, message_sid, wait_for_unknown)
    if delivery_id is None:
        log.info(
            "status callback for an unknown message",
            extra={"action": "status_unknown_sid", "provider_id": message_sid},
        )
        return StatusResult("unknown_sid")
    now = clock.now()
    code = error_code or None
    with db.session() as s:
        detail = error_message or (
            f"Twilio reported {status}" + (f" (error {code})" if code else "")
        )
        if store.advance_state(s, delivery_id, earlier_than(new), new, now, code, detail):
            store.add_event(
                s, delivery_id, now, f"status_{new.value}", new, code=code, detail=detail
            )
            outcome = StatusResult("applied", new.value)
        else:
            current = store.delivery_state(s, delivery_id) or ""
            if current == new.value:
                return StatusResult("duplicate", current)
            store.add_event(
                s,
                delivery_id,
                now,
                "status_ignored",
                DeliveryState(current),
                code=code,
                detail=f"late or conflicting status {status!r} ignored: already {current}",
            )
            outcome = StatusResult("ignored", current)
    log.info(
        "status callback %s",
        outcome.outcome,
        extra={"action": f"status_{outcome.outcome}", "delivery_id": delivery_id, "code": code},
    )
    return outcome


def _find(db: Database, message_sid: str, wait: float) -> int | None:
    """The callback can overtake our own commit of the send: look again briefly."""
    deadline = time.monotonic() + wait
    while True:
        with db.session() as s:
            found = store.delivery_id_by_provider_id(s, message_sid)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


@dataclass(frozen=True)
class InboundResult:
    keyword: consent.Keyword | None
    changed: bool
    twiml: str


def handle_inbound(db: Database, clock: Clock, from_: str, body: str) -> InboundResult:
    """STOP… opts the number out of SMS, START… back in, HELP/INFO answers; the rest is ignored."""
    keyword = consent.classify(body) if from_.strip() else None
    reply = MessagingResponse()
    changed = False
    now = clock.now()
    with db.session() as s:
        if keyword is consent.Keyword.STOP:
            changed = consent.opt_out(
                s, "sms", from_, consent.Source.KEYWORD, now, detail=body.strip()[:40]
            )
        elif keyword is consent.Keyword.START:
            changed = consent.opt_in(
                s, "sms", from_, consent.Source.KEYWORD, now, detail=body.strip()[:40]
            )
        elif keyword is consent.Keyword.HELP:
            reply.message(help_text(s, from_))
    log.info(
        "inbound SMS",
        extra={
            "action": "inbound_sms",
            "from": mask_address(from_),
            "keyword": keyword.value if keyword else None,
            "changed": changed,
        },
    )
    return InboundResult(keyword, changed, str(reply))


def help_text(s: Session, phone: str) -> str:
    """What CTIA asks of a HELP reply: who we are, what these texts are, how to stop, a phone."""
    patients = store.patients_with_address(s, "sms", phone)
    locations = [p.location for p in patients] or list(store.locations(s))
    location = locations[0] if len(locations) == 1 or patients else None
    name = location.name if location else "Your clinic"
    contact = (
        f" Questions: {display_phone(location.phone)}."
        if location is not None and location.phone
        else " Questions: call your clinic."
    )
    return (
        f"{name} closure alerts: we text you when the clinic closes or changes its hours. "
        f"Msg & data rates may apply. Reply STOP to opt out, START to opt back in.{contact}"
    )
