"""Data that expires, and patients forgotten on request.

``run`` (at ``serve`` start, then hourly; ``notifier retention run``): deliveries older than
``NOTIFIER_RETENTION_DAYS`` lose their addresses (``erased:<id>``) and provider error texts,
their events their details, and consent-ledger entries that old keep a keyed hash of their
address instead of it. States, attempts, codes, counts and times stay, so the delivery log's
totals and the notices' summaries do not change. Messages' bodies are never stored (they are
rendered from the stored notice), so there are none to erase; patients' texts and the answers
to them (``usecases.replies``) lose their bodies and numbers at the same age.

``forget`` erases one patient's name, phone and email, every address they were sent to and
their conversations' texts; an opt-out of theirs moves to a keyed hash
(``domain.erasure.address_digest``), so the number stays suppressed when a later import brings
it back (``restore_suppressed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.channels import ChannelSpec
from notifier.domain.consent import Source
from notifier.domain.erasure import address_digest
from notifier.errors import ConfigurationError, NotFoundError
from notifier.settings import Settings
from notifier.storage import conversations as conversation_rows
from notifier.storage import erasure as erasure_rows
from notifier.storage import patients as patient_rows
from notifier.storage.models import Patient
from notifier.usecases import UseCase
from notifier.usecases.audit import record
from notifier.usecases.consent import opt_out
from notifier.usecases.lookups import require_manager

log = logging.getLogger(__name__)
_SYSTEM = Actor.operator()
RESTORED = "this address had opted out before its patient was forgotten"


@dataclass(frozen=True)
class RetentionRun:
    deliveries: int  # deliveries whose address and error text were erased
    ledger: int  # consent-ledger entries that now keep a keyed hash
    # Old consent-ledger entries that keep their address: there is no NOTIFIER_SECRET_KEY to
    # hash them with (an unkeyed hash of a phone number is reversed by trying them all).
    ledger_kept: int = 0


@dataclass(frozen=True)
class Forgotten:
    patient: str  # the external id
    deliveries: int
    suppressed: int  # opt-outs kept as keyed hashes


class Retention(UseCase):
    def run(self, actor: Actor = _SYSTEM) -> RetentionRun:
        """Erase what is older than ``NOTIFIER_RETENTION_DAYS`` (one transaction)."""
        now = self.clock.now()
        cutoff = now - timedelta(days=self.settings.retention_days)
        key = _key(self.settings)
        with self.db.session() as s:
            deliveries = erasure_rows.erase_deliveries_before(s, cutoff)
            replies = conversation_rows.erase_before(s, cutoff, now)
            ledger = kept = 0
            if key is not None:
                ledger = erasure_rows.digest_ledger_before(
                    s, cutoff, lambda channel, address: address_digest(key, channel, address)
                )
            else:
                kept = erasure_rows.ledger_before(s, cutoff)
            record(s, actor, "retention_run", now, count=deliveries)
        log.info(
            "retention run",
            extra={
                "action": "retention_run",
                "deliveries": deliveries,
                "ledger": ledger,
                "replies": replies,
            },
        )
        if kept:
            log.warning(
                "consent-ledger entries older than NOTIFIER_RETENTION_DAYS keep their addresses: "
                "set NOTIFIER_SECRET_KEY so that retention can replace them by a keyed hash",
                extra={"action": "retention_ledger_kept", "count": kept},
            )
        return RetentionRun(deliveries, ledger, kept)

    def forget(self, actor: Actor, external_id: str) -> Forgotten:
        """Erase a patient's contact data (name, phone, email, the addresses of their
        deliveries); their opt-outs keep working by keyed hash. NotFoundError for a patient
        outside the actor's locations."""
        require_manager(actor)
        key = _key(self.settings)
        if key is None:
            raise ConfigurationError(
                "NOTIFIER_SECRET_KEY is not set: it keys the hash that keeps a forgotten "
                "patient's opt-out working"
            )
        now = self.clock.now()
        with self.db.session() as s:
            patient = patient_rows.patients_by_external_ids(s, [external_id]).get(external_id)
            if patient is None or not actor.sees(patient.location_id):
                raise NotFoundError(f"no patient {external_id!r}", "patient")
            pairs = set(erasure_rows.delivery_addresses_of(s, patient.id))
            for name, spec in self.deps.channels.items():
                current = getattr(patient, spec.address.value)
                if current:
                    pairs.add((name, str(current)))
            suppressed = 0
            for channel, address in sorted(pairs):
                hashed = address_digest(key, channel, address)
                suppressed += erasure_rows.suppress_by_hash(s, channel, address, hashed, now)
                erasure_rows.digest_ledger_of(s, channel, address, hashed)
            deliveries = erasure_rows.erase_deliveries_of(s, patient.id)
            conversation_rows.erase_of(s, patient.id, [a for _, a in pairs], now)
            _erase(patient, self.deps.channels.values(), now)
            record(s, actor, "patient_forget", now, f"patient:{patient.id}", deliveries)
            log.info(
                "patient forgotten",
                extra={"action": "patient_forgotten", "patient_id": patient.id},
            )
            return Forgotten(external_id, deliveries, suppressed)


def restore_suppressed(s: Session, uc: UseCase, patients: list[Patient]) -> int:
    """Imported patients whose address was opted out before a patient with it was forgotten:
    the opt-out comes back (in the import's transaction); how many."""
    key = _key(uc.settings)
    if key is None:
        return 0
    wanted: dict[tuple[str, str], tuple[str, Patient]] = {}
    for patient in patients:
        for name, spec in uc.deps.channels.items():
            address = getattr(patient, spec.address.value)
            if address:
                wanted[(name, address_digest(key, name, str(address)))] = (str(address), patient)
    restored = 0
    for channel, digest in erasure_rows.suppressed(s, list(wanted)):
        address, patient = wanted[(channel, digest)]
        spec, now = uc.deps.spec(channel), uc.clock.now()
        restored += opt_out(
            s, spec, address, Source.IMPORT, now, patient_id=patient.id, detail=RESTORED
        )
    return restored


def _key(settings: Settings) -> str | None:
    return settings.secret_key.get_secret_value() if settings.secret_key is not None else None


def _erase(patient: Patient, channels: Iterable[ChannelSpec], now: datetime) -> None:
    """Everything the row says of the person: names, addresses, the phone's type and every
    channel's consent (a consent left ticked is a fact about them)."""
    patient.first_name = ""
    patient.last_name = ""
    patient.phone = None
    patient.email = None
    patient.phone_type = None
    for spec in channels:
        setattr(patient, spec.consent_field, False)
    patient.forgotten_at = now
