"""The queue of deliveries: claims with leases, outcomes, hand-backs, and the workers that hold
claims (heartbeats, and what a dead worker held).

Claims are a ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) followed by a conditional
``UPDATE``; every write that ends a claim checks that this worker still holds the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload, selectinload

from notifier.domain.deliveries import OPEN_STATES, DeliveryState, Outcome
from notifier.domain.notices import WITHDRAWN
from notifier.storage.models import Broadcast, Delivery, DeliveryEvent, Notice, Worker
from notifier.storage.rows import changed


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
    claimed = _move(
        s,
        ids,
        DeliveryState.PENDING,
        DeliveryState.SENDING,
        now,
        lease_until=lease_until,
        claimed_by=worker,
    )
    return sorted(claimed)


def deliveries_with_context(s: Session, ids: Sequence[int]) -> Sequence[Delivery]:
    """Deliveries with everything needed to render and send them: each with its patient in one
    query, and their few broadcasts, notices and locations once each (joined to every row, they
    were most of the loading's CPU)."""
    return (
        s.scalars(
            select(Delivery)
            .where(Delivery.id.in_(ids))
            .options(
                joinedload(Delivery.patient),
                selectinload(Delivery.broadcast)
                .selectinload(Broadcast.notice)
                .selectinload(Notice.location),
            )
            .order_by(Delivery.id)
        )
        .unique()
        .all()
    )


def record(s: Session, delivery_id: int, worker: str, outcome: Outcome, now: datetime) -> bool:
    """Store an attempt's outcome, only if this worker still holds the delivery."""
    return record_many(s, worker, [(delivery_id, outcome)], now)[0]


def record_many(
    s: Session, worker: str, outcomes: Sequence[tuple[int, Outcome]], now: datetime
) -> list[bool]:
    """``record`` for a batch in three statements (group commit): only deliveries this worker
    still holds are updated; returns, per outcome, whether it was stored. Core statements on
    the tables, made once per set of columns: the ORM's bulk update and insert cost more CPU
    per row than the database did (this runs once per message sent)."""
    ids = [delivery_id for delivery_id, _ in outcomes]
    # Locked until commit (PostgreSQL), so no other worker can recover these rows in between.
    held = set(s.scalars(_HELD, {"ids": ids, "worker": worker}))
    groups: dict[tuple[bool, bool, bool], list[dict[str, object]]] = {}
    events: list[dict[str, object]] = []
    for delivery_id, outcome in outcomes:
        if delivery_id not in held:
            continue
        state = outcome.state.value
        row: dict[str, object] = {
            "b_id": delivery_id,
            "state": state,
            "attempts": outcome.attempts,
            "needs_reconcile": outcome.needs_reconcile,
            "error_code": outcome.code,
            "error_message": outcome.detail,
            "updated_at": now,
        }
        shape = (
            outcome.provider_id is not None,
            outcome.segments is not None,
            outcome.next_attempt_at is not None,
        )
        if shape[0]:
            row["provider_id"] = outcome.provider_id
            row["sent_at"] = now
        if shape[1]:
            row["segments"] = outcome.segments
        if shape[2]:
            row["next_attempt_at"] = outcome.next_attempt_at
        groups.setdefault(shape, []).append(row)
        events.append(
            {
                "delivery_id": delivery_id,
                "at": now,
                "kind": outcome.event,
                "state": state,
                "attempt": outcome.attempts,
                "code": outcome.code,
                "detail": outcome.detail or outcome.provider_id,
            }
        )
    for shape, rows in groups.items():
        s.execute(_recorded(shape), rows)
    if events:
        s.execute(_EVENT, events)
    return [delivery_id in held for delivery_id, _ in outcomes]


_DELIVERIES = cast(Table, Delivery.__table__)
_HELD = (
    select(_DELIVERIES.c.id)
    .where(
        _DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        _DELIVERIES.c.state == DeliveryState.SENDING.value,
        _DELIVERIES.c.claimed_by == bindparam("worker"),
    )
    .with_for_update()
)
_EVENT = insert(cast(Table, DeliveryEvent.__table__))
_RECORDED: dict[tuple[bool, bool, bool], Update] = {}


def _recorded(shape: tuple[bool, bool, bool]) -> Update:
    """The outcome's UPDATE by id for rows with (provider id, segments, next attempt)."""
    statement = _RECORDED.get(shape)
    if statement is None:
        names = ["state", "attempts", "needs_reconcile", "error_code", "error_message"]
        names += ["updated_at"]
        names += ["provider_id", "sent_at"] if shape[0] else []
        names += ["segments"] if shape[1] else []
        names += ["next_attempt_at"] if shape[2] else []
        values: dict[str, object] = {name: bindparam(name) for name in names}
        values |= {"lease_until": None, "claimed_by": None}
        statement = _RECORDED[shape] = (
            update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id")).values(values)
        )
    return statement


def set_states(
    s: Session,
    ids: Sequence[int],
    from_state: DeliveryState,
    state: DeliveryState,
    now: datetime,
    event: str,
    detail: str,
) -> list[int]:
    """Move deliveries still in ``from_state`` to a final state without a provider call
    (cancelled, expired...); returns the ids that moved, each with its event. Conditional, so
    a delivery another process claimed meanwhile is left to it. A pending delivery taken over
    from a dead worker (``needs_reconcile``) may be at the provider: only its check settles it."""
    settled = [Delivery.needs_reconcile.is_(False)] if from_state is DeliveryState.PENDING else []
    moved = _move(
        s,
        ids,
        from_state,
        state,
        now,
        where=settled,
        error_message=detail,
        lease_until=None,
        claimed_by=None,
    )
    add_events(s, moved, now, event, state, detail=detail)
    return moved


def add_events(
    s: Session,
    ids: Sequence[int],
    now: datetime,
    kind: str,
    state: DeliveryState,
    *,
    attempt: int = 0,
    code: str | None = None,
    detail: str | None = None,
) -> None:
    """The same event for each delivery in ``ids`` (the append-only log)."""
    if ids:
        common = {"at": now, "kind": kind, "state": state.value, "attempt": attempt}
        s.execute(
            insert(DeliveryEvent),
            [common | {"delivery_id": i, "code": code, "detail": detail} for i in ids],
        )


def _move(
    s: Session,
    ids: Sequence[int],
    from_state: DeliveryState,
    to_state: DeliveryState,
    now: datetime,
    *,
    holder: str | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    **values: object,
) -> list[int]:
    """The one conditional move of the queue: those of ``ids`` still in ``from_state`` (and,
    with ``holder``, still claimed by it; and meeting ``where``) go to ``to_state``; returns
    the ids that moved."""
    conditions = [Delivery.id.in_(ids), Delivery.state == from_state.value, *where]
    if holder is not None:
        conditions.append(Delivery.claimed_by == holder)
    statement = (
        update(Delivery)
        .where(*conditions)
        .values(state=to_state.value, updated_at=now, **values)
        .returning(Delivery.id)
    )
    return list(s.scalars(statement))


def hand_back(
    s: Session,
    ids: Sequence[int],
    worker: str,
    now: datetime,
    until: datetime | None = None,
    event: str | None = None,
    detail: str | None = None,
) -> int:
    """Claimed deliveries this worker still holds become pending again, no attempt counted:
    at once (shutdown, or a batch that could not be prepared), or due at ``until`` (quiet
    hours). With ``event``, each gets that event, and ``detail`` is kept on the row as why it
    waits (the log's error/reason column) until its next outcome replaces it."""
    held = _move(
        s,
        ids,
        DeliveryState.SENDING,
        DeliveryState.PENDING,
        now,
        holder=worker,
        lease_until=None,
        claimed_by=None,
        next_attempt_at=Delivery.next_attempt_at if until is None else until,
        error_code=Delivery.error_code if detail is None else None,
        error_message=Delivery.error_message if detail is None else detail,
    )
    if event is not None:
        add_events(s, held, now, event, DeliveryState.PENDING, detail=detail)
    return len(held)


def retry_failed(
    s: Session, now: datetime, notice_id: int | None = None, within: frozenset[int] | None = None
) -> list[int]:
    """Re-queue failed deliveries on request (attempts kept), except where sending is pointless:
    a withdrawn notice or a closure that has ended (``ends_at > now``: see ``too_late``); only
    of the locations ``within`` (None: every location)."""
    query = (
        select(Delivery.id)
        .join(Delivery.broadcast)
        .join(Broadcast.notice)
        .where(
            Delivery.state == DeliveryState.FAILED,
            Notice.status.not_in(WITHDRAWN),
            Notice.ends_at > now,
        )
        .order_by(Delivery.id)
    )
    if notice_id is not None:
        query = query.where(Broadcast.notice_id == notice_id)
    if within is not None:
        query = query.where(Notice.location_id.in_(within))
    ids = list(s.scalars(query))
    if not ids:
        return []
    moved = _move(s, ids, DeliveryState.FAILED, DeliveryState.PENDING, now, next_attempt_at=now)
    add_events(
        s, moved, now, "retry_requested", DeliveryState.PENDING, detail="re-queued on request"
    )
    return moved


def has_open_deliveries(s: Session) -> bool:
    return bool(s.scalar(select(exists().where(Delivery.state.in_(OPEN_STATES)))))


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
    statement = (
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state.in_([e.value for e in earlier]))
        .values(**values)
    )
    return changed(s, statement) == 1


