"""What ops read: the delivery log, each delivery's events, counts per state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from notifier.domain.deliveries import REACHED_STATES, DeliveryState
from notifier.storage.models import Broadcast, Delivery, DeliveryEvent, Notice, Patient


@dataclass(frozen=True)
class LogQuery:
    """Which part of the delivery log: a notice's, in a state, on a channel, one page."""

    notice_id: int | None = None
    state: str | None = None
    channel: str | None = None
    limit: int | None = None
    offset: int = 0
    with_patients: bool = False  # load each delivery's patient (for managers)
    within: frozenset[int] | None = None  # only these locations' notices (None: every one)


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
    if wanted.within is not None:
        located = select(Notice.id).where(Notice.location_id.in_(wanted.within))
        query = query.where(Broadcast.notice_id.in_(located))
    if state is not None:
        query = query.where(Delivery.state == state)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if wanted.limit is not None:
        query = query.limit(wanted.limit).offset(wanted.offset)
    if wanted.with_patients:
        query = query.options(joinedload(Delivery.patient))
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


def waits(s: Session, notice_id: int) -> dict[str, int]:
    """Why this notice's waiting deliveries wait (held, deferred, retrying) → how many."""
    rows = s.execute(
        select(Delivery.error_message, func.count())
        .join(Delivery.broadcast)
        .where(
            Broadcast.notice_id == notice_id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.error_message.is_not(None),
        )
        .group_by(Delivery.error_message)
        .order_by(func.count().desc(), Delivery.error_message)
    )
    return {reason: count for reason, count in rows if reason}


NOT_REACHED_STATES = (
    DeliveryState.UNDELIVERED,
    DeliveryState.FAILED,
    DeliveryState.SKIPPED,
    DeliveryState.EXPIRED,
)
"""A message that did not reach its patient (withdrawn ones were replaced, not missed)."""


def not_reached(s: Session, notice_id: int) -> Sequence[Delivery]:
    """This notice's deliveries that reached nobody, with their patients, by patient."""
    return s.scalars(
        select(Delivery)
        .join(Delivery.broadcast)
        .join(Delivery.patient)
        .options(joinedload(Delivery.patient))
        .where(Broadcast.notice_id == notice_id, Delivery.state.in_(NOT_REACHED_STATES))
        .order_by(Patient.last_name, Patient.first_name, Patient.id, Delivery.channel)
    ).all()


def reached_channels(s: Session, notice_id: int, patient_ids: Sequence[int]) -> dict[int, set[str]]:
    """For each of ``patient_ids``, the channels this notice reached them on."""
    if not patient_ids:
        return {}
    rows = s.execute(
        select(Delivery.patient_id, Delivery.channel)
        .join(Delivery.broadcast)
        .where(
            Broadcast.notice_id == notice_id,
            Delivery.patient_id.in_(patient_ids),
            Delivery.state.in_(REACHED_STATES),
        )
        .distinct()
    )
    found: dict[int, set[str]] = {}
    for patient_id, channel in rows:
        found.setdefault(patient_id, set()).add(channel)
    return found


def fanned_out_since(s: Session, notice_id: int) -> datetime | None:
    """When this notice's first broadcast fanned out (its sending began), if one has."""
    return s.scalar(
        select(func.min(Broadcast.fanned_out_at)).where(Broadcast.notice_id == notice_id)
    )
