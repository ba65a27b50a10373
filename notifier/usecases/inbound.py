"""A patient's text as the inbound webhook hands it over: checked before anything is stored, and
who answers it. Used by ``Consent.reply`` inside its transaction.

The sender must be a phone number (normalised to E.164, as patients' numbers are stored, so
``5405550112`` opts out ``+15405550112``), and the provider's message id usable: anything else
is acknowledged and ignored, with the reason logged masked. Fields are cleaned of control
characters and cut to their columns first, since PostgreSQL refuses NUL and overlong values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.channels import ChannelSpec
from notifier.domain.consent import Match
from notifier.domain.contacts import display_phone, mask_phone, normalize_phone
from notifier.domain.replies import DEFAULT_PROGRAM, Sender, answer, reply_language
from notifier.domain.untrusted import printable
from notifier.errors import ValidationError
from notifier.settings import Settings
from notifier.storage import locations as location_rows
from notifier.storage import patients as patient_rows
from notifier.storage.limits import string_lengths
from notifier.storage.models import InboundMessage, Patient

log = logging.getLogger(__name__)
_COLUMNS = string_lengths(InboundMessage)
DETAIL_CHARS = 40  # of the body, kept as the consent event's detail


@dataclass(frozen=True)
class Received:
    """A text worth acting on: its provider id, its sender in E.164 and its cleaned body."""

    provider_id: str
    sender: str
    body: str

    def row(self, channel: str, keyword: str, now: datetime) -> InboundMessage:
        return InboundMessage(
            channel=channel,
            provider_id=self.provider_id,
            keyword=keyword,
            received_at=now,
        )


def received(provider_id: str, sender: str, body: str, region: str) -> Received | None:
    """The text, checked; None (with the reason logged, masked) if it cannot be acted on."""
    provider_id, sender = printable(provider_id), printable(sender)
    reason = None
    if not provider_id or len(provider_id) > _COLUMNS["provider_id"]:
        reason = "no usable message id"
    else:
        try:
            sender = normalize_phone(sender, region)
        except ValidationError:
            reason = "the sender is not a phone number"
    if reason is not None:
        log.warning(
            "inbound message ignored: %s",
            reason,
            extra={"action": "inbound_ignored", "from": mask_phone(sender[:20])},
        )
        return None
    return Received(provider_id, sender, printable(body))


def reply_to(
    s: Session, spec: ChannelSpec, settings: Settings, phone: str, found: Match
) -> str | None:
    """Our answer to a keyword (None when Twilio confirms it itself): from the patient's clinic,
    or, to a number no patient has, from the program (NOTIFIER_PROGRAM_NAME, NOTIFIER_HELP_PHONE;
    by default the only location's name and phone)."""
    patients = patient_rows.patients_with_address(s, spec, phone)
    language = reply_language(found, [p.language for p in patients])
    return answer(found, language, _sender(s, settings, patients))


def _sender(s: Session, settings: Settings, patients: Sequence[Patient]) -> Sender:
    program = settings.program_name or DEFAULT_PROGRAM
    if patients:
        clinic = patients[0].location
        return _dialled(clinic.name, clinic.phone or settings.help_phone, program)
    everywhere = location_rows.locations(s)
    only = everywhere[0] if len(everywhere) == 1 else None
    if only is not None and not settings.program_name:
        return _dialled(only.name, only.phone or settings.help_phone, program)
    return _dialled(None, settings.help_phone or (only.phone if only else None), program)


def _dialled(clinic: str | None, phone: str | None, program: str) -> Sender:
    return Sender(clinic, program, display_phone(phone) if phone else None)
