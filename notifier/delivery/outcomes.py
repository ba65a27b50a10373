"""The group commit that records the outcomes of provider calls (the decisions themselves are the
domain's: ``notifier.domain.deliveries.sent``, ``failed``, ``withdrawn``)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from notifier.channels.base import OutgoingMessage
from notifier.clock import Clock
from notifier.delivery import faults
from notifier.domain.batches import batch_then_each
from notifier.domain.channels import ChannelSpec
from notifier.domain.deliveries import Outcome
from notifier.storage import deliveries as delivery_rows
from notifier.storage.engine import Database
from notifier.usecases.consent import on_send_outcome
from notifier.usecases.fallback import curable, take_over

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

    def __init__(
        self, db: Database, clock: Clock, worker_id: str, specs: Mapping[str, ChannelSpec]
    ) -> None:
        self._db = db
        self._clock = clock
        self._worker_id = worker_id
        self._specs = dict(specs)
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
        kept = batch_then_each(batch, self._store, splits=lambda error: True, alone=self._lost)
        for pending, result in zip(batch, kept, strict=True):
            pending.result.set_result(result)

    def _store(self, batch: Sequence[_Pending]) -> list[bool]:
        """One transaction: the outcomes, and what a refusal says about the address."""
        now = self._clock.now()
        with self._db.session() as s:
            pairs = [(p.item.delivery_id, p.outcome) for p in batch]
            kept = delivery_rows.record_many(s, self._worker_id, pairs, now)
            fallen: list[int] = []
            for pending, stored in zip(batch, kept, strict=True):
                if stored:  # a send refused because the address unsubscribed with the provider
                    spec = self._specs[pending.item.channel]
                    on_send_outcome(s, spec, pending.item.message.to, pending.outcome.code, now)
                    if curable(spec, pending.outcome.state, pending.outcome.code):
                        fallen.append(pending.item.delivery_id)
            take_over(s, self._specs, fallen, now)  # the notice's fallback, if it has one
        return kept

    def _lost(self, pending: _Pending, error: Exception) -> list[bool]:
        """Not recorded: its lease runs out and the claim is taken over (provider asked first)."""
        faults.log_failure(
            log, "could not record a delivery outcome", error, delivery_id=pending.item.delivery_id
        )
        return [False]
