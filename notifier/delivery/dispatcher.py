"""The dispatcher: claims due deliveries, prepares them, sends them through channels, records
every outcome.

Crash safety: a delivery is committed as ``sending`` (with a lease) before the provider call and
committed again with the outcome after it. If the process dies in between, another process
takes the claim over (``delivery.workers``) and the provider is asked (``Channel.find_sent``)
before any resend.

Each claimed delivery is prepared (checked, rendered) inside its own fault boundary
(``delivery.preparation``) before it is handed to a sender thread.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from notifier import channels as registry
from notifier import metrics
from notifier.channels.base import Channel, ChannelError
from notifier.delivery import faults
from notifier.delivery.breaker import Breaker
from notifier.delivery.outcomes import OutcomeWriter, WorkItem
from notifier.delivery.preparation import Preparer
from notifier.delivery.ratelimit import Limiter, SharedTimeline, TokenBucket
from notifier.delivery.withdrawals import Withdrawals
from notifier.domain.contacts import mask_address
from notifier.domain.deliveries import (
    DeliveryState,
    Failure,
    Outcome,
    RetryPolicy,
    failed,
    paused,
    sent,
)
from notifier.domain.senders import Sender, choose
from notifier.storage import deliveries as delivery_rows
from notifier.storage import send_rates
from notifier.usecases import Deps

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class _Paused(Exception):
    """Control flow inside the dispatcher: the channel's breaker holds this provider call."""

    def __init__(self, until: datetime) -> None:
        self.until = until


