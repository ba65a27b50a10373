"""Named queries. All SQL lives here; callers pass a session (one transaction).

Set-based where volume lives: fan-out is one ``INSERT … SELECT``, claims are one conditional
``UPDATE … RETURNING`` (with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, joinedload

from notifier.domain import (
    ACTIVE_APPOINTMENT_STATUSES,
    Audience,
    BroadcastStatus,
    DeliveryState,
    NoticeChange,
    NoticeStatus,
    intervals_from_json,
)
from notifier.models import (
    ApiToken,
    Appointment,
    Broadcast,
    ConsentEvent,
    Delivery,
    DeliveryEvent,
    Location,
    Notice,
    OptOut,
    Patient,
    User,
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


def longest_first_names(s: Session, location_id: int) -> list[tuple[str, str]]:
    """Per language, the longest first name of a patient who takes texts: (language, name)."""
    longest = (
        select(Patient.language, func.max(func.length(Patient.first_name)).label("n"))
        .where(Patient.location_id == location_id, Patient.sms_consent, Patient.phone.is_not(None))
        .group_by(Patient.language)
        .subquery()
    )
    rows = s.execute(
        select(Patient.language, func.min(Patient.first_name))
        .join(
            longest,
            and_(
                longest.c.language == Patient.language,
                func.length(Patient.first_name) == longest.c.n,
            ),
        )
        .where(Patient.location_id == location_id, Patient.sms_consent)
        .group_by(Patient.language)
        .order_by(Patient.language)
    )
    return [(language, name) for language, name in rows]


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
    s: Session,
    broadcast: Broadcast,
    channel: str,
    now: datetime,
    disabled_reason: str | None,
    sms_weekly_cap: int = 0,
) -> int:
    """Create one delivery per distinct address of the location's patients for ``channel``.

    Patients sharing an address get one message (to the first who consented; an affected
    patient first when the notice speaks of appointments). Addresses whose patients never
    consented are recorded as skipped, so the log shows why nothing went out. The notice's
    audience picks who is included; texts beyond ``sms_weekly_cap`` are skipped with the reason.
    """
    notice = broadcast.notice
    if notice.change != NoticeChange.ORIGINAL:
        return fan_out_follow_up(s, broadcast, channel, now, disabled_reason)
    address, consent, label = _channel_columns(channel)
    consenting = func.max(case((consent, 1), else_=0))
    audience = Audience(notice.audience)
    affected = _affected(notice)
    any_affected = func.max(case((affected, 1), else_=0))
    if audience is Audience.EVERYONE:
        patient = func.coalesce(func.min(case((consent, Patient.id))), func.min(Patient.id))
        message_kind: ColumnElement[str | None] = literal(None, String)
    else:
        patient = func.coalesce(
            func.min(case((and_(consent, affected), Patient.id))),
            func.min(case((consent, Patient.id))),
            func.min(Patient.id),
        )
        message_kind = case((any_affected == 1, MESSAGE_APPOINTMENT), else_=None)
    capped = _capped(channel, address, now, sms_weekly_cap)
    # Group once, computing each per-address fact once (PostgreSQL would otherwise evaluate the
    # opt-out and cap subqueries again for every CASE branch that names them).
    grouped = (
        select(
            address.label("address"),
            patient.label("patient_id"),
            consenting.label("consenting"),
            exists().where(OptOut.channel == channel, OptOut.address == address).label("opted"),
            capped.label("capped"),
            message_kind.label("message_kind"),
        )
        .where(Patient.location_id == notice.location_id, address.is_not(None))
        .group_by(address)
    )
    if audience is Audience.AFFECTED:
        grouped = grouped.having(any_affected == 1)
    g = grouped.subquery("g")
    if disabled_reason:
        state: ColumnElement[str] = literal(DeliveryState.SKIPPED.value, String)
        reason: ColumnElement[str | None] = literal(disabled_reason, String)
    else:
        # An opt-out (STOP, unsubscribe link, Twilio 21610) overrides the imported consent.
        cap_reason = (
            f"weekly SMS cap reached: {sms_weekly_cap} texts to this number in the last 7 days "
            "(NOTIFIER_SMS_WEEKLY_CAP)"
        )
        state = case(
            (g.c.opted, DeliveryState.SKIPPED.value),
            (and_(g.c.consenting == 1, g.c.capped), DeliveryState.SKIPPED.value),
            (g.c.consenting == 1, DeliveryState.PENDING.value),
            else_=DeliveryState.SKIPPED.value,
        )
        reason = case(
            (g.c.opted, "opted out"),
            (and_(g.c.consenting == 1, g.c.capped), cap_reason),
            (g.c.consenting == 1, None),
            else_=f"no {label} consent",
        )
    at = literal(now, UTCDateTime())
    rows = select(
        literal(broadcast.id, Integer),
        literal(channel, String),
        g.c.address,
        g.c.patient_id,
        state,
        literal(0, Integer),
        at,
        literal(False, Boolean),
        reason,
        at,
        at,
        g.c.message_kind,
    )
    inserted = s.execute(insert(Delivery).from_select(_FAN_OUT_COLUMNS, rows)).rowcount  # type: ignore[attr-defined]
    _queued_events(s, broadcast.id, channel, now)
    return int(inserted)


_FAN_OUT_COLUMNS = [
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
    "message_kind",
]
MESSAGE_APPOINTMENT = "appointment"
SENT_STATES = (DeliveryState.SENT.value, DeliveryState.DELIVERED.value)
# Texts that count against the weekly cap: sent, or on their way.
_CAP_STATES = (*SENT_STATES, *OPEN_STATES)


def _notice_intervals(notice: Notice) -> tuple[tuple[datetime, datetime], ...]:
    if notice.intervals:
        return intervals_from_json(notice.intervals)
    return ((notice.starts_at, notice.ends_at),)


def _affected(notice: Notice) -> ColumnElement[bool]:
    """The patient (the row's ``Patient``) has an appointment overlapping a closed interval.

    Overlap is strict: an appointment ending exactly when the closure starts is not affected.
    """
    overlaps = [
        and_(Appointment.starts_at < ends, Appointment.ends_at > starts)
        for starts, ends in _notice_intervals(notice)
    ]
    return exists().where(
        Appointment.patient_id == Patient.id,
        Appointment.location_id == notice.location_id,
        Appointment.status.in_(ACTIVE_APPOINTMENT_STATUSES),
        or_(*overlaps),
    )


def _capped(
    channel: str, address: ColumnElement[str], now: datetime, cap: int
) -> ColumnElement[bool]:
    """True when ``address`` already had ``cap`` texts in the rolling week (served by
    ix_deliveries_cap). Email is never capped."""
    if channel != "sms" or cap <= 0:
        return literal(False, Boolean)
    earlier = aliased(Delivery)
    recent = (
        select(func.count())
        .where(
            earlier.channel == "sms",
            earlier.address == address,
            earlier.state.in_(_CAP_STATES),
            earlier.created_at > literal(now - timedelta(days=7), UTCDateTime()),
        )
        .scalar_subquery()
    )
    return recent >= cap


def fan_out_follow_up(
    s: Session, broadcast: Broadcast, channel: str, now: datetime, disabled_reason: str | None
) -> int:
    """An update or cancellation goes only to addresses an earlier version actually reached.

    One ``INSERT … SELECT`` over the chain's sent/delivered deliveries on the same channel, so
    nobody hears of a closure for the first time from its correction. Not capped: it corrects
    what these people were already told. Opt-outs still apply.
    """
    notice = broadcast.notice
    root = notice.root_id or notice.supersedes_id
    earlier = aliased(Delivery)
    chain = select(Notice.id).where(
        or_(Notice.id == root, Notice.root_id == root), Notice.id != notice.id
    )
    opted_out = exists().where(OptOut.channel == channel, OptOut.address == earlier.address)
    if disabled_reason:
        state: ColumnElement[str] = literal(DeliveryState.SKIPPED.value, String)
        reason: ColumnElement[str | None] = literal(disabled_reason, String)
    else:
        state = case((opted_out, DeliveryState.SKIPPED.value), else_=DeliveryState.PENDING.value)
        reason = case((opted_out, "opted out"), else_=None)
    at = literal(now, UTCDateTime())
    rows = (
        select(
            literal(broadcast.id, Integer),
            literal(channel, String),
            earlier.address,
            func.min(earlier.patient_id),
            state,
            literal(0, Integer),
            at,
            literal(False, Boolean),
            reason,
            at,
            at,
            literal(None, String),
        )
        .join(Broadcast, Broadcast.id == earlier.broadcast_id)
        .where(
            Broadcast.notice_id.in_(chain),
            earlier.channel == channel,
            earlier.state.in_(SENT_STATES),
        )
        .group_by(earlier.address)
    )
    inserted = s.execute(insert(Delivery).from_select(_FAN_OUT_COLUMNS, rows)).rowcount  # type: ignore[attr-defined]
    _queued_events(s, broadcast.id, channel, now)
    return int(inserted)


def _queued_events(s: Session, broadcast_id: int, channel: str, now: datetime) -> None:
    at = literal(now, UTCDateTime())
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
            ).where(Delivery.broadcast_id == broadcast_id, Delivery.channel == channel),
        )
    )


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
    return _withdraw(s, notice_id, NoticeStatus.CANCELLED, "cancelled", "notice cancelled", now)


def supersede_notice(s: Session, notice_id: int, by_id: int, now: datetime) -> tuple[int, int]:
    """Withdraw what has not gone out of a notice a newer version replaces, in the caller's
    transaction: waiting broadcasts are cancelled, pending deliveries withdrawn."""
    reason = f"superseded by notice {by_id}"
    return _withdraw(s, notice_id, NoticeStatus.SUPERSEDED, "withdrawn", reason, now)


def _withdraw(
    s: Session, notice_id: int, status: NoticeStatus, event: str, reason: str, now: datetime
) -> tuple[int, int]:
    """Set the notice's status, cancel its waiting broadcasts and its pending deliveries (each
    with an event naming ``reason``): (broadcasts, deliveries)."""
    s.execute(
        update(Notice).where(Notice.id == notice_id).values(status=status.value, updated_at=now)
    )
    broadcasts = s.execute(
        update(Broadcast)
        .where(Broadcast.notice_id == notice_id, Broadcast.status == BroadcastStatus.SCHEDULED)
        .values(status=BroadcastStatus.CANCELLED.value, status_reason=reason, finished_at=now)
    ).rowcount  # type: ignore[attr-defined]
    waiting = select(Delivery.id).where(
        Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.notice_id == notice_id)),
        Delivery.state == DeliveryState.PENDING,
    )
    ids = list(s.scalars(waiting))
    if ids:
        set_states(s, ids, DeliveryState.CANCELLED, now, event, reason)
    return int(broadcasts), len(ids)


# --- appointments -------------------------------------------------------------------------


def appointments_by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, Appointment]:
    rows = s.scalars(select(Appointment).where(Appointment.external_id.in_(external_ids)))
    return {appointment.external_id: appointment for appointment in rows}


def affected_appointments(
    s: Session, notice: Notice, patient_id: int | None = None
) -> Sequence[Appointment]:
    """Active appointments at the notice's location overlapping one of its closed intervals."""
    overlaps = [
        and_(Appointment.starts_at < ends, Appointment.ends_at > starts)
        for starts, ends in _notice_intervals(notice)
    ]
    query = (
        select(Appointment)
        .options(joinedload(Appointment.patient))
        .where(
            Appointment.location_id == notice.location_id,
            Appointment.status.in_(ACTIVE_APPOINTMENT_STATUSES),
            or_(*overlaps),
        )
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    return s.scalars(query).all()


def chain_reached_anyone(s: Session, root_id: int) -> bool:
    """Whether any version of the notice has been sent to anyone yet."""
    versions = select(Notice.id).where(or_(Notice.id == root_id, Notice.root_id == root_id))
    reached = exists().where(
        Delivery.broadcast_id == Broadcast.id,
        Broadcast.notice_id.in_(versions),
        Delivery.state.in_(SENT_STATES),
    )
    return bool(s.scalar(select(reached)))


def chain(s: Session, root_id: int) -> Sequence[Notice]:
    """Every version of a notice, oldest first."""
    return s.scalars(
        select(Notice)
        .where(or_(Notice.id == root_id, Notice.root_id == root_id))
        .order_by(Notice.version, Notice.id)
    ).all()


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
    # Two statements, not UPDATE … WHERE id IN (subquery): PostgreSQL may re-run a LIMIT … SKIP
    # LOCKED subquery inside an UPDATE and claim far more than ``limit`` rows.
    ids = list(s.scalars(due))
    if not ids:
        return []
    claimed = s.scalars(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.PENDING)
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
    return _hand_back(s, ids, worker, now)


def _hand_back(s: Session, ids: Sequence[int], worker: str, now: datetime, **values: object) -> int:
    """Claimed deliveries this worker still holds become pending again, no attempt counted."""
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
            **values,
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
    return record_many(s, worker, [(delivery_id, outcome)], now)[0]


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
    s: Session,
    notice_id: int | None = None,
    state: str | None = None,
    channel: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Sequence[Delivery]:
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
    if limit is not None:
        query = query.limit(limit).offset(offset)
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


def retry_failed(s: Session, now: datetime, notice_id: int | None = None) -> list[int]:
    """Re-queue failed deliveries on request (attempts kept), except where sending is pointless:
    a cancelled notice or a closure that has ended."""
    query = (
        select(Delivery.id)
        .join(Delivery.broadcast)
        .join(Broadcast.notice)
        .where(
            Delivery.state == DeliveryState.FAILED,
            Notice.status.not_in([NoticeStatus.CANCELLED, NoticeStatus.SUPERSEDED]),
            Notice.ends_at > now,
        )
        .order_by(Delivery.id)
    )
    if notice_id is not None:
        query = query.where(Broadcast.notice_id == notice_id)
    ids = list(s.scalars(query))
    if not ids:
        return []
    s.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.FAILED)
        .values(state=DeliveryState.PENDING.value, next_attempt_at=now, updated_at=now)
    )
    s.execute(
        insert(DeliveryEvent),
        [
            {
                "delivery_id": i,
                "at": now,
                "kind": "retry_requested",
                "state": DeliveryState.PENDING.value,
                "detail": "re-queued on request",
            }
            for i in ids
        ],
    )
    return ids


