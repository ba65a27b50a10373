"""Consent: opt-outs and opt-ins (keywords, unsubscribe links, the API, a provider's own
opt-out list), the consent ledger, and patients' replies (STOP, START, HELP).

Every change is one row per affected patient in ``consent_events`` (who, when, how, channel,
old → new). Delivery reports (status callbacks) belong to ``usecases.deliveries``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.channels import ChannelSpec
from notifier.domain.consent import (
    CONSENT_GRANTED,
    CONSENT_WITHHELD,
    OPTED_IN,
    OPTED_OUT,
    Keyword,
    Source,
    match,
)
from notifier.domain.contacts import mask_address
from notifier.domain.erasure import address_digest
from notifier.errors import NotFoundError
from notifier.storage import consent as consent_rows
from notifier.storage import erasure as erasure_rows
from notifier.storage import patients as patient_rows
from notifier.storage.models import ConsentEvent, Patient
from notifier.unsubscribe import Subscriber, tokens
from notifier.usecases import UseCase, inbound
from notifier.usecases.audit import record
from notifier.usecases.lookups import require_manager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """What a patient's text did, and the answer to send back (HELP, a confirmation), if any."""

    keyword: Keyword | None
    changed: bool
    answer: str | None


class Consent(UseCase):
    # --- opt-outs and opt-ins -------------------------------------------------------------

    def opt_out(
        self,
        channel: str,
        address: str,
        source: Source,
        patient_id: int | None = None,
        *,
        actor: Actor | None = None,
    ) -> bool:
        """Record an opt-out (always allowed, whoever asks); False if the address was already
        opted out (nothing changes). The ledger names the ``actor`` who recorded it, if any."""
        spec, now = self.deps.spec(channel), self.clock.now()
        detail = f"recorded by {actor.label}" if actor is not None else None
        with self.db.session() as s:
            changed = opt_out(s, spec, address, source, now, patient_id=patient_id, detail=detail)
            if actor is not None:
                record(s, actor, "opt_out", now, f"channel:{spec.name}", int(changed))
            return changed

    def opt_in(self, actor: Actor, channel: str, address: str, source: Source) -> bool:
        """Lift an opt-out; False if there was none. Only for an address a patient of the
        actor's locations has (else NotFoundError); the ledger names the actor."""
        spec, now = self.deps.spec(channel), self.clock.now()
        require_manager(actor)
        with self.db.session() as s:
            if not actor.every_location:
                holders = patient_rows.patients_with_address(s, spec, address)
                if not any(actor.sees(p.location_id) for p in holders):
                    raise NotFoundError("no patient of your locations has this address", "address")
            changed = opt_in(s, spec, address, source, now, detail=f"lifted by {actor.label}")
            if self.settings.secret_key is not None:  # not kept suppressed by hash either
                key = self.settings.secret_key.get_secret_value()
                erasure_rows.forget_hash(s, spec.name, address_digest(key, spec.name, address))
            record(s, actor, "opt_in", now, f"channel:{spec.name}", int(changed))
            return changed

    def is_opted_out(self, channel: str, address: str) -> bool:
        with self.db.session() as s:
            return consent_rows.opt_out_exists(s, channel, address)

    # --- unsubscribe links ----------------------------------------------------------------

    def subscriber(self, token: str) -> Subscriber | None:
        """The patient and address a genuine unsubscribe link names; None for anything else."""
        signer = tokens(self.settings)
        claim = signer.read(token) if signer is not None else None
        if signer is None or claim is None or claim.channel not in self.deps.channels:
            return None
        with self.db.session() as s:
            known = consent_rows.addresses_of(s, self.deps.spec(claim.channel), claim.patient_id)
        return signer.subscriber(claim, known)

    def unsubscribe(self, token: str) -> Subscriber | None:
        """Opt out the address a genuine link names (RFC 8058 one-click); None if not genuine."""
        subscriber = self.subscriber(token)
        if subscriber is not None and subscriber.channel in self.deps.channels:
            self.opt_out(
                subscriber.channel,
                subscriber.address,
                Source.UNSUBSCRIBE_LINK,
                subscriber.patient_id,
            )
        return subscriber

    # --- patients' replies ----------------------------------------------------------------

    def reply(self, channel: str, from_: str, body: str, message_id: str) -> Reply:
        """STOP… opts the number out of the channel, START… back in, HELP/INFO is answered, in
        the keyword's language (or the patient's); the rest is ignored and not stored. Once per
        message id: a replayed message changes nothing and is not answered."""
        spec, now = self.deps.spec(channel), self.clock.now()
        text = inbound.received(message_id, from_, body, self.settings.default_region)
        if text is None:
            return Reply(None, False, None)
        found = match(text.body)
        if found is None:
            log.info(
                "inbound message without a keyword",
                extra={"action": "inbound_other", "from": mask_address(text.sender)},
            )
            return Reply(None, False, None)
        keyword = found.keyword
        changed, answer, outcome = False, None, "replay"
        with self.db.session() as s:
            if consent_rows.first_receipt(s, text.row(spec.name, keyword.value, now)):
                outcome, detail = "received", text.body[: inbound.DETAIL_CHARS]
                if keyword is Keyword.STOP:
                    changed = opt_out(s, spec, text.sender, Source.KEYWORD, now, detail=detail)
                elif keyword is Keyword.START:
                    changed = opt_in(s, spec, text.sender, Source.KEYWORD, now, detail=detail)
                if keyword is Keyword.HELP or not found.standard:  # else Twilio answers itself
                    answer = inbound.reply_to(s, spec, self.settings, text.sender, found)
        log.info(
            "inbound message %s",
            outcome,
            extra={
                "action": f"inbound_{outcome}",
                "from": mask_address(text.sender),
                "keyword": keyword.value,
                "changed": changed,
            },
        )
        return Reply(keyword, changed, answer)