def new_worker_id() -> str:
    """Host, process, and a random part: a restarted container reuses its pid (often 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Dispatcher:
    def __init__(
        self,
        deps: Deps,
        channels: Mapping[str, Channel],
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.deps = deps
        self.db = deps.db
        self.channels = dict(channels)
        self.clock = deps.clock
        self.settings = deps.settings
        self.worker_id = worker_id or new_worker_id()
        self.rng = rng or random.Random()
        self.pools: dict[str, tuple[Sender, ...]] = {}
        self.limiters: dict[str, Limiter] = {}  # by channel, or "channel:sender" in a pool
        for name, channel in self.channels.items():
            pool = registry.senders(channel.spec, self.settings)
            if not pool:
                self.limiters[name] = self._limiter(
                    name, registry.rate(channel.spec, self.settings)
                )
                continue
            self.pools[name] = pool
            for sender in pool:
                key = f"{name}:{sender.address}"
                self.limiters[key] = self._limiter(key, sender.rate)
        self.breakers = {
            name: Breaker(
                name,
                self.settings.breaker_failures,
                self.settings.breaker_pause_seconds,
                self.settings.retry_max_seconds,
                self.clock,
            )
            for name in self.channels
        }
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.dispatch_concurrency, thread_name_prefix="send"
        )
        self._in_flight: set[Future[None]] = set()
        self._held: set[int] = set()  # claimed and not yet recorded or handed back
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._outcomes = OutcomeWriter(
            self.db, self.clock, self.worker_id, {n: c.spec for n, c in self.channels.items()}
        )
        self._preparer = Preparer(deps, self.channels, self.worker_id)
        self._withdrawals = Withdrawals(self.db, self.settings.last_look_seconds)

    def _limiter(self, sender: str, rate: float) -> Limiter:
        """PostgreSQL may serve a fleet of workers: they share one timeline per sender. SQLite
        serves one worker, which keeps its rate in process."""
        if self.db.dialect != "postgresql" or not self.settings.rate_shared:
            return TokenBucket(rate, name=sender.partition(":")[0])
        return SharedTimeline(
            sender, rate, self._grant, self.settings.rate_grant_seconds, demand=self._in_hand
        )

    def _in_hand(self) -> int:
        """Messages this worker has taken on and not finished (those holding slots included)."""
        with self._lock:
            return len(self._in_flight)

    def _grant(self, sender: str, span: float, burst: float) -> tuple[float, float]:
        with self.db.session() as s:
            return send_rates.grant(s, sender, span, burst)

    # --- the loop -------------------------------------------------------------------------

    def drain(self) -> int:
        """Send everything due now; return how many deliveries were handled."""
        handled = 0
        while not self.stopping.is_set():
            room = self._room()
            if room <= 0 or (room < self._min_claim() and self._busy()):
                # Claim in batches, not one by one as sends finish: every claim is a write
                # transaction, and a stream of tiny ones was half of the dispatcher's DB time.
                self._wait_for_completion()
                continue
            items = self.claim(room)
            if not items:
                if not self._wait_for_completion(nothing_claimed=True):
                    break
                continue
            handled += len(items)
            for item in items:
                future = self._pool.submit(self.deliver, item)
                with self._lock:
                    self._in_flight.add(future)
                future.add_done_callback(self._finished)
        self._wait_all()
        self._outcomes.close()  # restarted by the next write
        return handled

    def held(self) -> list[int]:
        """The deliveries this worker holds a claim on right now (their leases are extended
        while it lives)."""
        with self._lock:
            return sorted(self._held)

    def stop(self) -> None:
        """Stop claiming; in-flight sends finish, claimed-but-unsent deliveries are released."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        for limiter in self.limiters.values():
            limiter.close()  # a shared timeline's fetch-ahead thread
        self._outcomes.close()
        for channel in self.channels.values():
            channel.close()

    def _room(self) -> int:
        """How many more deliveries to claim: enough to keep every sender busy, but not so many
        that some would wait a long time, claimed, behind the rate limit."""
        with self._lock:
            in_flight = len(self._in_flight)
        rate = sum(limiter.rate for limiter in self.limiters.values())
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
        error = future.exception()
        if error is not None:  # deliver records its own errors; this is a bug
            faults.log_failure(log, "delivery task crashed", error)

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

    def _hold(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held.update(ids)

    def _let_go(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    # --- claiming -----------------------------------------------------------------------

    def claim(self, limit: int) -> list[WorkItem]:
        """Claim up to ``limit`` due deliveries and prepare them; those to be sent now (the
        rest was written back: withdrawn, expired, held, failed). ``drain`` hands each to a
        sender thread; a test may ``deliver`` them one by one."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.db.session() as s:
            ids = delivery_rows.claim(s, self.worker_id, self.channels, now, lease_until, limit)
        if not ids:
            return []
        self._hold(ids)
        items = self._preparer.prepare(ids, now)
        prepared = {item.delivery_id for item in items}
        self._let_go([i for i in ids if i not in prepared])
        for item in items:
            self._withdrawals.track(item)
        return items

    # --- sending --------------------------------------------------------------------------

    def deliver(self, item: WorkItem) -> None:
        """One claimed message: the provider call (after a last look), then its outcome
        recorded (group commit)."""
        channel = self.channels[item.channel]
        item = self._route(item)
        try:
            outcome = self._attempt(channel, item)
        except Exception as error:  # a bug or an unexpected library error: never lose the row
            faults.log_failure(
                log,
                "unexpected error while sending",
                error,
                action="delivery_error",
                delivery_id=item.delivery_id,
            )
            outcome = self._failure(
                item,
                ChannelError(
                    faults.reason("unexpected error", error), code="internal", ambiguous=True
                ),
            )
        try:
            if outcome is None:  # shutting down before the provider call
                with self.db.session() as s:
                    delivery_rows.hand_back(s, [item.delivery_id], self.worker_id, self.clock.now())
                return
            kept = self._outcomes.write(item, outcome)
        finally:
            self._let_go([item.delivery_id])
            self._withdrawals.untrack(item)
        level = logging.INFO if outcome.state != DeliveryState.FAILED else logging.WARNING
        if log.isEnabledFor(level):  # the masking and the record only for a line written
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
        metrics.delivery_outcome(item.channel, outcome.state)

    def _attempt(self, channel: Channel, item: WorkItem) -> Outcome | None:
        attempt = item.attempts + 1
        try:
            if item.needs_reconcile:
                since = item.created_at - timedelta(minutes=5)
                found = self._call(item, lambda: channel.find_sent(item.message, since))
                if found is not None:
                    segments = found.segments or item.cost
                    return sent(item.attempts, found.provider_id, segments, "reconciled")
            if (stopped := self._withdrawals.last_look(item)) is not None:
                return stopped
            limiter = self.limiters[_limit_key(item)]
            if not limiter.acquire(item.cost, self.stopping):
                return None
            if self.stopping.is_set():
                return None
            if (stopped := self._withdrawals.last_look(item)) is not None:  # the last look
                return stopped
            with metrics.provider_request(item.channel):
                result = self._call(item, lambda: channel.send(item.message))
        except _Paused as pause:
            return paused(item.attempts, pause.until, item.channel, item.needs_reconcile)
        except ChannelError as error:
            return self._failure(item, error)
        return sent(attempt, result.provider_id, result.segments or item.cost)

    def _route(self, item: WorkItem) -> WorkItem:
        """The sender from the channel's pool this patient always hears from, if it has one."""
        pool = self.pools.get(item.channel)
        if pool is None:
            return item
        sender = choose(item.message.to, pool).address
        return replace(item, message=replace(item.message, sender=sender))

    def _call(self, item: WorkItem, call: Callable[[], _T]) -> _T:
        """A provider call through the channel's breaker, which its answer informs."""
        breaker = self.breakers[item.channel]
        until = breaker.admit()
        if until is not None:
            raise _Paused(until)
        try:
            result = call()
        except ChannelError as error:
            breaker.failed(transient=not error.permanent)
            raise
        except BaseException:
            breaker.failed(transient=True)
            raise
        breaker.succeeded()
        return result

    def _failure(self, item: WorkItem, error: ChannelError) -> Outcome:
        failure = Failure(
            error.message, error.code, error.permanent, error.ambiguous, error.retry_after
        )
        policy = RetryPolicy(
            self.settings.retry_base_seconds,
            self.settings.retry_max_seconds,
            self.settings.max_attempts,
        )
        return failed(
            failure,
            item.attempts + 1,
            policy,
            self.clock.now(),
            self.rng.random(),
            item.closure_ends,
        )


def _limit_key(item: WorkItem) -> str:
    sender = item.message.sender
    return f"{item.channel}:{sender}" if sender else item.channel
