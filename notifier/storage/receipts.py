"""The receipts intake: providers' reports appended once per (channel, provider id, status),
claimed in batches to be applied, then marked; and the deliveries left "sent" to ask about."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier.domain.deliveries import DeliveryState
from notifier.storage.models import (
    ConversationMessage,
    Delivery,
    DeliveryEvent,
    ProviderCheck,
    Receipt,
)
from notifier.storage.rows import changed

_KEY = ["channel", "provider_id", "status"]


@dataclass(frozen=True)
class Found:
    """A delivery a report names: its id and state when the batch was claimed."""

    delivery_id: int
    state: DeliveryState
    attempts: int = 0  # provider calls made so far (a call redialled counts each)


def append(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add reports to the intake; one already there (same channel, provider id and status)
    is left as it is (``INSERT … ON CONFLICT DO NOTHING``)."""
    if not rows:
        return
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    s.execute(dialect.insert(Receipt).on_conflict_do_nothing(index_elements=_KEY), list(rows))


@dataclass(frozen=True, slots=True)
class Claimed:
    """A stored report claimed to be applied (plain values: a batch is read, not edited)."""

    id: int
    channel: str
    provider_id: str
    status: str
    error_code: str | None
    error_message: str | None
    received_at: datetime


def claim(s: Session, now: datetime, limit: int) -> list[Claimed]:
    """Up to ``limit`` reports due to be applied, oldest first, locked for this transaction
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite runs one writer at a time)."""
    rows = s.execute(
        select(
            Receipt.id,
            Receipt.channel,
            Receipt.provider_id,
            Receipt.status,
            Receipt.error_code,
            Receipt.error_message,
            Receipt.received_at,
        )
        .where(Receipt.applied_at.is_(None), Receipt.due_at <= now)
        .order_by(Receipt.due_at, Receipt.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Claimed(*row) for row in rows]


def deliveries_for(s: Session, provider_ids: Sequence[str]) -> dict[str, Found]:
    """The deliveries the reports name, locked for this transaction in id order (PostgreSQL;
    SQLite has one writer at a time), so their states stay as read until the batch commits."""
    rows = s.execute(
        select(Delivery.provider_id, Delivery.id, Delivery.state, Delivery.attempts)
        .where(Delivery.provider_id.in_(provider_ids))
        .order_by(Delivery.id)
        .with_for_update()
    )
    return {
        sid: Found(i, DeliveryState(state), attempts or 0)
        for sid, i, state, attempts in rows
        if sid is not None
    }


def answers_for(s: Session, provider_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """The staff answers and auto-replies (conversation messages) the reports name: their id
    and state, locked as the deliveries are."""
    rows = s.execute(
        select(ConversationMessage.provider_id, ConversationMessage.id, ConversationMessage.state)
        .where(ConversationMessage.provider_id.in_(provider_ids))
        .where(ConversationMessage.author != "patient")
        .order_by(ConversationMessage.id)
        .with_for_update()
    )
    return {sid: (i, state) for sid, i, state in rows if sid is not None}


def advance_answers(
    s: Session, changes: Sequence[tuple[int, str, str | None, str | None]], now: datetime
) -> None:
    """Move answers to the states their reports gave: (id, state, error code, error text);
    an answer's earlier error is kept when a report carries none. Answers are few: one
    statement each."""
    for message_id, state, code, error in changes:
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if code is not None:
            values |= {"error_code": code, "error_message": error}
        s.execute(
            update(ConversationMessage).where(ConversationMessage.id == message_id).values(values)
        )


def redial(s: Session, rows: Sequence[tuple[int, datetime]], now: datetime) -> None:
    """Deliveries still "sent" whose call met a busy line or no answer: pending again, due at
    the time given (quiet hours are checked when they are claimed)."""
    for delivery_id, due in rows:
        s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SENT.value)
            .values(
                state=DeliveryState.PENDING.value,
                next_attempt_at=due,
                lease_until=None,
                claimed_by=None,
                updated_at=now,
            )
        )


