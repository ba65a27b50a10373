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
    Exists,
    FromClause,
    Integer,
    Select,
    String,
    Subquery,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
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
    Notice,
    OptOut,
    Patient,
    UTCDateTime,
)
from notifier.storage.notices import earlier_versions, in_flight, overlapping
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
    """Create one delivery per address for a channel; how many rows were inserted.

    - A first version goes to its audience (see ``_fan_out_audience``).
    - A later version (update or replacement) goes to everyone an earlier version reached or
      may have reached (in flight), then to the rest of its audience: whether each gets the
      correction or the plain latest version is decided just before sending, once whatever of
      an earlier version was in flight has an outcome (``storage.notices.chain_states``).
    - "Open after all" goes only to those an earlier version reached or may have reached.
    - A reminder goes to the recipients of the broadcast it repeats.
    """
    notice = broadcast.notice
    row = _Row(broadcast.id, spec.name, now, disabled_reason)
    if broadcast.repeats_id is not None:
        return _fan_out_repeat(s, row, broadcast.repeats_id, spec)
    if notice.supersedes_id is None:
        return _fan_out_audience(s, row, notice, spec, weekly_cap)
    root = notice.root_id or notice.supersedes_id
    inserted = _fan_out_earlier_recipients(s, row, notice, spec, root)
    if notice.change == NoticeChange.CANCELLATION:
        return inserted
    return inserted + _fan_out_audience(s, row, notice, spec, weekly_cap, root)


def _fan_out_audience(
    s: Session,
    row: _Row,
    notice: Notice,
    spec: ChannelSpec,
    weekly_cap: int,
    chain_root: int | None = None,
) -> int:
    """One delivery per distinct address of the location's patients (the audience).

    Patients sharing an address get one message (to the first who consented; an affected
    patient first when the notice speaks of appointments). Addresses whose patients never
    consented are recorded as skipped, so the log shows why nothing went out. The notice's
    audience picks who is included; messages beyond ``weekly_cap`` are skipped with the reason.
    For a later version (``chain_root``), addresses already given a delivery are left alone
    and the cap only counts against addresses the chain never had.
    """
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
    # Group once, computing each per-address fact once (PostgreSQL would otherwise evaluate the
    # opt-out subquery again for every CASE branch that names it).
    grouped = (
        select(
            address.label("address"),
            patient.label("patient_id"),
            consenting.label("consenting"),
            _opted_out(spec, address).label("opted"),
            message_kind.label("message_kind"),
        )
        .where(Patient.location_id == notice.location_id, address.is_not(None))
        .group_by(address)
    )
    if audience is Audience.AFFECTED:
        grouped = grouped.having(any_affected == 1)
    g = grouped.subquery("g")
    capped, rows_from = _capped(spec, g, notice.location_id, row.now, weekly_cap)
    if chain_root is not None:
        capped = and_(capped, ~_in_chain(chain_root, notice.version, spec, g.c.address))
    # An opt-out (STOP, unsubscribe link, the provider's own list) overrides the consent.
    cap_reason = (
        f"weekly {spec.label} cap reached: {weekly_cap} texts to this number in the last "
        "7 days (NOTIFIER_SMS_WEEKLY_CAP)"
    )
    decisions = [
        (g.c.opted, "opted out"),
        (and_(g.c.consenting == 1, capped), cap_reason),
        (g.c.consenting == 1, None),
    ]
    columns = row.columns(
        g.c.address, g.c.patient_id, decisions, f"no {spec.label} consent", g.c.message_kind
    )
    # Ids (the claim order among equals) follow the address, as with the plain group by.
    rows = select(*columns).select_from(rows_from).order_by(g.c.address)
    if chain_root is not None:
        already = aliased(Delivery)
        rows = rows.where(
            ~exists().where(
                already.broadcast_id == row.broadcast_id,
                already.channel == spec.name,
                already.address == g.c.address,
            )
        )
    return row.insert(s, rows)


def _fan_out_earlier_recipients(
    s: Session, row: _Row, notice: Notice, spec: ChannelSpec, root: int
) -> int:
    """Everyone an earlier version reached, or may have reached (its message in flight): they
    must hear of this one. Not capped: it corrects what they were told. Opt-outs apply."""
    earlier = aliased(Delivery)
    g = (
        select(
            earlier.address.label("address"),
            func.min(earlier.patient_id).label("patient_id"),
            _opted_out(spec, earlier.address.expression).label("opted"),
        )
        .join(Broadcast, Broadcast.id == earlier.broadcast_id)
        .where(
            Broadcast.notice_id.in_(earlier_versions(root, notice.version)),
            Broadcast.repeats_id.is_(None),
            earlier.channel == spec.name,
            or_(earlier.state.in_(REACHED_STATES), in_flight(earlier)),
        )
        .group_by(earlier.address)
        .subquery("earlier")
    )
    kind: ColumnElement[str | None] = literal(None, String)
    if Audience(notice.audience) is not Audience.EVERYONE:
        names_appointments = exists().where(
            Appointment.patient_id == g.c.patient_id,
            Appointment.location_id == notice.location_id,
            overlapping(intervals_from_json(notice.intervals)),
        )
        kind = case((names_appointments, Template.APPOINTMENT.value), else_=None)
    columns = row.columns(g.c.address, g.c.patient_id, [(g.c.opted, "opted out")], None, kind)
    return row.insert(s, select(*columns))


