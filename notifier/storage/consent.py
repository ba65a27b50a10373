"""Opt-outs, the append-only consent ledger, patients' texts seen, and the addresses an
unsubscribe link may name."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from notifier.domain.channels import ChannelSpec
from notifier.domain.deliveries import DeliveryState
from notifier.storage.deliveries import set_states
from notifier.storage.models import ConsentEvent, Delivery, InboundMessage, OptOut, Patient
from notifier.storage.rows import changed, insert_new


def opt_out_exists(s: Session, channel: str, address: str) -> bool:
    query = select(OptOut.id).where(OptOut.channel == channel, OptOut.address == address)
    return s.scalar(query) is not None


def add_opt_out(s: Session, channel: str, address: str, source: str, now: datetime) -> bool:
    """Record an opt-out; False if the address is opted out already (or just now, concurrently)."""
    return insert_new(s, OptOut, channel=channel, address=address, source=source, created_at=now)


def remove_opt_out(s: Session, channel: str, address: str) -> bool:
    return (
        changed(s, delete(OptOut).where(OptOut.channel == channel, OptOut.address == address)) > 0
    )


def opted_out(s: Session, addresses: Sequence[str]) -> set[tuple[str, str]]:
    """(channel, address) pairs among ``addresses`` that asked not to be contacted."""
    rows = s.execute(select(OptOut.channel, OptOut.address).where(OptOut.address.in_(addresses)))
    return {(channel, address) for channel, address in rows}


def add_consent_event(s: Session, event: ConsentEvent) -> None:
    s.add(event)


def consent_events(s: Session, channel: str, address: str) -> Sequence[ConsentEvent]:
    return s.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.channel == channel, ConsentEvent.address == address)
        .order_by(ConsentEvent.id)
    ).all()


def skip_pending_to(s: Session, channel: str, address: str, now: datetime, reason: str) -> int:
    """An address opted out: deliveries still waiting for it are skipped, not sent."""
    ids = list(
        s.scalars(
            select(Delivery.id).where(
                Delivery.channel == channel,
                Delivery.address == address,
                Delivery.state == DeliveryState.PENDING,
            )
        )
    )
    pending, skipped = DeliveryState.PENDING, DeliveryState.SKIPPED
    return len(set_states(s, ids, pending, skipped, now, "skipped", reason)) if ids else 0


def first_receipt(s: Session, message: InboundMessage) -> bool:
    """Record a patient's text by its provider id; False if that id was seen before (a replay,
    or the same webhook delivered twice at once: the unique key decides)."""
    return insert_new(
        s,
        InboundMessage,
        channel=message.channel,
        provider_id=message.provider_id,
        keyword=message.keyword,
        received_at=message.received_at,
    )


def addresses_of(s: Session, spec: ChannelSpec, patient_id: int) -> list[str]:
    """The addresses a patient has on a channel now or was sent to before."""
    patient = s.get(Patient, patient_id)
    current = getattr(patient, spec.address.value, None) if patient is not None else None
    sent = s.scalars(
        select(Delivery.address)
        .where(Delivery.patient_id == patient_id, Delivery.channel == spec.name)
        .distinct()
    )
    return list(dict.fromkeys([a for a in [current, *sent] if isinstance(a, str)]))