# --- inside another use case's transaction ---------------------------------------------------


def opt_out(
    s: Session,
    spec: ChannelSpec,
    address: str,
    source: Source,
    now: datetime,
    *,
    patient_id: int | None = None,
    detail: str | None = None,
) -> bool:
    """Record an opt-out in the caller's transaction; deliveries still waiting for the address
    are skipped at once. False if it was opted out already."""
    if not consent_rows.add_opt_out(s, spec.name, address, source.value, now):
        return False
    _ledger(s, spec, address, source, now, OPTED_IN, OPTED_OUT, patient_id, detail)
    skipped = consent_rows.skip_pending_to(s, spec.name, address, now, "opted out")
    log.info(
        "opted out",
        extra={
            "action": "opt_out",
            "channel": spec.name,
            "to": mask_address(address),
            "source": source.value,
            "pending_skipped": skipped,
        },
    )
    return True


def opt_in(
    s: Session,
    spec: ChannelSpec,
    address: str,
    source: Source,
    now: datetime,
    *,
    detail: str | None = None,
) -> bool:
    """Lift an opt-out in the caller's transaction; False if there was none."""
    if not consent_rows.remove_opt_out(s, spec.name, address):
        return False
    _ledger(s, spec, address, source, now, OPTED_OUT, OPTED_IN, None, detail)
    log.info(
        "opted in",
        extra={
            "action": "opt_in",
            "channel": spec.name,
            "to": mask_address(address),
            "source": source.value,
        },
    )
    return True


def on_send_outcome(
    s: Session, spec: ChannelSpec, address: str, code: str | None, now: datetime
) -> None:
    """A provider refused a send because the address unsubscribed with it (Twilio 21610):
    record that as our opt-out too."""
    if code is not None and code in spec.opt_out_codes:
        opt_out(
            s,
            spec,
            address,
            Source.PROVIDER_OPT_OUT,
            now,
            detail=f"the provider refused a send: the address is unsubscribed ({code})",
        )


def record_imported_consent(
    s: Session,
    channels: dict[str, ChannelSpec],
    patient: Patient,
    before: dict[str, bool] | None,
    now: datetime,
) -> None:
    """Ledger entries for the consent an import grants or withdraws (a new patient's consent
    counts as granted). Called after the row is applied; ``before`` holds the old consent
    columns, or is None for a new patient."""
    for spec in channels.values():
        new = bool(getattr(patient, spec.consent_field))
        old = bool(before[spec.consent_field]) if before is not None else False
        address = getattr(patient, spec.address.value)
        if old == new or address is None or (before is None and not new):
            continue
        _ledger(
            s,
            spec,
            str(address),
            Source.IMPORT,
            now,
            CONSENT_GRANTED if old else CONSENT_WITHHELD,
            CONSENT_GRANTED if new else CONSENT_WITHHELD,
            patient.id,
            "patient CSV import",
        )


def _ledger(
    s: Session,
    spec: ChannelSpec,
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
        who = [p.id for p in patient_rows.patients_with_address(s, spec, address)] or [None]
    for pid in who:
        consent_rows.add_consent_event(
            s,
            ConsentEvent(
                at=now,
                channel=spec.name,
                address=address,
                patient_id=pid,
                source=source.value,
                old=old,
                new=new,
                detail=detail,
            ),
        )
