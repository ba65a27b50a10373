"""The dispatcher: claims due deliveries, sends them through channels, records every outcome.

Crash safety: a delivery is committed as ``sending`` (with a lease) before the provider call and
committed again with the outcome after it. If the process dies in between, the lease expires and
the delivery is checked against the provider (``Channel.find_sent``) before any resend.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from notifier import consent, store
from notifier.channels.base import Channel, ChannelError, OutgoingMessage, SendResult
from notifier.clock import Clock
from notifier.contacts import mask_address
from notifier.db import Database
from notifier.domain import DeliveryState, NoticeStatus, retry_delay
from notifier.errors import TemplateError
from notifier.models import Delivery
from notifier.quiet_hours import hold_if_quiet
from notifier.ratelimit import TokenBucket
from notifier.rendering import MessageContext, Renderer
from notifier.service import delivery_message, resolve_language
from notifier.settings import Settings
from notifier.unsubscribe import unsubscribe_headers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """A claimed delivery with its rendered message, detached from any session."""

    delivery_id: int
    channel: str
    message: OutgoingMessage
    attempts: int
    needs_reconcile: bool
    created_at: datetime
    closure_ends: datetime
    segments: int


class OutcomeWriter:
    """Group commit of outcomes. Senders hand their outcome over and wait until it is committed
    (so "committed after the provider call" holds for each of them), while one thread writes
    everything that arrived during the previous commit in a single transaction. On SQLite with
    ``synchronous=FULL`` a commit costs an fsync, and one commit per message capped the dispatcher
    at ~330 messages/s; batching costs a sender no more than one commit's wait.
    """

    MAX_BATCH = 500

    def __init__(
        self,
        db: Database,
        clock: Clock,
        write: Callable[[Session, list[tuple[WorkItem, store.Outcome]], datetime], list[bool]],
    ) -> None:
        self._db = db
        self._clock = clock
        self._write = write
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def write(self, item: WorkItem, outcome: store.Outcome) -> bool:
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
        except Exception:
            if len(batch) == 1:
                log.exception("could not record a delivery outcome")
                batch[0].result.set_result(False)
                return
            for pending in batch:  # one bad row must not take the others with it
                self._commit([pending])
            return
        for pending, result in zip(batch, kept, strict=True):
            pending.result.set_result(result)


@dataclass
class _Pending:
    item: WorkItem
    outcome: store.Outcome
    result: Future[bool]


class Dispatcher:
    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        renderer: Renderer,
        clock: Clock,
        settings: Settings,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.channels = channels
        self.renderer = renderer
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.rng = rng or random.Random()
        self.limiters = {
            "sms": TokenBucket(settings.sms_rate_per_second),
            "email": TokenBucket(settings.email_rate_per_second),
        }
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.dispatch_concurrency, thread_name_prefix="send"
        )
        self._in_flight: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._outcomes = OutcomeWriter(db, clock, self._record)
        self._render_cache: dict[tuple[str, str, str], Any] = {}
        self._language_list: list[str] | None = None

    # --- the loop -------------------------------------------------------------------------

    def drain(self) -> int:
        """Send everything due now; return how many deliveries were handled."""
        handled = 0
        self.recover_leases()
        while not self.stopping.is_set():
            room = self._room()
            if room <= 0 or (room < self._min_claim() and self._busy()):
                # Claim in batches, not one by one as sends finish: every claim is a write
                # transaction, and a stream of tiny ones was half of the dispatcher's DB time.
                self._wait_for_completion()
                continue
            items = self._claim(room)
            if not items:
                if not self._wait_for_completion(nothing_claimed=True):
                    break
                continue
            handled += len(items)
            for item in items:
                future = self._pool.submit(self._deliver, item)
                with self._lock:
                    self._in_flight.add(future)
                future.add_done_callback(self._finished)
        self._wait_all()
        self._outcomes.close()  # restarted by the next write
        return handled

    def stop(self) -> None:
        """Stop claiming; in-flight sends finish, claimed-but-unsent deliveries are released."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self._outcomes.close()
        for channel in self.channels.values():
            channel.close()

    def _room(self) -> int:
        """How many more deliveries to claim: enough to keep every sender busy, but not so many
        that some would wait out their lease behind the rate limit."""
        with self._lock:
            in_flight = len(self._in_flight)
        rate = sum(self.limiters[name].rate for name in self.channels)
        ceiling = max(
            1,
            min(
                self.settings.dispatch_concurrency * 2,
                int(rate * self.settings.lease_seconds / 4),
            ),
        )
        return min(self.settings.dispatch_batch_size, ceiling - in_flight)

    def _min_claim(self) -> int:
        return max(
            1, min(self.settings.dispatch_batch_size, self.settings.dispatch_concurrency) // 4
        )

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
            self._done.notify_all()
        if future.exception() is not None:  # _deliver records its own errors; this is a bug
            log.error("delivery task crashed", exc_info=future.exception())

    def _wait_for_completion(self, nothing_claimed: bool = False) -> bool:
        """Wait for a send to finish. False when there is nothing in flight to wait for."""
        with self._lock:
            if not self._in_flight:
                return not nothing_claimed
            self._done.wait(timeout=self.settings.poll_interval_seconds)
            return True

    def _wait_all(self) -> None:
        with self._lock:
            while self._in_flight:
                self._done.wait(timeout=1.0)

    # --- claiming and preparing -----------------------------------------------------------

    def recover_leases(self) -> int:
        now = self.clock.now()
        recovered = 0
        with self.db.session() as s:
            for delivery_id in store.expired_leases(s, now):
                recovered += store.recover_lease(s, delivery_id, now)
        if recovered:
            log.warning(
                "recovered deliveries whose worker stopped mid-send",
                extra={"action": "leases_recovered", "count": recovered},
            )
        return recovered

    def _claim(self, limit: int) -> list[WorkItem]:
        self._language_list = None
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.db.session() as s:
            ids = store.claim(s, self.worker_id, self.channels, now, lease_until, limit)
        if not ids:
            return []
        items: list[WorkItem] = []
        cancelled: list[int] = []
        expired: list[int] = []
        with self.db.session() as s:
            for delivery in store.deliveries_with_context(s, ids):
                notice = delivery.broadcast.notice
                if notice.status in (NoticeStatus.CANCELLED, NoticeStatus.SUPERSEDED):
                    cancelled.append(delivery.id)
                elif now >= notice.ends_at:
                    expired.append(delivery.id)
                elif hold_if_quiet(s, delivery, self.settings.quiet_hours, self.worker_id, now):
                    continue  # issue 5: quiet hours deferred (or expired) it
                else:
                    item = self._prepare(s, delivery, now)
                    if item is not None:
                        items.append(item)
            if cancelled:
                store.set_states(
                    s, cancelled, DeliveryState.CANCELLED, now, "cancelled", "notice cancelled"
                )
            if expired:
                store.set_states(
                    s,
                    expired,
                    DeliveryState.EXPIRED,
                    now,
                    "expired",
                    "the closure was over before this message could be sent",
                )
        return items

    def _languages(self) -> list[str]:
        """The renderer's languages, looked up (a directory listing) once per claim batch."""
        if self._language_list is None:
            self._language_list = self.renderer.languages()
        return self._language_list

    def _rendered(self, channel: str, template: str, ctx: MessageContext) -> Any:
        """Render, remembering results: a broadcast has a handful of distinct contexts (language,
        first name...), and rendering was most of the claim loop's time (~0.6 ms a message)."""
        key = (channel, template, repr(ctx))
        found = self._render_cache.get(key)
        if found is None:
            render = self.renderer.render_sms if channel == "sms" else self.renderer.render_email
            found = render(ctx, template)
            if len(self._render_cache) >= 4096:
                self._render_cache.clear()
            self._render_cache[key] = found
        return found

    def _prepare(self, s: Session, delivery: Delivery, now: datetime) -> WorkItem | None:
        """Render the delivery's message; a template that fails here fails the delivery."""
        notice = delivery.broadcast.notice
        location = notice.location
        language = resolve_language(
            delivery.patient.language, location.default_language, self._languages()
        )
        ctx, template = delivery_message(s, delivery, language)  # issue 7: appointments
        try:
            if delivery.channel == "sms":
                sms = self._rendered("sms", template, ctx)
                message = OutgoingMessage(delivery.id, delivery.address, sms.text)
                segments = sms.info.segments
            else:
                email = self._rendered("email", template, ctx)
                message = OutgoingMessage(
                    delivery.id,
                    delivery.address,
                    email.text,
                    email.subject,
                    email.html,
                    unsubscribe_headers(self.settings, delivery.patient_id, delivery.address),
                )
                segments = 1
        except TemplateError as exc:
            store.record(
                s,
                delivery.id,
                self.worker_id,
                store.Outcome(
                    DeliveryState.FAILED,
                    "failed",
                    delivery.attempts,
                    code="template",
                    detail=str(exc),
                ),
                now,
            )
            return None
        return WorkItem(
            delivery_id=delivery.id,
            channel=delivery.channel,
            message=message,
            attempts=delivery.attempts,
            needs_reconcile=delivery.needs_reconcile,
            created_at=delivery.created_at,
            closure_ends=notice.ends_at,
            segments=segments,
        )

    # --- sending --------------------------------------------------------------------------

    def _deliver(self, item: WorkItem) -> None:
        channel = self.channels[item.channel]
        try:
            outcome = self._attempt(channel, item)
        except Exception as exc:  # a bug or an unexpected library error: never lose the row
            log.exception(
                "unexpected error while sending",
                extra={"action": "delivery_error", "delivery_id": item.delivery_id},
            )
            outcome = self._failure(
                item,
                ChannelError(
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    code="internal",
                    ambiguous=True,
                ),
            )
        if outcome is None:  # shutting down before the provider call
            with self.db.session() as s:
                store.release(s, [item.delivery_id], self.worker_id, self.clock.now())
            return
        kept = self._outcomes.write(item, outcome)
        level = logging.INFO if outcome.state != DeliveryState.FAILED else logging.WARNING
        log.log(
            level,
            "delivery %s",
            outcome.event,
            extra={
                "action": f"delivery_{outcome.event}",
                "delivery_id": item.delivery_id,
                "channel": item.channel,
                "to": mask_address(item.message.to),
                "attempt": outcome.attempts,
                "code": outcome.code,
                "stale": not kept,
            },
        )

    def _record(
        self, s: Session, batch: list[tuple[WorkItem, store.Outcome]], now: datetime
    ) -> list[bool]:
        """A batch of outcomes, inside the writer's one transaction."""
        pairs = [(item.delivery_id, outcome) for item, outcome in batch]
        kept = store.record_many(s, self.worker_id, pairs, now)
        for (item, outcome), stored in zip(batch, kept, strict=True):
            if stored:  # issue 5: a send refused as unsubscribed (21610) records the opt-out
                consent.on_send_outcome(s, item.channel, item.message.to, outcome.code, self.clock)
        return kept

    def _attempt(self, channel: Channel, item: WorkItem) -> store.Outcome | None:
        attempt = item.attempts + 1
        try:
            if item.needs_reconcile:
                since = item.created_at - timedelta(minutes=5)
                found = channel.find_sent(item.message, since)
                if found is not None:
                    return self._sent(item, found, item.attempts, "reconciled")
            if not self.limiters[item.channel].acquire(item.segments, self.stopping):
                return None
            if self.stopping.is_set():
                return None
            result = channel.send(item.message)
        except ChannelError as exc:
            return self._failure(item, exc)
        return self._sent(item, result, attempt, "sent")

    def _sent(self, item: WorkItem, result: SendResult, attempts: int, event: str) -> store.Outcome:
        return store.Outcome(
            DeliveryState.SENT,
            event,
            attempts,
            provider_id=result.provider_id,
            segments=result.segments or item.segments,
        )

    def _failure(self, item: WorkItem, error: ChannelError) -> store.Outcome:
        """The channel classified the failure; here we decide: fail, retry, or expire."""
        attempts = item.attempts + 1
        if error.permanent:
            return store.Outcome(
                DeliveryState.FAILED, "failed", attempts, code=error.code, detail=error.message
            )
        if attempts >= self.settings.max_attempts:
            return store.Outcome(
                DeliveryState.FAILED,
                "failed",
                attempts,
                code=error.code,
                detail=f"gave up after {attempts} attempts; last error: {error.message}",
                needs_reconcile=error.ambiguous,
            )
        delay = retry_delay(
            attempts,
            self.settings.retry_base_seconds,
            self.settings.retry_max_seconds,
            self.rng.random(),
            error.retry_after,
        )
        next_attempt = self.clock.now() + timedelta(seconds=delay)
        if next_attempt >= item.closure_ends:
            return store.Outcome(
                DeliveryState.EXPIRED,
                "expired",
                attempts,
                code=error.code,
                detail=f"the closure ends before the next retry; last error: {error.message}",
            )
        return store.Outcome(
            DeliveryState.PENDING,
            "retry_scheduled",
            attempts,
            code=error.code,
            detail=f"{error.message} (retry in {delay:.0f}s)",
            next_attempt_at=next_attempt,
            needs_reconcile=error.ambiguous,
        )
