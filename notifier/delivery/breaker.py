"""A circuit breaker per channel: a provider that fails every request is not hammered.

Closed: every send goes. After ``threshold`` transient failures in a row it opens: sends wait,
not attempted and no attempt counted, until the pause is over. Then one probe goes; its success
closes the breaker, its failure opens it again for twice as long (at most ``max_pause``).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from notifier.clock import Clock

log = logging.getLogger(__name__)


class Breaker:
    def __init__(
        self, channel: str, threshold: int, pause: float, max_pause: float, clock: Clock
    ) -> None:
        self.channel = channel
        self.threshold = threshold  # 0: never opens
        self.pause = pause
        self.max_pause = max(pause, max_pause)
        self._clock = clock
        self._failures = 0  # transient failures in a row
        self._open_until: datetime | None = None
        self._next_pause = pause
        self._probing = False
        self._lock = threading.Lock()

    def admit(self) -> datetime | None:
        """None: go ahead and send. Otherwise: wait until then (nothing was sent)."""
        with self._lock:
            if self._open_until is None:
                return None
            now = self._clock.now()
            if now < self._open_until:
                return self._open_until
            if self._probing:  # one probe at a time; the rest wait for its answer
                return now + timedelta(seconds=self.pause)
            self._probing = True
            return None

    def succeeded(self) -> None:
        with self._lock:
            if self._open_until is not None:
                log.info(
                    "the %s provider answers again; sending resumes",
                    self.channel,
                    extra={"action": "breaker_closed", "channel": self.channel},
                )
            self._failures, self._open_until, self._probing = 0, None, False
            self._next_pause = self.pause

    def failed(self, transient: bool) -> None:
        """A send failed; only transient failures count (a refused address is no outage)."""
        with self._lock:
            if not transient:
                if self._probing:  # the provider answered: it is up
                    self._open_until, self._probing = None, False
                self._failures = 0
                return
            self._failures += 1
            tripped = self._open_until is None and self._failures >= (self.threshold or 0)
            if self._probing or (self.threshold and tripped):
                pause = self._next_pause
                self._open_until = self._clock.now() + timedelta(seconds=pause)
                self._next_pause = min(self.max_pause, pause * 2)
                self._probing = False
                log.warning(
                    "the %s provider failed %d requests in a row; pausing its sends for %.0fs",
                    self.channel,
                    self._failures,
                    pause,
                    extra={"action": "breaker_open", "channel": self.channel},
                )
