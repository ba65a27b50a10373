"""The inbox's SQL: conversations, their messages, the notice a text most likely answers, the
closures an auto-reply speaks of, the queue answers and auto-replies go out through (claimed
with a lease, as deliveries are), and erasing bodies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from notifier.domain.conversations import OUTGOING, MessageState
from notifier.domain.erasure import ERASED
from notifier.domain.notices import BroadcastStatus, NoticeChange, NoticeStatus
from notifier.storage.models import (
    Broadcast,
    Conversation,
    ConversationMessage,
    Delivery,
    Location,
    Notice,
)
from notifier.storage.rows import changed, insert_new

ANNOUNCED = (BroadcastStatus.SENDING, BroadcastStatus.DONE)


def latest_delivery_to(s: Session, channels: Sequence[str], address: str) -> Delivery | None:
    """The newest delivery to ``address`` on any of ``channels``: the notice a text answers."""
    return s.scalars(
        select(Delivery)
        .where(Delivery.channel.in_(channels), Delivery.address == address)
        .order_by(Delivery.id.desc())
        .limit(1)
    ).first()


def notice_id_of(s: Session, delivery: Delivery) -> int:
    return int(
        s.scalars(select(Broadcast.notice_id).where(Broadcast.id == delivery.broadcast_id)).one()
    )


def find(s: Session, location_id: int | None, channel: str, address: str) -> Conversation | None:
    where = (
        Conversation.location_id == location_id
        if location_id is not None
        else Conversation.location_id.is_(None)
    )
    return s.scalars(
        select(Conversation).where(
            where, Conversation.channel == channel, Conversation.address == address
        )
    ).first()


def add_or_find(
    s: Session, location_id: int | None, channel: str, address: str, now: datetime
) -> Conversation:
    """The number's conversation in the location, made if need be: two first texts at once
    make one (the unique key decides; PostgreSQL waits for the other transaction)."""
    insert_new(
        s,
        Conversation,
        location_id=location_id,
        channel=channel,
        address=address,
        unread=0,
        done=False,
        last_message_at=now,
        created_at=now,
    )
    found = find(s, location_id, channel, address)
    assert found is not None
    return found


def get(s: Session, conversation_id: int) -> Conversation | None:
    return s.get(Conversation, conversation_id)


def add_message_once(s: Session, message: ConversationMessage) -> ConversationMessage | None:
    """Store a message unless its provider id or its auto-reply version is there already (a
    replayed webhook, the same patient's second text during one closure): None then."""
    values = {  # what is unset takes the column's default
        c.key: getattr(message, c.key)
        for c in ConversationMessage.__table__.columns
        if c.key != "id" and getattr(message, c.key) is not None
    }
    if not insert_new(s, ConversationMessage, **values):
        return None
    key: ColumnElement[bool]
    if message.provider_id is not None:
        key = ConversationMessage.provider_id == message.provider_id
    else:
        key = ConversationMessage.auto_notice_id == message.auto_notice_id
    return s.scalars(
        select(ConversationMessage).where(
            ConversationMessage.conversation_id == message.conversation_id,
            ConversationMessage.channel == message.channel,
            key,
        )
    ).one()


def add_message(s: Session, message: ConversationMessage) -> ConversationMessage:
    s.add(message)
    s.flush()
    return message


def message(s: Session, message_id: int) -> ConversationMessage | None:
    return s.get(ConversationMessage, message_id)


# --- the outgoing queue ----------------------------------------------------------------------


def claim_answers(
    s: Session,
    worker: str,
    channels: Sequence[str],
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[int]:
    """Atomically take up to ``limit`` due queued answers and auto-replies for this worker."""
    due = list(
        s.scalars(
            select(ConversationMessage.id)
            .where(
                ConversationMessage.state == MessageState.QUEUED,
                ConversationMessage.next_attempt_at <= now,
                ConversationMessage.channel.in_(list(channels)),
            )
            .order_by(ConversationMessage.next_attempt_at, ConversationMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    claimed = []
    for message_id in due:  # a conditional UPDATE each: two workers never both win one
        if changed(
            s,
            update(ConversationMessage)
            .where(
                ConversationMessage.id == message_id,
                ConversationMessage.state == MessageState.QUEUED,
            )
            .values(
                state=MessageState.SENDING,
                claimed_by=worker,
                lease_until=lease_until,
                updated_at=now,
            )
            .execution_options(synchronize_session=False),
        ):
            claimed.append(message_id)
    return claimed


def answer_to_send(s: Session, message_id: int) -> tuple[ConversationMessage, Conversation] | None:
    found = s.get(ConversationMessage, message_id)
    if found is None:
        return None
    conversation = s.get(Conversation, found.conversation_id)
    assert conversation is not None
    return found, conversation


def record_answer(
    s: Session, message_id: int, worker: str, now: datetime, **values: object
) -> bool:
    """An attempt's outcome, kept only if this worker still holds the claim."""
    return bool(
        changed(
            s,
            update(ConversationMessage)
            .where(
                ConversationMessage.id == message_id,
                ConversationMessage.state == MessageState.SENDING,
                ConversationMessage.claimed_by == worker,
            )
            .values(claimed_by=None, lease_until=None, updated_at=now, **values)
            .execution_options(synchronize_session=False),
        )
    )


def release_stalled_answers(s: Session, now: datetime) -> int:
    """Claims whose lease ran out (their worker died mid-send) → queued again, the provider
    to be asked before any resend; how many."""
    return changed(
        s,
        update(ConversationMessage)
        .where(
            ConversationMessage.state == MessageState.SENDING,
            ConversationMessage.author.in_(OUTGOING),
            (ConversationMessage.lease_until < now) | ConversationMessage.lease_until.is_(None),
        )
        .values(
            state=MessageState.QUEUED,
            claimed_by=None,
            lease_until=None,
            needs_reconcile=True,
            next_attempt_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False),
    )


def answers_waiting(s: Session) -> bool:
    """Any answer or auto-reply queued or in a worker's hands."""
    return (
        s.scalars(
            select(ConversationMessage.id)
            .where(ConversationMessage.state.in_((MessageState.QUEUED, MessageState.SENDING)))
            .limit(1)
        ).first()
        is not None
    )


def page(
    s: Session, location_ids: Sequence[int] | None, location_id: int | None, limit: int
) -> Sequence[Conversation]:
    """Conversations, newest first: of ``location_id`` if given, else of ``location_ids``
    (None: every location, and the unplaced ones)."""
    query = select(Conversation)
    if location_id is not None:
        query = query.where(Conversation.location_id == location_id)
    elif location_ids is not None:
        query = query.where(Conversation.location_id.in_(location_ids))
    return s.scalars(
        query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit)
    ).all()


def unread_count(s: Session, location_ids: Sequence[int] | None) -> int:
    """How many conversations have texts nobody has opened, in ``location_ids`` (None: every
    location, and the unplaced ones), as ``page`` lists them."""
    query = select(func.count()).select_from(Conversation).where(Conversation.unread > 0)
    if location_ids is not None:
        query = query.where(Conversation.location_id.in_(location_ids))
    return int(s.scalar(query) or 0)


def messages_of(
    s: Session, conversation_ids: Sequence[int]
) -> dict[int, list[ConversationMessage]]:
    found: dict[int, list[ConversationMessage]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return found
    for row in s.scalars(
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id.in_(conversation_ids))
        .order_by(ConversationMessage.at, ConversationMessage.id)
    ):
        found[row.conversation_id].append(row)
    return found


def waiting(s: Session, since_before: datetime) -> Sequence[Conversation]:
    """Open conversations with a text unanswered since before ``since_before``."""
    return s.scalars(
        select(Conversation)
        .where(
            Conversation.done.is_(False),
            Conversation.waiting_since.is_not(None),
            Conversation.waiting_since < since_before,
        )
        .order_by(Conversation.waiting_since)
    ).all()


def locations(s: Session, ids: Sequence[int]) -> dict[int, Location]:
    if not ids:
        return {}
    return {row.id: row for row in s.scalars(select(Location).where(Location.id.in_(ids)))}


def closures(s: Session, location_id: int, now: datetime) -> Sequence[Notice]:
    """The location's announced closures not over yet (current first, then upcoming): active
    versions that close the doors, with a broadcast that went out."""
    announced = select(Broadcast.notice_id).where(Broadcast.status.in_(ANNOUNCED))
    return s.scalars(
        select(Notice)
        .where(
            Notice.location_id == location_id,
            Notice.status == NoticeStatus.ACTIVE,
            Notice.change != NoticeChange.CANCELLATION,
            Notice.ends_at > now,
            Notice.id.in_(announced),
        )
        .order_by(Notice.starts_at, Notice.id)
    ).all()


def erase_before(s: Session, cutoff: datetime, now: datetime) -> int:
    """Bodies and numbers of what is older than ``cutoff`` → erased (states and times stay)."""
    return _erase(
        s, now, [ConversationMessage.at < cutoff], [Conversation.last_message_at < cutoff]
    )


def erase_of(s: Session, patient_id: int, addresses: Sequence[str], now: datetime) -> int:
    """Every body of a patient's conversations (by patient or by number), and the numbers."""
    of = (Conversation.patient_id == patient_id) | Conversation.address.in_(addresses)
    ids = select(Conversation.id).where(of)
    return _erase(s, now, [ConversationMessage.conversation_id.in_(ids)], [of])


def _erase(
    s: Session,
    now: datetime,
    messages: Sequence[ColumnElement[bool]],
    conversations: Sequence[ColumnElement[bool]],
) -> int:
    erased = changed(
        s,
        update(ConversationMessage)
        .where(*messages, ConversationMessage.erased_at.is_(None))
        .values(body=None, error_message=None, erased_at=now)
        .execution_options(synchronize_session=False),
    )
    s.execute(
        update(Conversation)
        .where(*conversations, Conversation.address.not_like(f"{ERASED}%"))
        .values(address=literal(ERASED) + cast(Conversation.id, String))
        .execution_options(synchronize_session=False)
    )
    return erased
