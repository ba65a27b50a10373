"""Notices, their versions and their broadcasts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, object_session

from notifier.domain.closures import (
    BusinessHours,
    Closure,
    Interval,
    intervals_from_json,
    intervals_to_json,
    zone,
)
from notifier.domain.deliveries import REACHED_STATES, DeliveryState
from notifier.domain.notices import (
    ACTIVE_APPOINTMENT_STATUSES,
    WAITING,
    WITHDRAWN,
    Audience,
    BroadcastStatus,
    Clinic,
    Heard,
    NoticeChange,
    NoticeFacts,
    NoticeKind,
    NoticeStatus,
    ReasonCode,
    what_changed,
)
from notifier.storage.deliveries import set_states
from notifier.storage.models import Appointment, Broadcast, Delivery, Location, Notice
from notifier.storage.rows import changed


def notice(s: Session, notice_id: int) -> Notice | None:
    return s.get(Notice, notice_id, options=[joinedload(Notice.location)])


def notices(
    s: Session, location_id: int | None = None, within: frozenset[int] | None = None
) -> Sequence[Notice]:
    """Notices (of a location), of the locations ``within`` (None: every location)."""
    query = select(Notice).options(joinedload(Notice.location)).order_by(Notice.starts_at)
    if location_id is not None:
        query = query.where(Notice.location_id == location_id)
    if within is not None:
        query = query.where(Notice.location_id.in_(within))
    return s.scalars(query).all()


def successors(s: Session, notice_ids: Sequence[int]) -> dict[int, str]:
    """For each of ``notice_ids`` a later version replaced, that version's change."""
    if not notice_ids:
        return {}
    rows = s.execute(
        select(Notice.supersedes_id, Notice.change).where(Notice.supersedes_id.in_(notice_ids))
    )
    return {earlier: change for earlier, change in rows if earlier is not None}


def closure_of(notice: Notice) -> Closure:
    """The closure as stored with the notice: its intervals, zone and business hours then."""
    return Closure(
        intervals_from_json(notice.intervals),
        zone(notice.timezone),
        BusinessHours.from_json(notice.business_hours),
    )


def facts(notice: Notice) -> NoticeFacts:
    """What a stored notice says, for its words and timing (nothing is re-checked), and what
    it changed from the version it replaced."""
    said = _facts(notice)
    session = object_session(notice)
    if notice.supersedes_id is None or session is None:
        return said
    before = session.get(Notice, notice.supersedes_id)
    return replace(said, changed=what_changed(_facts(before), said)) if before else said


def _facts(notice: Notice) -> NoticeFacts:
    location = notice.location
    return NoticeFacts(
        id=notice.id,
        closure=closure_of(notice),
        reason=notice.reason,
        message=notice.message,
        change=NoticeChange(notice.change),
        audience=Audience(notice.audience),
        clinic=Clinic(location.name, location.phone, location.default_language),
        reason_code=ReasonCode(notice.reason_code) if notice.reason_code else None,
        reasons=dict((notice.texts or {}).get("reason", {})),
        messages=dict((notice.texts or {}).get("message", {})),
    )


def new_notice(location: Location, facts: NoticeFacts, kind: NoticeKind, now: datetime) -> Notice:
    """A notice row keeping its facts: intervals, and the zone and hours they were judged by."""
    closure = facts.closure
    return Notice(
        location=location,
        kind=kind.value,
        starts_at=closure.starts,
        ends_at=closure.ends,
        intervals=intervals_to_json(closure.intervals),
        timezone=closure.tz.key,
        business_hours=closure.hours.to_json(),
        audience=facts.audience.value,
        change=facts.change.value,
        reason=facts.reason,
        message=facts.message,
        reason_code=facts.reason_code.value if facts.reason_code else None,
        texts=_texts(facts),
        status=NoticeStatus.ACTIVE.value,
        version=1,
        created_at=now,
        updated_at=now,
    )


def _texts(facts: NoticeFacts) -> dict[str, dict[str, str]] | None:
    texts = {
        part: dict(by_language)
        for part, by_language in (("reason", facts.reasons), ("message", facts.messages))
        if by_language
    }
    return texts or None


def new_broadcast(
    notice: Notice,
    send_at: datetime,
    channels: Sequence[str],
    urgent: bool | None,
    now: datetime,
    repeats_id: int | None = None,
    status: BroadcastStatus = BroadcastStatus.SCHEDULED,
) -> Broadcast:
    """A broadcast row (its channels stored as one comma list, read by
    ``Broadcast.channel_names``); a draft's ``send_at`` is when it was drafted until
    ``Notices.send`` sets it."""
    return Broadcast(
        notice=notice,
        send_at=send_at,
        channels=",".join(channels),
        urgent=urgent,
        status=status.value,
        repeats_id=repeats_id,
        created_at=now,
    )


