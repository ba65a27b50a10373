"""Erasing patients' contact data: old deliveries' addresses, bodies and provider texts
(retention), and one patient's data on request (forget), keeping states, counts and times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, cast, delete, func, literal, select, update
from sqlalchemy.orm import Session

from notifier.domain.deliveries import OPEN_STATES
from notifier.domain.erasure import DIGEST, ERASED
from notifier.storage.models import (
    ConsentEvent,
    Delivery,
    DeliveryEvent,
    OptOut,
    SpokenMessage,
    SuppressedHash,
)
from notifier.storage.rows import changed, insert_new


def _erase_deliveries(s: Session, where: Sequence[ColumnElement[bool]]) -> int:
    """Addresses → ``erased:<id>``, provider error texts → NULL, for the deliveries ``where``
    picks (open ones never: they still have to be sent), their events' details, and the words
    a call spoke (they greet the patient by name)."""
    picked = select(Delivery.id).where(
        *where,
        Delivery.state.not_in(OPEN_STATES),
        Delivery.address.not_like(f"{ERASED}%"),
    )
    ids = list(s.scalars(picked))
    if not ids:
        return 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(chunk))
            .values(
                address=literal(ERASED) + cast(Delivery.id, String),
                error_message=None,
            )
            .execution_options(synchronize_session=False)
        )
        s.execute(
            update(DeliveryEvent)
            .where(DeliveryEvent.delivery_id.in_(chunk))
            .values(detail=None)
            .execution_options(synchronize_session=False)
        )
        s.execute(
            delete(SpokenMessage)
            .where(SpokenMessage.delivery_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def erase_deliveries_before(s: Session, cutoff: datetime) -> int:
    """Retention: deliveries created before ``cutoff`` (and done) lose their address and
    error text; how many."""
    return _erase_deliveries(s, [Delivery.created_at < cutoff])


def erase_deliveries_of(s: Session, patient_id: int) -> int:
    return _erase_deliveries(s, [Delivery.patient_id == patient_id])


def delivery_addresses_of(s: Session, patient_id: int) -> list[tuple[str, str]]:
    """(channel, address) pairs a patient was ever sent to (not yet erased)."""
    rows = s.execute(
        select(Delivery.channel, Delivery.address)
        .where(Delivery.patient_id == patient_id, Delivery.address.not_like(f"{ERASED}%"))
        .distinct()
    )
    return [(channel, address) for channel, address in rows]


def ledger_before(s: Session, cutoff: datetime) -> int:
    """How many consent-ledger entries older than ``cutoff`` still hold their address."""
    return int(
        s.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.at < cutoff, ConsentEvent.address.not_like(f"{DIGEST}%"))
        )
        or 0
    )


def digest_ledger_before(s: Session, cutoff: datetime, digest: Callable[[str, str], str]) -> int:
    """Retention: consent ledger entries older than ``cutoff`` keep a keyed hash of their
    address instead of the address; how many."""
    rows = s.execute(
        select(ConsentEvent.id, ConsentEvent.channel, ConsentEvent.address).where(
            ConsentEvent.at < cutoff, ConsentEvent.address.not_like(f"{DIGEST}%")
        )
    ).all()
    for event_id, channel, address in rows:
        s.execute(
            update(ConsentEvent)
            .where(ConsentEvent.id == event_id)
            .values(address=DIGEST + digest(channel, address))
            .execution_options(synchronize_session=False)
        )
    return len(rows)


def digest_ledger_of(s: Session, channel: str, address: str, hashed: str) -> int:
    """The ledger entries of one address keep only its keyed hash."""
    return changed(
        s,
        update(ConsentEvent)
        .where(ConsentEvent.channel == channel, ConsentEvent.address == address)
        .values(address=DIGEST + hashed)
        .execution_options(synchronize_session=False),
    )


def suppress_by_hash(s: Session, channel: str, address: str, hashed: str, now: datetime) -> bool:
    """Move an address's opt-out (if any) to a keyed hash; True if it had one."""
    source = s.scalar(
        select(OptOut.source).where(OptOut.channel == channel, OptOut.address == address)
    )
    if source is None:
        return False
    insert_new(s, SuppressedHash, channel=channel, digest=hashed, source=source, created_at=now)
    s.execute(delete(OptOut).where(OptOut.channel == channel, OptOut.address == address))
    return True


def suppressed(s: Session, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (channel, digest) pairs are suppressed by hash."""
    digests = sorted({digest for _, digest in pairs})
    if not digests:
        return set()
    rows = s.execute(
        select(SuppressedHash.channel, SuppressedHash.digest).where(
            SuppressedHash.digest.in_(digests)
        )
    )
    return {(channel, digest) for channel, digest in rows}


def forget_hash(s: Session, channel: str, hashed: str) -> None:
    """An address opted in again: it is no longer suppressed by hash either."""
    s.execute(
        delete(SuppressedHash).where(
            SuppressedHash.channel == channel, SuppressedHash.digest == hashed
        )
    )
