"""Group commit of providers' reports: the status-callback handler hands its report over and
waits until it is durable (so a 200 to Twilio means "stored"), while one thread appends
everything that arrived during the previous commit in a single transaction. A commit costs an
fsync on SQLite (``synchronous=FULL``) and a WAL flush on PostgreSQL; one per callback capped
the old synchronous path at ~200 callbacks/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from notifier.delivery import faults
from notifier.domain.deliveries import Report
from notifier.usecases.deliveries import Deliveries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    report: Report
    stored: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop  # the awaiting request's


class Intake:
    MAX_BATCH = 1000

    def __init__(self, deliveries: Deliveries, stored: Callable[[], None] | None = None) -> None:
        self._deliveries = deliveries
        self._stored = stored  # told after each commit (wakes this process's applier)
        self._waiting: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def store(self, report: Report) -> None:
        """Store ``report``, returning once it is committed (raising if it could not be). The
        requests of one commit are woken together: one call into their event loop, not one each."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(report, loop.create_future(), loop)
        self._hand_over(waiting)
        await waiting.stored

    def _hand_over(self, waiting: _Waiting) -> None:
        with self._lock:
            if self._thread is None:
                self._waiting = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._waiting,), name="intake", daemon=True
                )
                self._thread.start()
            self._waiting.put(waiting)

    def close(self) -> None:
        """Commit what was handed over, then stop the thread (the next ``take`` restarts it)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._waiting.put(None)
        if thread is not None:
            thread.join()

    def _run(self, waiting: queue.SimpleQueue[_Waiting | None]) -> None:
        stop = False
        while not stop:
            first = waiting.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.MAX_BATCH:
                try:
                    more = waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._commit(group)

    def _commit(self, group: list[_Waiting]) -> None:
        try:
            self._deliveries.take_in([w.report for w in group])
        except Exception as error:
            if len(group) > 1:  # one bad report must not take the others with it
                for one in group:
                    self._commit([one])
                return
            faults.log_failure(log, "could not store a provider's report", error)
            _settle(group, error)
            return
        _settle(group, None)
        if self._stored is not None:
            self._stored()


def _settle(group: list[_Waiting], error: BaseException | None) -> None:
    """Tell each waiting request its report is stored (or why not): one call into each event
    loop for all of its requests."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for one in group:
        by_loop.setdefault(one.loop, []).append(one.stored)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(_wake, futures, error)


def _wake(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (the client went away)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