def _fan_out_repeat(s: Session, row: _Row, repeated: int, spec: ChannelSpec) -> int:
    """A reminder: the same message again to whom the broadcast it repeats reached (not to
    patients added since), if a patient still has that address and consents. Opt-outs apply."""
    earlier = aliased(Delivery)
    opted_out = _opted_out(spec, earlier.address.expression)
    consenting = exists().where(address_column(spec) == earlier.address, consent_column(spec))
    columns = row.columns(
        earlier.address.expression,
        earlier.patient_id.expression,
        [(opted_out, "opted out"), (consenting, None)],
        f"no {spec.label} consent now, or the address is no patient's any more",
        earlier.message_kind.expression,
    )
    rows = select(*columns).where(
        earlier.broadcast_id == repeated,
        earlier.channel == spec.name,
        earlier.state.in_(REACHED_STATES),
    )
    return row.insert(s, rows)


def _opted_out(spec: ChannelSpec, address: ColumnElement[str]) -> Exists:
    """``address`` opted out of the channel (STOP, an unsubscribe link, the provider's list)."""
    return exists().where(OptOut.channel == spec.name, OptOut.address == address)


def _in_chain(
    root: int, version: int, spec: ChannelSpec, address: ColumnElement[str]
) -> ColumnElement[bool]:
    """An earlier version of the notice had a delivery to ``address`` on this channel."""
    earlier = aliased(Delivery)
    return exists().where(
        earlier.broadcast_id == Broadcast.id,
        Broadcast.notice_id.in_(earlier_versions(root, version)),
        earlier.channel == spec.name,
        earlier.address == address,
    )


def _affected(notice: Notice) -> ColumnElement[bool]:
    """The patient (the row's ``Patient``) has an appointment overlapping a closed interval."""
    return exists().where(
        Appointment.patient_id == Patient.id,
        Appointment.location_id == notice.location_id,
        overlapping(intervals_from_json(notice.intervals)),
    )


def _capped(
    spec: ChannelSpec, g: Subquery, location_id: int, now: datetime, cap: int
) -> tuple[ColumnElement[bool], FromClause]:
    """Whether the address ``g.c.address`` already had ``cap`` messages of this channel in the
    rolling week, and what to select from for it: ``g`` joined to the week's count of each of
    the location's addresses (one join, not a lookup per address; ix_deliveries_cap serves it,
    and a small audience still probes only its own addresses). Channels without a weekly cap
    are never capped."""
    if not spec.weekly_cap or cap <= 0:
        return literal(False, Boolean), g
    earlier = aliased(Delivery)
    audience = select(address_column(spec)).where(Patient.location_id == location_id)
    recent = (
        select(earlier.address.label("address"), func.count().label("messages"))
        .where(
            earlier.channel == spec.name,
            earlier.address.in_(audience),
            earlier.state.in_(_CAP_STATES),
            earlier.created_at > literal(now - timedelta(days=7), UTCDateTime()),
        )
        .group_by(earlier.address)
        .subquery("recent")
    )
    capped = func.coalesce(recent.c.messages, 0) >= cap
    return capped, g.outerjoin(recent, recent.c.address == g.c.address)


class _Row:
    """The delivery rows one fan-out inserts: the columns of its ``INSERT … SELECT``, and the
    insert itself."""

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
        """Insert the rows; how many were inserted.

        No ``queued`` event is written: the delivery log derives it from the row
        (``storage.reports.queued_event``), which halves what a fan-out writes. On PostgreSQL
        JIT is off: it costs more than it saves on a plan run once."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET LOCAL jit = off"))
        return changed(s, insert(Delivery).from_select(_COLUMNS, rows))


def queued_names(
    s: Session, broadcast_id: int, channel: str
) -> tuple[list[tuple[str, str, int]], list[Patient]]:
    """What a fan-out queued to be sent, as far as length goes: (language, first name, count)
    of the general message, and the patients whose message names their appointments."""
    queued = and_(
        Delivery.broadcast_id == broadcast_id,
        Delivery.channel == channel,
        Delivery.state == DeliveryState.PENDING,
    )
    general = s.execute(
        select(Patient.language, Patient.first_name, func.count())
        .join(Delivery, Delivery.patient_id == Patient.id)
        .where(queued, Delivery.message_kind.is_(None))
        .group_by(Patient.language, Patient.first_name)
    )
    own = s.scalars(
        select(Patient)
        .join(Delivery, Delivery.patient_id == Patient.id)
        .where(queued, Delivery.message_kind == Template.APPOINTMENT.value)
    )
    return [(language, name, int(count)) for language, name, count in general], list(own)


def queued_addresses(s: Session, broadcast_id: int, channel: str) -> list[str]:
    """The addresses a fan-out queued on a channel, for sharing them out among senders."""
    rows = s.scalars(
        select(Delivery.address).where(
            Delivery.broadcast_id == broadcast_id,
            Delivery.channel == channel,
            Delivery.state == DeliveryState.PENDING,
        )
    )
    return list(rows)


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


def decided(s: Session, broadcast_id: int) -> list[tuple[str, str, str | None, str, int]]:
    """What a broadcast's fan-out decided, counted: (channel, state, reason, the patient's
    language, deliveries)."""
    rows = s.execute(
        select(
            Delivery.channel, Delivery.state, Delivery.error_message, Patient.language, func.count()
        )
        .join(Patient, Patient.id == Delivery.patient_id)
        .where(Delivery.broadcast_id == broadcast_id)
        .group_by(Delivery.channel, Delivery.state, Delivery.error_message, Patient.language)
    )
    return [(c, state, why, language, int(n)) for c, state, why, language, n in rows]


def patients_to_send(s: Session, broadcast_id: int) -> int:
    """How many patients a broadcast's fan-out queued a message for (on any channel)."""
    return int(
        s.scalar(
            select(func.count(func.distinct(Delivery.patient_id))).where(
                Delivery.broadcast_id == broadcast_id, Delivery.state == DeliveryState.PENDING
            )
        )
        or 0
    )
