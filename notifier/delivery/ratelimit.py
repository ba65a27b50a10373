"""Token bucket: never more than ``rate`` units a second, bursts of at most one second's worth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from notifier import metrics


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
        wait = self.reserve(cost)
        if wait <= 0:
            return True
        metrics.rate_limit_wait(self.name, wait)
        if stop is None:
            self._sleep(wait)
            return True
        return not stop.wait(wait)
