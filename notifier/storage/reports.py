"""What ops read: the delivery log (notices' deliveries, and beside them the staff answers and
closure auto-replies the inbox sent), each delivery's events, counts per state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Integer, func, literal_column, select, union_all
from sqlalchemy.orm import Session, joinedload

from notifier.domain.conversations import OUTGOING, QUEUED_ALIKE
from notifier.domain.deliveries import REACHED_STATES, DeliveryState
from notifier.storage.models import (
    Broadcast,
    Conversation,
    ConversationMessage,
    Delivery,
    DeliveryEvent,
    Notice,
    Patient,
)


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


@dataclass(frozen=True)
class Answer:
    """A staff answer or auto-reply as the delivery log shows it: the message, its
    conversation, the notice it answers (if any) and, for managers, its patient."""

    message: ConversationMessage
    conversation: Conversation
    notice: Notice | None
    patient: Patient | None


_DELIVERY, _ANSWER = 0, 1  # the log's two sources, in the order of a tie


def delivery_log(s: Session, wanted: LogQuery) -> list[Delivery | Answer]:
    """One page of the log, oldest first: deliveries and answers in one order (one UNION
    decides the page, then each side is loaded whole)."""
    deliveries = select(
        literal_column(str(_DELIVERY), Integer).label("source"),
        Delivery.id.label("id"),
        Delivery.created_at.label("at"),
    ).join(Delivery.broadcast)
    answers = (
        select(
            literal_column(str(_ANSWER), Integer).label("source"),
            ConversationMessage.id.label("id"),
            ConversationMessage.at.label("at"),
        )
        .join(Conversation, Conversation.id == ConversationMessage.conversation_id)
        .where(ConversationMessage.author.in_(OUTGOING))
    )
    if wanted.notice_id is not None:
        deliveries = deliveries.where(Broadcast.notice_id == wanted.notice_id)
        answers = answers.where(ConversationMessage.notice_id == wanted.notice_id)
    if wanted.within is not None:
        located = select(Notice.id).where(Notice.location_id.in_(wanted.within))
        deliveries = deliveries.where(Broadcast.notice_id.in_(located))
        answers = answers.where(Conversation.location_id.in_(wanted.within))
    if wanted.state is not None:
        deliveries = deliveries.where(Delivery.state == wanted.state)
        states = {wanted.state, QUEUED_ALIKE.get(wanted.state, wanted.state)}
        answers = answers.where(ConversationMessage.state.in_(sorted(states)))
    if wanted.channel is not None:
        deliveries = deliveries.where(Delivery.channel == wanted.channel)
        answers = answers.where(ConversationMessage.channel == wanted.channel)
    both = union_all(deliveries, answers).subquery()
    query = select(both.c.source, both.c.id).order_by(both.c.at, both.c.source, both.c.id)
    if wanted.limit is not None:
        query = query.limit(wanted.limit).offset(wanted.offset)
    keys = [(int(source), int(row_id)) for source, row_id in s.execute(query)]
    found_deliveries = _deliveries(s, [i for k, i in keys if k == _DELIVERY], wanted)
    found_answers = _answers(s, [i for k, i in keys if k == _ANSWER], wanted.with_patients)
    return [
        found_deliveries[i] if k == _DELIVERY else found_answers[i]
        for k, i in keys
        if i in (found_deliveries if k == _DELIVERY else found_answers)
    ]


def _deliveries(s: Session, ids: Sequence[int], wanted: LogQuery) -> dict[int, Delivery]:
    if not ids:
        return {}
    query = (
        select(Delivery)
        .where(Delivery.id.in_(ids))
        .options(joinedload(Delivery.broadcast).joinedload(Broadcast.notice))
    )
    if wanted.with_patients:
        query = query.options(joinedload(Delivery.patient))
    return {d.id: d for d in s.scalars(query).unique()}


def _answers(s: Session, ids: Sequence[int], with_patients: bool) -> dict[int, Answer]:
    if not ids:
        return {}
    messages = list(s.scalars(select(ConversationMessage).where(ConversationMessage.id.in_(ids))))
    conversations = _by_id(s, Conversation, {m.conversation_id for m in messages})
    notices = _by_id(s, Notice, {m.notice_id for m in messages if m.notice_id is not None})
    patients = (
        _by_id(s, Patient, {c.patient_id for c in conversations.values() if c.patient_id})
        if with_patients
        else {}
    )
    found = {}
    for m in messages:
        conversation = conversations[m.conversation_id]
        notice = notices.get(m.notice_id) if m.notice_id is not None else None
        patient = patients.get(conversation.patient_id) if conversation.patient_id else None
        found[m.id] = Answer(m, conversation, notice, patient)
    return found


_Row = TypeVar("_Row", Conversation, Notice, Patient)


def _by_id(s: Session, model: type[_Row], ids: set[int]) -> dict[int, _Row]:
    if not ids:
        return {}
    return {row.id: row for row in s.scalars(select(model).where(model.id.in_(sorted(ids))))}


def delivery(s: Session, delivery_id: int) -> Delivery | None:
    return s.get(
        Delivery, delivery_id, options=[joinedload(Delivery.broadcast).joinedload(Broadcast.notice)]
    )


def events_for(s: Session, delivery_ids: Sequence[int]) -> list[DeliveryEvent]:
    """Every event of these deliveries, by delivery, oldest first.

    The fan-out stores no ``queued`` event (one row per recipient would double its writes): it
    is derived from the delivery row (see ``queued_event``). A delivery whose ``queued`` event
    was stored (a fallback, or one queued by an earlier release) shows that one instead."""
    stored: dict[int, list[DeliveryEvent]] = {i: [] for i in delivery_ids}
    for e in s.scalars(
        select(DeliveryEvent)
        .where(DeliveryEvent.delivery_id.in_(delivery_ids))
        .order_by(DeliveryEvent.delivery_id, DeliveryEvent.id)
    ):
        stored[e.delivery_id].append(e)
    deliveries = s.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids)))
    for d in sorted(deliveries, key=lambda d: d.id):
        events = stored[d.id]
        if not any(e.kind == QUEUED for e in events):
            events.insert(0, queued_event(d, touched_since=bool(events)))
    return [e for i in sorted(stored) for e in stored[i]]


QUEUED = "queued"


def queued_event(d: Delivery, touched_since: bool) -> DeliveryEvent:
    """The ``queued`` event the fan-out implies, from the delivery row: at its creation, in the
    state the fan-out gave it. A skipped row is final and gets no event, so a delivery skipped
    with nothing stored since was skipped by the fan-out (its reason in ``error_message``);
    any other was queued pending (a later skip, e.g. an opt-out, stores its own event)."""
    skipped = d.state == DeliveryState.SKIPPED and not touched_since
    return DeliveryEvent(
        delivery_id=d.id,
        at=d.created_at,
        kind=QUEUED,
        state=(DeliveryState.SKIPPED if skipped else DeliveryState.PENDING).value,
        attempt=0,
        code=None,
        detail=d.error_message if skipped else None,
    )


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
