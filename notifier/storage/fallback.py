"""Fallback rows: the failed deliveries of broadcasts with a fallback order, and the delivery
queued on the next channel (``fallback_of`` names the one it stands in for)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, insert, select
from sqlalchemy.orm import Session, joinedload

from notifier.domain.deliveries import DeliveryState
from notifier.storage.models import Broadcast, Delivery, DeliveryEvent, OptOut


def failed_with_fallback(s: Session, ids: Sequence[int]) -> Sequence[Delivery]:
    """Those of ``ids`` whose broadcast has a fallback order and that nothing stands in for yet."""
    later = Delivery.__table__.alias("later")
    return (
        s.scalars(
            select(Delivery)
            .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
            .where(
                Delivery.id.in_(ids),
                Broadcast.fallback.is_not(None),
                ~exists().where(later.c.fallback_of == Delivery.id),
            )
            .options(joinedload(Delivery.broadcast), joinedload(Delivery.patient))
            .order_by(Delivery.id)
        )
        .unique()
        .all()
    )


def taken(s: Session, broadcast_id: int, channel: str, address: str) -> bool:
    """Whether the broadcast already has a delivery on ``channel`` to ``address`` (then the
    patient is told there, or was: never twice)."""
    return (
        s.scalar(
            select(Delivery.id).where(
                Delivery.broadcast_id == broadcast_id,
                Delivery.channel == channel,
                Delivery.address == address,
            )
        )
        is not None
    )


def opted_out(s: Session, channel: str, address: str) -> bool:
    found = select(OptOut.id).where(OptOut.channel == channel, OptOut.address == address)
    return s.scalar(found) is not None


def queue(
    s: Session, failed: Delivery, channel: str, address: str, now: datetime, detail: str
) -> int:
    """The stand-in delivery, pending now, and an event on both."""
    new_id = int(
        s.execute(
            insert(Delivery)
            .values(
                broadcast_id=failed.broadcast_id,
                channel=channel,
                address=address,
                patient_id=failed.patient_id,
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                needs_reconcile=False,
                message_kind=failed.message_kind,
                fallback_of=failed.id,
                created_at=now,
                updated_at=now,
            )
            .returning(Delivery.id)
        ).scalar_one()
    )
    s.execute(
        insert(DeliveryEvent),
        [
            {
                "delivery_id": new_id,
                "at": now,
                "kind": "queued",
                "state": DeliveryState.PENDING.value,
                "attempt": 0,
                "code": None,
                "detail": f"fallback for delivery {failed.id} ({failed.channel}): {detail}",
            },
            {
                "delivery_id": failed.id,
                "at": now,
                "kind": "fallback",
                "state": failed.state,
                "attempt": failed.attempts,
                "code": failed.error_code,
                "detail": f"{detail}: delivery {new_id} on {channel}",
            },
        ],
    )
    return new_id