def pending_at(s: Session, location_id: int, now: datetime) -> Sequence[Notice]:
    """Active notices at a location whose closure is not over yet."""
    return s.scalars(
        select(Notice)
        .options(joinedload(Notice.location))
        .where(
            Notice.location_id == location_id,
            Notice.status == NoticeStatus.ACTIVE,
            Notice.ends_at > now,
        )
        .order_by(Notice.starts_at, Notice.id)
    ).all()


# --- broadcasts ---------------------------------------------------------------------------


def broadcast(s: Session, broadcast_id: int) -> Broadcast | None:
    return s.get(
        Broadcast,
        broadcast_id,
        options=[joinedload(Broadcast.notice).joinedload(Notice.location)],
    )


def notice_id_of_broadcast(s: Session, broadcast_id: int) -> int | None:
    return s.scalar(select(Broadcast.notice_id).where(Broadcast.id == broadcast_id))


def due_broadcast_ids(s: Session, now: datetime, limit: int = 100) -> list[int]:
    query = (
        select(Broadcast.id)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.send_at <= now)
        .order_by(Broadcast.send_at, Broadcast.id)
        .limit(limit)
    )
    return list(s.scalars(query))


def next_send_at(s: Session) -> datetime | None:
    """When the earliest scheduled broadcast is due (served by ix_broadcasts_status_send_at);
    the fan-out takes it the undo window later."""
    return s.scalar(
        select(func.min(Broadcast.send_at)).where(Broadcast.status == BroadcastStatus.SCHEDULED)
    )


def scheduled_broadcasts_exist(s: Session) -> bool:
    return bool(s.scalar(select(exists().where(Broadcast.status == BroadcastStatus.SCHEDULED))))


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
    elif to_status is BroadcastStatus.SCHEDULED:
        values["finished_at"] = None
    else:
        values["finished_at"] = now
    statement = (
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == from_status.value)
        .values(**values)
    )
    return changed(s, statement) == 1


def failed_broadcast_ids(s: Session, notice_id: int) -> list[int]:
    return list(
        s.scalars(
            select(Broadcast.id)
            .where(Broadcast.notice_id == notice_id, Broadcast.status == BroadcastStatus.FAILED)
            .order_by(Broadcast.id)
        )
    )


# --- versions -----------------------------------------------------------------------------


def chain(s: Session, root_id: int) -> Sequence[Notice]:
    """Every version of a notice, oldest first."""
    return s.scalars(
        select(Notice)
        .options(joinedload(Notice.location))
        .where(or_(Notice.id == root_id, Notice.root_id == root_id))
        .order_by(Notice.version, Notice.id)
    ).all()


def earlier_versions(root: int, version: int) -> Select[Any]:
    """The ids of the versions of a notice before ``version`` (not later ones: a version
    superseded while its messages were in flight must not wait on its successor)."""
    return select(Notice.id).where(
        or_(Notice.id == root, Notice.root_id == root), Notice.version < version
    )


def in_flight(delivery: type[Delivery]) -> ColumnElement[bool]:
    """Maybe at the provider: claimed, or taken over from a dead worker and not yet checked."""
    return or_(
        delivery.state == DeliveryState.SENDING,
        and_(delivery.state == DeliveryState.PENDING, delivery.needs_reconcile),
    )


def heard(s: Session, notice: Notice, channel: str, addresses: Sequence[str]) -> dict[str, Heard]:
    """What each address heard of the notice's earlier versions on a channel. A copy in flight
    outranks one that arrived: even a patient told v1 must not get v3 while v2 may still be on
    its way, or v2 would arrive last."""
    if notice.supersedes_id is None or not addresses:
        return dict.fromkeys(addresses, Heard.NEVER)
    root = notice.root_id or notice.supersedes_id
    rank = func.max(
        case(
            (in_flight(Delivery), 2),
            (Delivery.state.in_(REACHED_STATES), 1),
            else_=0,
        )
    )
    rows = s.execute(
        select(Delivery.address, rank)
        .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
        .where(
            Broadcast.notice_id.in_(earlier_versions(root, notice.version)),
            Delivery.channel == channel,
            Delivery.address.in_(addresses),
        )
        .group_by(Delivery.address)
    )
    ranks = {address: int(value) for address, value in rows}
    by_rank = {2: Heard.MAYBE, 1: Heard.TOLD, 0: Heard.NEVER}
    return {address: by_rank[ranks.get(address, 0)] for address in addresses}