def recipient_counts(s: Session, location_id: int, channel: str) -> dict[str, int]:
    """Consenting distinct addresses per patient language for ``channel``: one COUNT query."""
    address, consent, _ = _channel_columns(channel)
    rows = s.execute(
        select(Patient.language, func.count(func.distinct(address)))
        .where(Patient.location_id == location_id, address.is_not(None), consent)
        .group_by(Patient.language)
    )
    return {language: int(count) for language, count in rows}


# --- consent, provider status, API tokens (issue 5) ---------------------------------------


def opt_out_exists(s: Session, channel: str, address: str) -> bool:
    query = select(OptOut.id).where(OptOut.channel == channel, OptOut.address == address)
    return s.scalar(query) is not None


def add_opt_out(s: Session, channel: str, address: str, source: str, now: datetime) -> None:
    s.add(OptOut(channel=channel, address=address, source=source, created_at=now))
    s.flush()


def remove_opt_out(s: Session, channel: str, address: str) -> bool:
    result = s.execute(delete(OptOut).where(OptOut.channel == channel, OptOut.address == address))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_consent_event(s: Session, event: ConsentEvent) -> None:
    s.add(event)


def consent_events(s: Session, channel: str, address: str) -> Sequence[ConsentEvent]:
    return s.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.channel == channel, ConsentEvent.address == address)
        .order_by(ConsentEvent.id)
    ).all()


