"""Outcomes of provider calls: the dispatcher's decision (sent, retry, failed, expired) and the
group commit that records them.

The channel classifies a failure (permanent, ambiguous, Retry-After); here it becomes a state.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.clock import Clock
from notifier.delivery import faults
from notifier.domain.deliveries import DeliveryState, Outcome, retry_delay
from notifier.domain.notices import too_late
from notifier.settings import Settings
from notifier.storage.engine import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """A claimed delivery with its rendered message, detached from any session."""

    delivery_id: int
    notice_id: int
    channel: str
    message: OutgoingMessage
    attempts: int
    needs_reconcile: bool
    created_at: datetime
    closure_ends: datetime
    cost: int  # units against the channel's rate: SMS segments, else 1


def sent(item: WorkItem, result: SendResult, attempts: int, event: str) -> Outcome:
    return Outcome(
        DeliveryState.SENT,
        event,
        attempts,
        provider_id=result.provider_id,
        segments=result.segments or item.cost,
    )


def withdrawn(item: WorkItem) -> Outcome:
    """Its notice was cancelled or replaced while the message waited: not sent (a later version
    tells this address what it needs to know)."""
    return Outcome(
        DeliveryState.CANCELLED,
        "withdrawn",
        item.attempts,
        detail="the notice was cancelled or replaced before this message went out",
    )


def opted_out(item: WorkItem) -> Outcome:
    """Its address opted out (a STOP) while the message waited: not sent."""
    return Outcome(DeliveryState.SKIPPED, "skipped", item.attempts, detail="opted out")


def failed(
    item: WorkItem, error: ChannelError, settings: Settings, now: datetime, jitter: float
) -> Outcome:
    """The channel classified the failure; here we decide: fail, retry, or expire."""
    attempts = item.attempts + 1
    if error.permanent:
        return Outcome(
            DeliveryState.FAILED, "failed", attempts, code=error.code, detail=error.message
        )
    if attempts >= settings.max_attempts:
        return Outcome(
            DeliveryState.FAILED,
            "failed",
            attempts,
            code=error.code,
            detail=f"gave up after {attempts} attempts; last error: {error.message}",
            needs_reconcile=error.ambiguous,
        )
    delay = retry_delay(
        attempts, settings.retry_base_seconds, settings.retry_max_seconds, jitter, error.retry_after
    )
    next_attempt = now + timedelta(seconds=delay)
    if too_late(item.closure_ends, next_attempt):
        return Outcome(
            DeliveryState.EXPIRED,
            "expired",
            attempts,
            code=error.code,
            detail=f"the closure ends before the next retry; last error: {error.message}",
        )
    return Outcome(
        DeliveryState.PENDING,
        "retry_scheduled",
        attempts,
        code=error.code,
        detail=f"{error.message} (retry in {delay:.0f}s)",
        next_attempt_at=next_attempt,
        needs_reconcile=error.ambiguous,
    )


Write = Callable[[Session, Sequence[tuple[WorkItem, Outcome]], datetime], list[bool]]


@dataclass
class _Pending:
    item: WorkItem
    outcome: Outcome
    result: Future[bool]


class OutcomeWriter:
    """Group commit of outcomes. Senders hand their outcome over and wait until it is committed
    (so "committed after the provider call" holds for each of them), while one thread writes
    everything that arrived during the previous commit in a single transaction. On SQLite with
    ``synchronous=FULL`` a commit costs an fsync, and one commit per message capped the dispatcher
    at ~330 messages/s; batching costs a sender no more than one commit's wait.
    """

    MAX_BATCH = 500

    def __init__(self, db: Database, clock: Clock, write: Write) -> None:
        self._db = db
        self._clock = clock
        self._write = write
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def write(self, item: WorkItem, outcome: Outcome) -> bool:
        """Store ``outcome`` for ``item``; True if this worker still held the delivery."""
        pending = _Pending(item, outcome, Future())
        with self._start_lock:
            if self._thread is None:  # each thread gets its own queue: close() cannot strand one
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="outcomes", daemon=True
                )
                self._thread.start()
            self._queue.put(pending)
        return pending.result.result()

    def close(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _run(self, pending: queue.SimpleQueue[_Pending | None]) -> None:
        while True:
            first = pending.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    more = pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            now = self._clock.now()
            with self._db.session() as s:
                kept = self._write(s, [(p.item, p.outcome) for p in batch], now)
        except Exception as error:
            if len(batch) == 1:
                faults.log_failure(
                    log,
                    "could not record a delivery outcome",
                    error,
                    delivery_id=batch[0].item.delivery_id,
                )
                batch[0].result.set_result(False)
                return
            for pending in batch:  # one bad row must not take the others with it
                self._commit([pending])
            return
        for pending, result in zip(batch, kept, strict=True):
            pending.result.set_result(result)