def advance(s: Session, changes: Sequence[dict[str, Any]], now: datetime) -> None:
    """Move each delivery from the state it was read in (``was``) to ``state``, with the error
    ``code`` and ``detail`` when the report carried a code; one statement per kind of change.
    Raises if any moved meanwhile (the batch then rolls back and is applied again)."""
    table = cast(Table, Delivery.__table__)
    common = update(table).where(
        table.c.id == bindparam("b_id"), table.c.state == bindparam("b_was")
    )
    plain = common.values(state=bindparam("b_state"), updated_at=now)
    coded = plain.values(error_code=bindparam("b_code"), error_message=bindparam("b_detail"))
    connection = s.connection()
    for statement, rows in (
        (plain, [c for c in changes if c["b_code"] is None]),
        (coded, [c for c in changes if c["b_code"] is not None]),
    ):
        if rows:
            params = rows if statement is coded else [_without_error(c) for c in rows]
            moved = connection.execute(statement, params).rowcount
            if moved != len(rows):
                raise StaleStates(f"{len(rows) - moved} deliveries changed while reports applied")


class StaleStates(RuntimeError):
    """A delivery moved while a batch of reports was being applied to it."""


def _without_error(change: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in change.items() if k not in ("b_code", "b_detail")}


def add_events(s: Session, events: Sequence[dict[str, Any]]) -> None:
    if events:
        s.execute(insert(DeliveryEvent), list(events))


def mark(s: Session, outcomes: Sequence[tuple[int, str]], now: datetime) -> None:
    """Reports applied (or given up on), with what they did."""
    if outcomes:
        s.execute(
            update(Receipt),
            [{"id": i, "applied_at": now, "outcome": outcome} for i, outcome in outcomes],
        )


def postpone(s: Session, ids: Sequence[int], until: datetime) -> None:
    """Reports for a message not known yet (the callback overtook our commit of the send)."""
    if ids:
        s.execute(update(Receipt).where(Receipt.id.in_(ids)).values(due_at=until))


def waiting(s: Session) -> int:
    """How many reports are not applied yet (due or postponed)."""
    return s.scalar(select(func.count(Receipt.id)).where(Receipt.applied_at.is_(None))) or 0


def purge(s: Session, applied_before: datetime) -> int:
    return changed(
        s,
        delete(Receipt).where(Receipt.applied_at.is_not(None), Receipt.applied_at < applied_before),
    )


# --- reconciliation: deliveries whose final report never came ---------------------------------


def stale_sent(
    s: Session, channel: str, sent_before: datetime, sent_after: datetime, limit: int
) -> list[tuple[int, str, datetime]]:
    """Deliveries "sent" between ``sent_after`` and ``sent_before`` and not asked about since
    ``sent_before``, oldest first: (delivery id, provider id, sent at). Each is marked asked now,
    in the caller's transaction, so another process running the same query skips it."""
    asked = ProviderCheck.checked_at
    query = (
        select(Delivery.id, Delivery.provider_id, Delivery.sent_at)
        .outerjoin(ProviderCheck, ProviderCheck.delivery_id == Delivery.id)
        .where(
            Delivery.channel == channel,
            Delivery.state == DeliveryState.SENT,
            Delivery.provider_id.is_not(None),
            Delivery.sent_at < sent_before,
            Delivery.sent_at >= sent_after,
            or_(asked.is_(None), asked < sent_before),
        )
        .order_by(Delivery.sent_at, Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    )
    return [(i, sid, at) for i, sid, at in s.execute(query) if sid is not None and at is not None]


def checked(s: Session, delivery_ids: Sequence[int], now: datetime) -> None:
    if not delivery_ids:
        return
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ProviderCheck)
    s.execute(
        statement.on_conflict_do_update(
            index_elements=["delivery_id"], set_={"checked_at": statement.excluded.checked_at}
        ),
        [{"delivery_id": i, "checked_at": now} for i in delivery_ids],
    )