def patients_with_address(s: Session, channel: str, address: str) -> Sequence[Patient]:
    column, _, _ = _channel_columns(channel)
    return s.scalars(
        select(Patient)
        .where(column == address)
        .options(joinedload(Patient.location))
        .order_by(Patient.id)
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


def delivery_id_by_provider_id(s: Session, provider_id: str) -> int | None:
    return s.scalar(select(Delivery.id).where(Delivery.provider_id == provider_id).limit(1))


def delivery_state(s: Session, delivery_id: int) -> str | None:
    return s.scalar(select(Delivery.state).where(Delivery.id == delivery_id))


def advance_state(
    s: Session,
    delivery_id: int,
    earlier: Sequence[DeliveryState],
    to: DeliveryState,
    now: datetime,
    code: str | None,
    detail: str | None,
) -> bool:
    """Conditional update: move forward only from one of ``earlier`` (never backwards)."""
    values: dict[str, object] = {"state": to.value, "updated_at": now}
    if code is not None:
        values["error_code"] = code
        values["error_message"] = detail
    result = s.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state.in_([e.value for e in earlier]))
        .values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def add_api_token(s: Session, name: str, token_sha256: str, now: datetime) -> ApiToken:
    token = ApiToken(name=name, token_sha256=token_sha256, created_at=now)
    s.add(token)
    s.flush()
    return token


