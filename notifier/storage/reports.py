"""What ops read: the delivery log, each delivery's events, counts per state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from notifier.storage.models import Broadcast, Delivery, DeliveryEvent


@dataclass(frozen=True)
class LogQuery:
    """Which part of the delivery log: a notice's, in a state, on a channel, one page."""

    notice_id: int | None = None
    state: str | None = None
    channel: str | None = None
    limit: int | None = None
    offset: int = 0


def delivery_log(s: Session, wanted: LogQuery) -> Sequence[Delivery]:
    notice_id, state, channel = wanted.notice_id, wanted.state, wanted.channel
    query = (
        select(Delivery)
        .join(Delivery.broadcast)
        .options(joinedload(Delivery.broadcast).joinedload(Broadcast.notice))
        .order_by(Delivery.id)
    )
    if notice_id is not None:
        query = query.where(Broadcast.notice_id == notice_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if wanted.limit is not None:
        query = query.limit(wanted.limit).offset(wanted.offset)
    return s.scalars(query).all()


def delivery(s: Session, delivery_id: int) -> Delivery | None:
    return s.get(
        Delivery, delivery_id, options=[joinedload(Delivery.broadcast).joinedload(Broadcast.notice)]
    )


def events_for(s: Session, delivery_ids: Sequence[int]) -> Sequence[DeliveryEvent]:
    return s.scalars(
        select(DeliveryEvent)
        .where(DeliveryEvent.delivery_id.in_(delivery_ids))
        .order_by(DeliveryEvent.delivery_id, DeliveryEvent.id)
    ).all()


def state_counts(s: Session, notice_ids: Sequence[int]) -> dict[tuple[str, str], int]:
    """(channel, state) → deliveries, over the broadcasts of ``notice_ids``."""
    rows = s.execute(
        select(Delivery.channel, Delivery.state, func.count())
        .join(Delivery.broadcast)
        .where(Broadcast.notice_id.in_(notice_ids))
        .group_by(Delivery.channel, Delivery.state)
    )
    return {(channel, state): count for channel, state, count in rows}
