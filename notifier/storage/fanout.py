"""Fan-out: one ``INSERT … SELECT`` turns a broadcast into a delivery row per address.

Set-based: consent, opt-outs, the weekly cap and the audience are columns of that one query, so
no patient row enters Python and memory depends on nothing but the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from notifier.domain.channels import ChannelSpec
from notifier.domain.closures import intervals_from_json
from notifier.domain.deliveries import OPEN_STATES, REACHED_STATES, DeliveryState
from notifier.domain.notices import Audience, BroadcastStatus, NoticeChange, Template
from notifier.storage.models import (
    Appointment,
    Broadcast,
    Delivery,
    DeliveryEvent,
    Notice,
    OptOut,
    Patient,
    UTCDateTime,
)
from notifier.storage.notices import overlapping
from notifier.storage.patients import address_column, consent_column
from notifier.storage.rows import changed

_COLUMNS = [
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
# Messages that count against the weekly cap: sent, or on their way.
_CAP_STATES = (*REACHED_STATES, *OPEN_STATES)


def fan_out(
    s: Session,
    broadcast: Broadcast,
    spec: ChannelSpec,
    now: datetime,
    disabled_reason: str | None,
    weekly_cap: int = 0,
) -> int:
    """Create one delivery per distinct address of the location's patients for a channel.

    Patients sharing an address get one message (to the first who consented; an affected
    patient first when the notice speaks of appointments). Addresses whose patients never
    consented are recorded as skipped, so the log shows why nothing went out. The notice's
    audience picks who is included; messages beyond ``weekly_cap`` are skipped with the reason.
    """
    notice = broadcast.notice
    if notice.change != NoticeChange.ORIGINAL:
        return _fan_out_follow_up(s, broadcast, spec, now, disabled_reason)
    address, consent = address_column(spec), consent_column(spec)
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
        message_kind = case((any_affected == 1, Template.APPOINTMENT.value), else_=None)
    capped = _capped(spec, address, now, weekly_cap)
    # Group once, computing each per-address fact once (PostgreSQL would otherwise evaluate the
    # opt-out and cap subqueries again for every CASE branch that names them).
    grouped = (
        select(
            address.label("address"),
            patient.label("patient_id"),
            consenting.label("consenting"),
            exists().where(OptOut.channel == spec.name, OptOut.address == address).label("opted"),
            capped.label("capped"),
            message_kind.label("message_kind"),
        )
        .where(Patient.location_id == notice.location_id, address.is_not(None))
        .group_by(address)
    )
    if audience is Audience.AFFECTED:
        grouped = grouped.having(any_affected == 1)
    g = grouped.subquery("g")
    # An opt-out (STOP, unsubscribe link, the provider's own list) overrides the consent.
    cap_reason = (
        f"weekly {spec.label} cap reached: {weekly_cap} texts to this number in the last "
        "7 days (NOTIFIER_SMS_WEEKLY_CAP)"
    )
    decisions = [
        (g.c.opted, "opted out"),
        (and_(g.c.consenting == 1, g.c.capped), cap_reason),
        (g.c.consenting == 1, None),
    ]
    row = _Row(broadcast.id, spec.name, now, disabled_reason)
    columns = row.columns(
        g.c.address, g.c.patient_id, decisions, f"no {spec.label} consent", g.c.message_kind
    )
    return row.insert(s, select(*columns))


def _affected(notice: Notice) -> ColumnElement[bool]:
    """The patient (the row's ``Patient``) has an appointment overlapping a closed interval."""
    return exists().where(
        Appointment.patient_id == Patient.id,
        Appointment.location_id == notice.location_id,
        overlapping(intervals_from_json(notice.intervals)),
    )


def _capped(
    spec: ChannelSpec, address: ColumnElement[str], now: datetime, cap: int
) -> ColumnElement[bool]:
    """True when ``address`` already had ``cap`` messages of this channel in the rolling week
    (served by ix_deliveries_cap). Channels without a weekly cap are never capped."""
    if not spec.weekly_cap or cap <= 0:
        return literal(False, Boolean)
    earlier = aliased(Delivery)
    recent = (
        select(func.count())
        .where(
            earlier.channel == spec.name,
            earlier.address == address,
            earlier.state.in_(_CAP_STATES),
            earlier.created_at > literal(now - timedelta(days=7), UTCDateTime()),
        )
        .scalar_subquery()
    )
    return recent >= cap


def _fan_out_follow_up(
    s: Session, broadcast: Broadcast, spec: ChannelSpec, now: datetime, disabled_reason: str | None
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
    opted_out = exists().where(OptOut.channel == spec.name, OptOut.address == earlier.address)
    row = _Row(broadcast.id, spec.name, now, disabled_reason)
    columns = row.columns(
        earlier.address.expression,
        func.min(earlier.patient_id),
        [(opted_out, "opted out")],
        None,
        literal(None, String),
    )
    rows = (
        select(*columns)
        .join(Broadcast, Broadcast.id == earlier.broadcast_id)
        .where(
            Broadcast.notice_id.in_(chain),
            earlier.channel == spec.name,
            earlier.state.in_(REACHED_STATES),
        )
        .group_by(earlier.address)
    )
    return row.insert(s, rows)


class _Row:
    """The delivery rows one fan-out inserts: the columns of its ``INSERT … SELECT``, and the
    insert itself with a ``queued`` event per row."""

    def __init__(
        self, broadcast_id: int, channel: str, now: datetime, disabled_reason: str | None
    ) -> None:
        self.broadcast_id = broadcast_id
        self.channel = channel
        self.now = now
        self.disabled_reason = disabled_reason

    def columns(
        self,
        address: ColumnElement[str],
        patient_id: ColumnElement[int],
        skipped_when: list[tuple[ColumnElement[bool], str | None]],
        otherwise_skipped: str | None,
        message_kind: ColumnElement[str | None],
    ) -> list[ColumnElement[Any]]:
        """In ``_COLUMNS`` order. ``skipped_when`` are (condition, reason) in order, a None
        reason meaning "pending"; ``otherwise_skipped`` the reason when none holds (None:
        pending). A disabled channel skips every row with its reason."""
        if self.disabled_reason:
            state: ColumnElement[str] = literal(DeliveryState.SKIPPED.value, String)
            reason: ColumnElement[str | None] = literal(self.disabled_reason, String)
        else:
            pending, skipped = DeliveryState.PENDING.value, DeliveryState.SKIPPED.value
            state = case(
                *((when, skipped if why else pending) for when, why in skipped_when),
                else_=skipped if otherwise_skipped else pending,
            )
            reason = case(*skipped_when, else_=otherwise_skipped)
        at = literal(self.now, UTCDateTime())
        return [
            literal(self.broadcast_id, Integer),
            literal(self.channel, String),
            address,
            patient_id,
            state,
            literal(0, Integer),
            at,
            literal(False, Boolean),
            reason,
            at,
            at,
            message_kind,
        ]

    def insert(self, s: Session, rows: Select[Any]) -> int:
        inserted = changed(s, insert(Delivery).from_select(_COLUMNS, rows))
        _queued_events(s, self.broadcast_id, self.channel, self.now)
        return inserted


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


def pending_by_language(s: Session, broadcast_id: int, channel: str) -> dict[str, int]:
    """The deliveries a fan-out queued to be sent, per patient language (for the estimate)."""
    rows = s.execute(
        select(Patient.language, func.count())
        .join(Delivery, Delivery.patient_id == Patient.id)
        .where(
            Delivery.broadcast_id == broadcast_id,
            Delivery.channel == channel,
            Delivery.state == DeliveryState.PENDING,
        )
        .group_by(Patient.language)
    )
    return {language: int(count) for language, count in rows}


def finish_broadcasts(s: Session, now: datetime) -> int:
    """Mark sending broadcasts whose deliveries are all final as done."""
    still_open = exists().where(
        Delivery.broadcast_id == Broadcast.id, Delivery.state.in_(OPEN_STATES)
    )
    return changed(
        s,
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SENDING, ~still_open)
        .values(status=BroadcastStatus.DONE.value, finished_at=now),
    )