def api_token_by_hash(s: Session, token_sha256: str) -> ApiToken | None:
    return s.scalar(
        select(ApiToken).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
    )


def defer(
    s: Session,
    delivery_id: int,
    worker: str,
    until: datetime,
    now: datetime,
    event: str,
    detail: str,
) -> bool:
    """Hand a claimed delivery back, due again at ``until`` (no attempt is counted)."""
    if _hand_back(s, [delivery_id], worker, now, next_attempt_at=until) != 1:
        return False
    add_event(s, delivery_id, now, event, DeliveryState.PENDING, detail=detail)
    return True


# --- console users and the patients list ------------------------------------------------


def user(s: Session, user_id: int) -> User | None:
    return s.get(User, user_id)


def user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def add_user(s: Session, new_user: User) -> User:
    s.add(new_user)
    s.flush()
    return new_user


def patients(
    s: Session, location_id: int | None = None, limit: int = 200, offset: int = 0
) -> tuple[Sequence[Patient], int]:
    """One page of patients (by external id) and how many there are in all."""
    query = select(Patient).options(joinedload(Patient.location))
    counted = select(func.count()).select_from(Patient)
    if location_id is not None:
        query = query.where(Patient.location_id == location_id)
        counted = counted.where(Patient.location_id == location_id)
    rows = s.scalars(query.order_by(Patient.external_id).limit(limit).offset(offset)).all()
    return rows, int(s.scalar(counted) or 0)


