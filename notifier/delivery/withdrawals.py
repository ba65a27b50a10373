"""The last look before a provider request: was the message's notice cancelled or replaced
while it waited (for a rate-limit token, behind a slow send)?

Answered from the database at most every ``interval`` seconds with one small query over the
notices whose messages are in this process's hands, so the hot path pays nothing. A message
that slips through in that window is not lost truth: its address is told by the newer
version, which waits for this message's outcome and then sends the correction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from notifier.delivery import faults
from notifier.storage import notices as notice_rows
from notifier.storage.engine import Database

log = logging.getLogger(__name__)


class Withdrawals:
    def __init__(self, db: Database, interval: float = 0.25) -> None:
        self.db = db
        self.interval = interval
        self._in_hand: Counter[int] = Counter()
        self._withdrawn: set[int] = set()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def track(self, notice_id: int) -> None:
        with self._lock:
            self._in_hand[notice_id] += 1

    def untrack(self, notice_id: int) -> None:
        with self._lock:
            self._in_hand[notice_id] -= 1
            if self._in_hand[notice_id] <= 0:
                del self._in_hand[notice_id]

    def withdrawn(self, notice_id: int) -> bool:
        """Whether the notice was cancelled or replaced (as of at most ``interval`` ago)."""
        self._refresh_if_stale()
        with self._lock:
            return notice_id in self._withdrawn

    def _refresh_if_stale(self) -> None:
        if self.interval and time.monotonic() - self._checked < self.interval:
            return
        if not self._refreshing.acquire(blocking=not self.interval):
            return  # another sender is refreshing: use what we have
        try:
            with self._lock:
                wanted = list(self._in_hand)
            with self.db.session() as s:
                found = notice_rows.withdrawn_among(s, wanted)
            with self._lock:
                self._withdrawn = found
            self._checked = time.monotonic()
        except Exception as error:  # keep the last answer; the next send asks again
            log.warning(
                "could not check for withdrawn notices: %s",
                faults.reason("last look", error),
                extra={"action": "last_look_failed"},
            )
        finally:
            self._refreshing.release()