# --- workers: heartbeats, and claims left behind --------------------------------------------


def beat(s: Session, worker: str, role: str, now: datetime) -> None:
    """Say this worker is alive (registering it if it is new, or was presumed dead)."""
    if not changed(s, update(Worker).where(Worker.id == worker).values(heartbeat_at=now)):
        s.add(Worker(id=worker, role=role, started_at=now, heartbeat_at=now))
        s.flush()


def extend_leases(s: Session, worker: str, ids: Sequence[int], until: datetime) -> int:
    """Push out the leases of the deliveries this worker is still working on."""
    if not ids:
        return 0
    return changed(
        s,
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.state == DeliveryState.SENDING,
            Delivery.claimed_by == worker,
        )
        .values(lease_until=until),
    )


def forget_worker(s: Session, worker: str) -> None:
    s.execute(delete(Worker).where(Worker.id == worker))


def dead_workers(s: Session, stale_before: datetime) -> list[tuple[str, datetime]]:
    """Workers whose last heartbeat is older than ``stale_before``: (id, last heartbeat),
    their rows locked for this transaction. A row another transaction holds is a worker beating
    right now (``beat`` updates its row, then extends its leases): it is alive, and skipped.
    Locking the worker's row before its deliveries, as ``beat`` does, keeps the two from
    deadlocking (PostgreSQL; SQLite has one writer at a time)."""
    rows = s.execute(
        select(Worker.id, Worker.heartbeat_at)
        .where(Worker.heartbeat_at < stale_before)
        .order_by(Worker.heartbeat_at)
        .with_for_update(skip_locked=True)
    )
    return [(worker, at) for worker, at in rows]


