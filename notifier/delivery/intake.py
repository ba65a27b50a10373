"""Group commit of providers' reports: the status-callback handler hands its report over and
waits until it is durable (so a 200 to Twilio means "stored"), while one thread appends
everything that arrived during the previous commit in a single transaction. A commit costs an
fsync on SQLite (``synchronous=FULL``) and a WAL flush on PostgreSQL; one per callback capped
the old synchronous path at ~200 callbacks/s.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from notifier.delivery import faults
from notifier.domain.deliveries import Report
from notifier.usecases.deliveries import Deliveries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    report: Report
    stored: Future[None]


class Intake:
    MAX_BATCH = 1000

    def __init__(self, deliveries: Deliveries, stored: Callable[[], None] | None = None) -> None:
        self._deliveries = deliveries
        self._stored = stored  # told after each commit (wakes this process's applier)
        self._waiting: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def take(self, report: Report) -> Future[None]:
        """Store ``report``; the future is done once it is committed (or failed to be)."""
        waiting = _Waiting(report, Future())
        with self._lock:
            if self._thread is None:
                self._waiting = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._waiting,), name="intake", daemon=True
                )
                self._thread.start()
            self._waiting.put(waiting)
        return waiting.stored

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
            group[0].stored.set_exception(error)
            return
        for one in group:
            one.stored.set_result(None)
        if self._stored is not None:
            self._stored()