def withdrawn_among(s: Session, notice_ids: Sequence[int]) -> set[int]:
    """Which of these notices were cancelled or replaced (their messages must not go out)."""
    if not notice_ids:
        return set()
    rows = s.scalars(
        select(Notice.id).where(Notice.id.in_(notice_ids), Notice.status.in_(WITHDRAWN))
    )
    return set(rows)


def chain_reached_anyone(s: Session, root_id: int) -> bool:
    """Whether any version of the notice has reached anyone, or may have: a send in flight
    counts, since the provider may already hold it and a correction must then follow."""
    versions = select(Notice.id).where(or_(Notice.id == root_id, Notice.root_id == root_id))
    reached = exists().where(
        Delivery.broadcast_id == Broadcast.id,
        Broadcast.notice_id.in_(versions),
        or_(Delivery.state.in_(REACHED_STATES), in_flight(Delivery)),
    )
    return bool(s.scalar(select(reached)))


def cancel(s: Session, notice_id: int, now: datetime) -> tuple[int, int]:
    """Cancel a notice, its waiting broadcasts and unsent deliveries: (broadcasts, deliveries)."""
    return _withdraw(s, notice_id, NoticeStatus.CANCELLED, "cancelled", "notice cancelled", now)


def supersede(s: Session, notice_id: int, by_id: int, now: datetime) -> tuple[int, int]:
    """Withdraw what has not gone out of a notice a newer version replaces, in the caller's
    transaction: waiting broadcasts are cancelled, pending deliveries withdrawn."""
    reason = f"superseded by notice {by_id}"
    return _withdraw(s, notice_id, NoticeStatus.SUPERSEDED, "withdrawn", reason, now)


def _withdraw(
    s: Session, notice_id: int, status: NoticeStatus, event: str, reason: str, now: datetime
) -> tuple[int, int]:
    """Set the notice's status, cancel its waiting (or failed) broadcasts and its pending
    deliveries, each with an event naming ``reason``: (broadcasts, deliveries)."""
    assert status in WITHDRAWN
    s.execute(
        update(Notice).where(Notice.id == notice_id).values(status=status.value, updated_at=now)
    )
    broadcasts = changed(
        s,
        update(Broadcast)
        .where(
            Broadcast.notice_id == notice_id,
            Broadcast.status.in_([*WAITING, BroadcastStatus.FAILED]),
        )
        .values(status=BroadcastStatus.CANCELLED.value, status_reason=reason, finished_at=now),
    )
    waiting = select(Delivery.id).where(
        Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.notice_id == notice_id)),
        Delivery.state == DeliveryState.PENDING,
    )
    ids = list(s.scalars(waiting))
    pending, cancelled = DeliveryState.PENDING, DeliveryState.CANCELLED
    moved = set_states(s, ids, pending, cancelled, now, event, reason) if ids else []
    return broadcasts, len(moved)


def hold_waiting(s: Session, root_id: int) -> None:
    """Lock the chain's waiting deliveries for the caller's transaction (PostgreSQL; SQLite's
    write lock already holds everything), so that no dispatcher claims one between the
    caller's look at who was told and its withdrawal of what waits."""
    versions = select(Notice.id).where(or_(Notice.id == root_id, Notice.root_id == root_id))
    waiting = select(Delivery.id).where(
        Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.notice_id.in_(versions))),
        Delivery.state == DeliveryState.PENDING,
    )
    s.execute(waiting.with_for_update())


# --- appointments a closure affects -------------------------------------------------------


def overlapping(intervals: Sequence[Interval]) -> ColumnElement[bool]:
    """An active appointment overlapping one of ``intervals``; touching is not overlapping.

    The SQL twin of ``domain.closures.affects``; tests check one against the other."""
    return and_(
        Appointment.status.in_(ACTIVE_APPOINTMENT_STATUSES),
        or_(
            *(
                and_(Appointment.starts_at < ends, Appointment.ends_at > starts)
                for starts, ends in intervals
            )
        ),
    )


def affected_appointments(
    s: Session,
    location_id: int,
    intervals: Sequence[Interval],
    patient_ids: Sequence[int] | None = None,
) -> Sequence[Appointment]:
    """Active appointments at a location overlapping one of a closure's intervals (of these
    patients only, when given)."""
    query = (
        select(Appointment)
        .options(joinedload(Appointment.patient))
        .where(Appointment.location_id == location_id, overlapping(intervals))
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if patient_ids is not None:
        query = query.where(Appointment.patient_id.in_(patient_ids))
    return s.scalars(query).all()
