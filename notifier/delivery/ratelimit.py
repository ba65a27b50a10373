"""Rate limits: a token bucket in one process (never more than ``rate`` units a second, bursts of
at most one second's worth), and a timeline shared by a fleet of workers through the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from notifier import metrics


class Limiter(Protocol):
    rate: float

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool: ...


class TokenBucket:
    """Callers reserve tokens up front (the balance may go negative) and sleep off the debt, so
    waiting callers are served in order and a 3-segment SMS costs three times a 1-segment one."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "",
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.name = name  # the channel, for the rate-limit wait metrics
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens now; return how long the caller must wait before acting."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= cost
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool:
        """Block until ``cost`` tokens are ours. False if ``stop`` was set while waiting."""
        return _wait(self.reserve(cost), stop, self._sleep, self.name)


Grant = Callable[[str, float, float], tuple[float, float]]
"""(sender, seconds, burst seconds) → (end of the reserved span, the shared clock now), in
shared-clock seconds (``storage.send_rates.grant``)."""


class SharedTimeline:
    """One rate for the whole fleet: every worker reserves spans of one shared timeline per
    sender (``storage.send_rates.grant``, one atomic statement) and sends each segment in its own
    slot, ``1/rate`` apart. Spans never overlap, so the fleet together never exceeds the rate,
    however many workers join. A span is fetched ``batch_seconds`` at a time (the database is not
    asked per message), or less when the worker has fewer messages in hand (``demand``): a
    worker near the end of its work takes no slots it cannot use.

    Like ``TokenBucket``, an idle sender may burst one second's worth (``max(1, rate)`` units):
    a span may start up to that far in the past, and slots passed up to that long ago are still
    taken. Older slots are gone, never caught up, so a dead worker's unused span expires.
    """

    def __init__(
        self,
        sender: str,
        rate: float,
        grant: Grant,
        batch_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        demand: Callable[[], int] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.sender = sender
        self._demand = demand  # messages the worker has in hand (an upper bound is fine)
        self.rate = rate
        self._grant = grant
        self._batch = max(1.0, rate * batch_seconds)  # segments per grant
        # How far back an idle sender may start: max(1, rate) slots at once, the one due now
        # included, so no second sees more than rate + max(1, rate).
        self._burst = (max(1.0, rate) - 1.0) / rate
        self._clock = clock
        self._sleep = sleep
        self._offset = 0.0  # shared clock minus local clock
        self._cursor = 0.0  # the next free slot of the span we hold (shared clock)
        self._end = 0.0  # where that span ends
        self._lock = threading.Lock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take the next ``cost`` segments' slots; return how long to wait until the first."""
        with self._lock:
            now = self._clock() + self._offset
            start = max(self._cursor, now - self._burst)
            if (self._end - start) * self.rate < cost - 1e-9:
                # Whole messages of this size: a remainder too small for the next one is lost.
                messages = int(self._batch // cost)
                if self._demand is not None:
                    messages = min(messages, self._demand())
                span = cost * max(1, messages) / self.rate
                before = self._clock()
                end, shared_now = self._grant(self.sender, span, self._burst)
                after = self._clock()
                self._offset = shared_now - (before + after) / 2
                now = after + self._offset
                start, self._end = end - span, end
            self._cursor = start + cost / self.rate
            return max(0.0, start - now)

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool:
        """Block until our slot comes. False if ``stop`` was set while waiting."""
        return _wait(self.reserve(cost), stop, self._sleep, self.sender.partition(":")[0])


def _wait(
    seconds: float, stop: threading.Event | None, sleep: Callable[[float], None], channel: str
) -> bool:
    """Sleep ``seconds`` (woken by ``stop``), counted as the channel's rate-limit wait; False if
    ``stop`` was set."""
    if seconds <= 0:
        return True
    metrics.rate_limit_wait(channel, seconds)
    if stop is None:
        sleep(seconds)
        return True
    return not stop.wait(seconds)
