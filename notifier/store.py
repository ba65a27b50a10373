"""Named queries. All SQL lives here; callers pass a session (one transaction).

Set-based where volume lives: fan-out is one ``INSERT … SELECT``, claims are one conditional
``UPDATE … RETURNING`` (with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    String,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload

from notifier.domain import BroadcastStatus, DeliveryState, NoticeStatus
from notifier.models import (
    Broadcast,
    Delivery,
    DeliveryEvent,
    Location,
    Notice,
    Patient,
    UTCDateTime,
)

OPEN_STATES = (DeliveryState.PENDING.value, DeliveryState.SENDING.value)


# --- locations and patients ---------------------------------------------------------------


def location_by_slug(s: Session, slug: str) -> Location | None:
    return s.scalar(select(Location).where(Location.slug == slug))


def locations(s: Session) -> Sequence[Location]:
    return s.scalars(select(Location).order_by(Location.slug)).all()


def patients_by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, Patient]:
    rows = s.scalars(select(Patient).where(Patient.external_id.in_(external_ids)))
    return {patient.external_id: patient for patient in rows}


def languages_at(s: Session, location_id: int) -> list[str]:
    rows = s.scalars(select(Patient.language).where(Patient.location_id == location_id).distinct())
    return sorted(set(rows))


# --- notices and broadcasts ---------------------------------------------------------------


def notice(s: Session, notice_id: int) -> Notice | None:
    return s.get(Notice, notice_id, options=[joinedload(Notice.location)])


def notices(s: Session, location_id: int | None = None) -> Sequence[Notice]:
    query = select(Notice).options(joinedload(Notice.location)).order_by(Notice.starts_at)
    if location_id is not None:
        query = query.where(Notice.location_id == location_id)
    return s.scalars(query).all()


def broadcast(s: Session, broadcast_id: int) -> Broadcast | None:
    return s.get(Broadcast, broadcast_id, options=[joinedload(Broadcast.notice)])


def due_broadcast_ids(s: Session, now: datetime, limit: int = 100) -> list[int]:
    query = (
        select(Broadcast.id)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.send_at <= now)
        .order_by(Broadcast.send_at, Broadcast.id)
        .limit(limit)
    )
    return list(s.scalars(query))


def transition_broadcast(
    s: Session,
    broadcast_id: int,
    from_status: BroadcastStatus,
    to_status: BroadcastStatus,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Conditional update: True for exactly one caller, however many race for it."""
    values: dict[str, object] = {"status": to_status.value, "status_reason": reason}
    if to_status is BroadcastStatus.SENDING:
        values["fanned_out_at"] = now
    else:
        values["finished_at"] = now
    result = s.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == from_status.value)
        .values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def fan_out(
    s: Session, broadcast: Broadcast, channel: str, now: datetime, disabled_reason: str | None
) -> int:
    """Create one delivery per distinct address of the location's patients for ``channel``.

    Patients sharing an address get one message (to the first who consented). Addresses whose
    patients never consented are recorded as skipped, so the log shows why nothing went out.
    """
    address, consent, label = _channel_columns(channel)
    consenting = func.max(case((consent, 1), else_=0))
    patient = func.coalesce(func.min(case((consent, Patient.id))), func.min(Patient.id))
    if disabled_reason:
        state: ColumnElement[str] = literal(DeliveryState.SKIPPED.value, String)
        reason: ColumnElement[str | None] = literal(disabled_reason, String)
    else:
        state = case(
            (consenting == 1, DeliveryState.PENDING.value), else_=DeliveryState.SKIPPED.value
        )
        reason = case((consenting == 1, None), else_=f"no {label} consent")
    at = literal(now, UTCDateTime())
    rows = (
        select(
            literal(broadcast.id, Integer),
            literal(channel, String),
            address,
            patient,
            state,
            literal(0, Integer),
            at,
            literal(False, Boolean),
            reason,
            at,
            at,
        )
        .where(Patient.location_id == broadcast.notice.location_id, address.is_not(None))
        .group_by(address)
    )
    columns = [
        "broadcast_id",
        "channel",
        "address",
        "patient_id",
        "state",
        "attempts",
        "next_attempt_at",
        "needs_reconcile",
        "error_message",
        "created_at",
        "updated_at",
    ]
    inserted = s.execute(insert(Delivery).from_select(columns, rows)).rowcount  # type: ignore[attr-defined]
    s.execute(
        insert(DeliveryEvent).from_select(
            ["delivery_id", "at", "kind", "state", "attempt", "detail"],
            select(
                Delivery.id,
                at,
                literal("queued", String),
                Delivery.state,
                literal(0, Integer),
                Delivery.error_message,
            ).where(Delivery.broadcast_id == broadcast.id, Delivery.channel == channel),
        )
    )
    return int(inserted)


