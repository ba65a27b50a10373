"""Opt-outs and the append-only consent ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from notifier.domain.deliveries import DeliveryState
from notifier.storage.models import ConsentEvent, Delivery, OptOut
from notifier.storage.queue import set_states
from notifier.storage.rows import changed


def opt_out_exists(s: Session, channel: str, address: str) -> bool:
    query = select(OptOut.id).where(OptOut.channel == channel, OptOut.address == address)
    return s.scalar(query) is not None


def add_opt_out(s: Session, channel: str, address: str, source: str, now: datetime) -> None:
    s.add(OptOut(channel=channel, address=address, source=source, created_at=now))
    s.flush()


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
    if ids:
        set_states(s, ids, DeliveryState.SKIPPED, now, "skipped", reason)
    return len(ids)