def opted_out(s: Session, addresses: Sequence[str]) -> set[tuple[str, str]]:
    """(channel, address) pairs among ``addresses`` that asked not to be contacted."""
    rows = s.execute(select(OptOut.channel, OptOut.address).where(OptOut.address.in_(addresses)))
    return {(channel, address) for channel, address in rows}


def record_many(
    s: Session, worker: str, outcomes: Sequence[tuple[int, Outcome]], now: datetime
) -> list[bool]:
    """``record`` for a batch in three statements (group commit): only deliveries this worker
    still holds are updated; returns, per outcome, whether it was stored."""
    ids = [delivery_id for delivery_id, _ in outcomes]
    # Locked until commit (PostgreSQL), so no other worker can recover these rows in between.
    held = set(
        s.scalars(
            select(Delivery.id)
            .where(
                Delivery.id.in_(ids),
                Delivery.state == DeliveryState.SENDING,
                Delivery.claimed_by == worker,
            )
            .with_for_update()
        )
    )
    rows: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    for delivery_id, outcome in outcomes:
        if delivery_id not in held:
            continue
        row: dict[str, object] = {
            "id": delivery_id,
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
            row |= {"provider_id": outcome.provider_id, "sent_at": now}
        if outcome.segments is not None:
            row["segments"] = outcome.segments
        if outcome.next_attempt_at is not None:
            row["next_attempt_at"] = outcome.next_attempt_at
        rows.append(row)
        events.append(
            {
                "delivery_id": delivery_id,
                "at": now,
                "kind": outcome.event,
                "state": outcome.state.value,
                "attempt": outcome.attempts,
                "code": outcome.code,
                "detail": outcome.detail or outcome.provider_id,
            }
        )
    if rows:
        s.execute(update(Delivery), rows)
        s.execute(insert(DeliveryEvent), events)
    return [delivery_id in held for delivery_id, _ in outcomes]


def next_send_at(s: Session) -> datetime | None:
    """When the earliest scheduled broadcast is due (served by ix_broadcasts_status_send_at)."""
    return s.scalar(
        select(func.min(Broadcast.send_at)).where(Broadcast.status == BroadcastStatus.SCHEDULED)
    )