def _channel_columns(channel: str) -> tuple[ColumnElement[str], ColumnElement[bool], str]:
    if channel == "sms":
        return Patient.phone, Patient.sms_consent, "SMS"
    if channel == "email":
        return Patient.email, Patient.email_consent, "email"
    raise ValueError(f"no patient address column for channel {channel!r}")


def finish_broadcasts(s: Session, now: datetime) -> int:
    """Mark sending broadcasts whose deliveries are all final as done."""
    still_open = exists().where(
        Delivery.broadcast_id == Broadcast.id, Delivery.state.in_(OPEN_STATES)
    )
    result = s.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SENDING, ~still_open)
        .values(status=BroadcastStatus.DONE.value, finished_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_notice(s: Session, notice_id: int, now: datetime) -> tuple[int, int]:
    """Cancel a notice, its waiting broadcasts and unsent deliveries: (broadcasts, deliveries)."""
    s.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(status=NoticeStatus.CANCELLED.value, updated_at=now)
    )
    broadcasts = s.execute(
        update(Broadcast)
        .where(Broadcast.notice_id == notice_id, Broadcast.status == BroadcastStatus.SCHEDULED)
        .values(
            status=BroadcastStatus.CANCELLED.value,
            status_reason="notice cancelled",
            finished_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    waiting = select(Delivery.id).where(
        Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.notice_id == notice_id)),
        Delivery.state == DeliveryState.PENDING,
    )
    ids = list(s.scalars(waiting))
    if ids:
        set_states(s, ids, DeliveryState.CANCELLED, now, "cancelled", "notice cancelled")
    return int(broadcasts), len(ids)


# --- deliveries ---------------------------------------------------------------------------


