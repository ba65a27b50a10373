"""Opt-outs and the consent ledger: STOP/START/HELP keywords, unsubscribe links, Twilio 21610.

An opt-out is per channel and address: a STOP from a phone opts out every patient with that
phone. It overrides the consent imported with the patient until the address opts back in
(START), which lifts the opt-out but grants no consent the clinic did not record. Every change
is one row per affected patient in ``consent_events`` (who, when, how, channel, old → new).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from notifier import store
from notifier.clock import Clock
from notifier.contacts import mask_address
from notifier.models import ConsentEvent, Patient

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


class Source(StrEnum):
    """How a consent change reached us."""

    KEYWORD = "keyword"  # an SMS reply (STOP, START...) through the inbound webhook
    PROVIDER_21610 = "21610"  # Twilio refused a send: the number had opted out with Twilio
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # the email's one-click or confirmed unsubscribe
    API = "api"
    IMPORT = "import"  # the clinic's patient CSV (sms_consent / email_consent columns)


CONSENT_GRANTED = "consent_granted"
CONSENT_WITHHELD = "consent_withheld"
_CONSENT_COLUMNS = {"sms": ("sms_consent", "phone"), "email": ("email_consent", "email")}


def record_imported_consent(
    s: Session, patient: Patient, before: dict[str, object] | None, now: datetime
) -> None:
    """Ledger entries for the consent an import grants or withdraws (a new patient's consent
    counts as granted). Called after the row is applied; ``before`` is the old values or None."""
    for channel, (consent_column, address_column) in _CONSENT_COLUMNS.items():
        new = bool(getattr(patient, consent_column))
        old = bool(before[consent_column]) if before is not None else False
        address = getattr(patient, address_column)
        if old == new or address is None or (before is None and not new):
            continue
        _ledger(
            s,
            channel,
            str(address),
            Source.IMPORT,
            now,
            CONSENT_GRANTED if old else CONSENT_WITHHELD,
            CONSENT_GRANTED if new else CONSENT_WITHHELD,
            patient.id,
            "patient CSV import",
        )


def classify(body: str) -> Keyword | None:
    """The keyword a whole message is (any case, surrounding spaces/punctuation), or None."""
    word = _EDGES.sub("", body.strip()).upper()
    if word in OPT_OUT_KEYWORDS:
        return Keyword.STOP
    if word in OPT_IN_KEYWORDS:
        return Keyword.START
    if word in HELP_KEYWORDS:
        return Keyword.HELP
    return None


def opt_out(
    s: Session,
    channel: str,
    address: str,
    source: Source,
    now: datetime,
    *,
    patient_id: int | None = None,
    detail: str | None = None,
) -> bool:
    """Record an opt-out; False if the address was already opted out (nothing changes)."""
    if store.opt_out_exists(s, channel, address):
        return False
    store.add_opt_out(s, channel, address, source.value, now)
    _ledger(s, channel, address, source, now, OPTED_IN, OPTED_OUT, patient_id, detail)
    skipped = store.skip_pending_to(s, channel, address, now, "opted out")
    log.info(
        "opted out",
        extra={
            "action": "opt_out",
            "channel": channel,
            "to": mask_address(address),
            "source": source.value,
            "pending_skipped": skipped,
        },
    )
    return True


def opt_in(
    s: Session,
    channel: str,
    address: str,
    source: Source,
    now: datetime,
    *,
    patient_id: int | None = None,
    detail: str | None = None,
) -> bool:
    """Lift an opt-out; False if there was none."""
    if not store.remove_opt_out(s, channel, address):
        return False
    _ledger(s, channel, address, source, now, OPTED_OUT, OPTED_IN, patient_id, detail)
    log.info(
        "opted in",
        extra={
            "action": "opt_in",
            "channel": channel,
            "to": mask_address(address),
            "source": source.value,
        },
    )
    return True


def _ledger(
    s: Session,
    channel: str,
    address: str,
    source: Source,
    now: datetime,
    old: str,
    new: str,
    patient_id: int | None,
    detail: str | None,
) -> None:
    if patient_id is not None:
        who: list[int | None] = [patient_id]
    else:
        who = [p.id for p in store.patients_with_address(s, channel, address)] or [None]
    for pid in who:
        store.add_consent_event(
            s,
            ConsentEvent(
                at=now,
                channel=channel,
                address=address,
                patient_id=pid,
                source=source.value,
                old=old,
                new=new,
                detail=detail,
            ),
        )


def on_send_outcome(s: Session, channel: str, address: str, code: str | None, clock: Clock) -> None:
    """Twilio 21610: the number opted out with Twilio (STOP); record it as ours too."""
    if channel == "sms" and code == "21610":
        opt_out(
            s,
            channel,
            address,
            Source.PROVIDER_21610,
            clock.now(),
            detail="Twilio refused a send: the number is unsubscribed (21610)",
        )