STALLED_BATCH = 500


def stalled(
    s: Session, me: str, now: datetime, dead: Sequence[str], limit: int = STALLED_BATCH
) -> list[tuple[int, str | None]]:
    """Claims nobody is working on: held by a dead worker, or with their lease run out, and
    not ``me`` (a worker never takes over its own claims). (delivery id, who held it)."""
    query = (
        select(Delivery.id, Delivery.claimed_by)
        .where(
            Delivery.state == DeliveryState.SENDING,
            or_(Delivery.claimed_by.is_(None), Delivery.claimed_by != me),
            or_(Delivery.claimed_by.in_(dead), Delivery.lease_until < now),
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(delivery_id, worker) for delivery_id, worker in s.execute(query)]


def take_over(
    s: Session, delivery_id: int, worker: str | None, now: datetime, event: str, why: str
) -> bool:
    """A claim whose worker is gone becomes pending again: the interrupted attempt counts, and
    the provider is checked before any resend (the send may have gone out). It keeps its due
    time, which is before anything still waiting, so it goes ahead of a backlog."""
    moved = _move(
        s,
        [delivery_id],
        DeliveryState.SENDING,
        DeliveryState.PENDING,
        now,
        holder=worker,
        attempts=Delivery.attempts + 1,
        needs_reconcile=True,
        lease_until=None,
        claimed_by=None,
    )
    detail = f"{why}; the provider will be checked before any resend"
    add_events(s, moved, now, event, DeliveryState.PENDING, detail=detail)
    return bool(moved)