def claim(
    s: Session,
    worker: str,
    channels: Iterable[str],
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[int]:
    """Atomically take up to ``limit`` due deliveries for this worker."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.state == DeliveryState.PENDING,
            Delivery.next_attempt_at <= now,
            Delivery.channel.in_(list(channels)),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = s.scalars(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()), Delivery.state == DeliveryState.PENDING)
        .values(
            state=DeliveryState.SENDING.value,
            lease_until=lease_until,
            claimed_by=worker,
            updated_at=now,
        )
        .returning(Delivery.id)
    )
    return sorted(claimed)


def deliveries_with_context(s: Session, ids: Sequence[int]) -> Sequence[Delivery]:
    """Deliveries with everything needed to render and send them, in one round trip."""
    return (
        s.scalars(
            select(Delivery)
            .where(Delivery.id.in_(ids))
            .options(
                joinedload(Delivery.patient),
                joinedload(Delivery.broadcast)
                .joinedload(Broadcast.notice)
                .joinedload(Notice.location),
            )
            .order_by(Delivery.id)
        )
        .unique()
        .all()
    )


def expired_leases(s: Session, now: datetime, limit: int = 500) -> list[int]:
    query = (
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.SENDING, Delivery.lease_until < now)
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(s.scalars(query))


def recover_lease(s: Session, delivery_id: int, now: datetime) -> bool:
    """A worker died mid-send: count the interrupted attempt and check before resending."""
    result = s.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state == DeliveryState.SENDING,
            Delivery.lease_until < now,
        )
        .values(
            state=DeliveryState.PENDING.value,
            attempts=Delivery.attempts + 1,
            needs_reconcile=True,
            lease_until=None,
            claimed_by=None,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    add_event(
        s,
        delivery_id,
        now,
        "lease_expired",
        DeliveryState.PENDING,
        detail="worker stopped mid-send; the provider will be checked before any resend",
    )
    return True


def release(s: Session, ids: Sequence[int], worker: str, now: datetime) -> int:
    """Give claimed-but-unsent deliveries back (graceful shutdown)."""
    result = s.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.state == DeliveryState.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(
            state=DeliveryState.PENDING.value,
            lease_until=None,
            claimed_by=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery, as the dispatcher decided it."""

    state: DeliveryState
    event: str
    attempts: int
    provider_id: str | None = None
    segments: int | None = None
    code: str | None = None
    detail: str | None = None
    next_attempt_at: datetime | None = None
    needs_reconcile: bool = False


def record(s: Session, delivery_id: int, worker: str, outcome: Outcome, now: datetime) -> bool:
    """Store an attempt's outcome, only if this worker still holds the delivery."""
    values: dict[str, object] = {
        "state": outcome.state.value,
        "attempts": outcome.attempts,
        "lease_until": None,
        "claimed_by": None,
        "needs_reconcile": outcome.needs_reconcile,
        "error_code": outcome.code,
        "error_message": outcome.detail,
        "updated_at": now,
    }
    if outcome.provider_id is not None:
        values["provider_id"] = outcome.provider_id
        values["sent_at"] = now
    if outcome.segments is not None:
        values["segments"] = outcome.segments
    if outcome.next_attempt_at is not None:
        values["next_attempt_at"] = outcome.next_attempt_at
    result = s.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state == DeliveryState.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    add_event(
        s,
        delivery_id,
        now,
        outcome.event,
        outcome.state,
        attempt=outcome.attempts,
        code=outcome.code,
        detail=outcome.detail or outcome.provider_id,
    )
    return True


def set_states(
    s: Session,
    ids: Sequence[int],
    state: DeliveryState,
    now: datetime,
    event: str,
    detail: str,
) -> None:
    """Move deliveries to a final state without a provider call (cancelled, expired...)."""
    s.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(
            state=state.value,
            error_message=detail,
            lease_until=None,
            claimed_by=None,
            updated_at=now,
        )
    )
    s.execute(
        insert(DeliveryEvent),
        [
            {"delivery_id": i, "at": now, "kind": event, "state": state.value, "detail": detail}
            for i in ids
        ],
    )


def add_event(
    s: Session,
    delivery_id: int,
    now: datetime,
    kind: str,
    state: DeliveryState,
    *,
    attempt: int = 0,
    code: str | None = None,
    detail: str | None = None,
) -> None:
    s.add(
        DeliveryEvent(
            delivery_id=delivery_id,
            at=now,
            kind=kind,
            state=state.value,
            attempt=attempt,
            code=code,
            detail=detail,
        )
    )


def delivery_log(
    s: Session, notice_id: int | None = None, state: str | None = None
) -> Sequence[Delivery]:
    query = (
        select(Delivery)
        .join(Delivery.broadcast)
        .options(joinedload(Delivery.broadcast))
        .order_by(Delivery.id)
    )
    if notice_id is not None:
        query = query.where(Broadcast.notice_id == notice_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    return s.scalars(query).all()


def events_for(s: Session, delivery_ids: Sequence[int]) -> Sequence[DeliveryEvent]:
    return s.scalars(
        select(DeliveryEvent)
        .where(DeliveryEvent.delivery_id.in_(delivery_ids))
        .order_by(DeliveryEvent.delivery_id, DeliveryEvent.id)
    ).all()


def state_counts(s: Session, notice_id: int) -> dict[tuple[str, str], int]:
    rows = s.execute(
        select(Delivery.channel, Delivery.state, func.count())
        .join(Delivery.broadcast)
        .where(Broadcast.notice_id == notice_id)
        .group_by(Delivery.channel, Delivery.state)
    )
    return {(channel, state): count for channel, state, count in rows}


def has_open_deliveries(s: Session) -> bool:
    return bool(s.scalar(select(exists().where(Delivery.state.in_(OPEN_STATES)))))


def scheduled_broadcasts_exist(s: Session) -> bool:
    return bool(s.scalar(select(exists().where(Broadcast.status == BroadcastStatus.SCHEDULED))))
