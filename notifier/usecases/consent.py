"""Consent and what providers tell us: opt-outs and opt-ins (keywords, unsubscribe links, the
API, a provider's own opt-out list), the consent ledger, patients' replies (STOP, START, HELP),
and delivery reports (status callbacks).

Every change is one row per affected patient in ``consent_events`` (who, when, how, channel,
old → new). Delivery reports never move a delivery backwards: ``sending``/``sent`` <
``delivered`` | ``undelivered`` | ``failed``; a repeated report changes nothing; a late one
(``sent`` after ``delivered``) changes nothing but is kept as an event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

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
from notifier.domain.contacts import mask_address, mask_text
from notifier.domain.deliveries import DeliveryState, earlier_than
from notifier.domain.untrusted import FREE_TEXT_LIMIT, printable
from notifier.storage import consent as consent_rows
from notifier.storage import patients as patient_rows
from notifier.storage import queue
from notifier.storage.limits import string_lengths
from notifier.storage.models import ConsentEvent, Delivery, DeliveryEvent, Patient
from notifier.unsubscribe import Subscriber, tokens
from notifier.usecases import UseCase, inbound

log = logging.getLogger(__name__)
# A report's fields are cut to the columns they are stored in (PostgreSQL refuses longer).
_SID_CHARS = string_lengths(Delivery)["provider_id"]
_CODE_CHARS = min(string_lengths(Delivery)["error_code"], string_lengths(DeliveryEvent)["code"])


@dataclass(frozen=True)
class ReportResult:
    outcome: str  # applied, duplicate, ignored, unknown_sid, no_op
    state: str | None = None


@dataclass(frozen=True)
class Reply:
    """What a patient's text did, and the answer to send back (HELP, a confirmation), if any."""

    keyword: Keyword | None
    changed: bool
    answer: str | None


class Consent(UseCase):
    # --- opt-outs and opt-ins -------------------------------------------------------------

    def opt_out(
        self, channel: str, address: str, source: Source, patient_id: int | None = None
    ) -> bool:
        """Record an opt-out; False if the address was already opted out (nothing changes)."""
        spec, now = self.deps.spec(channel), self.clock.now()
        with self.db.session() as s:
            return opt_out(s, spec, address, source, now, patient_id=patient_id)

    def opt_in(self, channel: str, address: str, source: Source) -> bool:
        """Lift an opt-out; False if there was none."""
        with self.db.session() as s:
            return opt_in(s, self.deps.spec(channel), address, source, self.clock.now())

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

    # --- delivery reports -----------------------------------------------------------------

    def report(
        self,
        channel: str,
        provider_id: str,
        status: str,
        error_code: str | None = None,
        error_message: str | None = None,
        wait_for_unknown: float = 0.0,
    ) -> ReportResult:
        """Apply one delivery report (a status callback) to the delivery with that provider id."""
        provider_id, status = printable(provider_id), printable(status)
        error_code = printable(error_code) if error_code else None
        error_message = printable(error_message, FREE_TEXT_LIMIT) if error_message else None
        if not provider_id or len(provider_id) > _SID_CHARS:
            return ReportResult("unknown_sid")  # no id of ours is longer than the column
        new = self.deps.spec(channel).reports.get(status.lower())
        if new is None:
            return ReportResult("no_op")
        delivery_id = self._find(provider_id, wait_for_unknown)
        if delivery_id is None:
            log.info(
                "status callback for an unknown message",
                extra={"action": "status_unknown_sid", "provider_id": provider_id},
            )
            return ReportResult("unknown_sid")
        now = self.clock.now()
        # The provider's words may quote the patient's number or address: masked before stored.
        code = mask_text(error_code)[:_CODE_CHARS] if error_code else None
        with self.db.session() as s:
            detail = (
                mask_text(error_message)
                if error_message
                else (f"the provider reported {status}" + (f" (error {code})" if code else ""))
            )
            if queue.advance_state(s, delivery_id, earlier_than(new), new, now, code, detail):
                event, outcome = f"status_{new.value}", ReportResult("applied", new.value)
            else:
                current = queue.delivery_state(s, delivery_id) or ""
                if current == new.value:
                    return ReportResult("duplicate", current)
                new = DeliveryState(current)
                event, outcome = "status_ignored", ReportResult("ignored", current)
                detail = f"late or conflicting status {status!r} ignored: already {current}"
            queue.add_events(s, [delivery_id], now, event, new, code=code, detail=detail)
        log.info(
            "status callback %s",
            outcome.outcome,
            extra={"action": f"status_{outcome.outcome}", "delivery_id": delivery_id, "code": code},
        )
        return outcome

    def _find(self, provider_id: str, wait: float) -> int | None:
        """The report can overtake our own commit of the send: look again briefly."""
        deadline = time.monotonic() + wait
        while True:
            with self.db.session() as s:
                found = queue.delivery_id_by_provider_id(s, provider_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)


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
