"""The last look before a provider request: was the message's notice cancelled or replaced
while it waited (for a rate-limit token, behind a slow send)? Did its address opt out (a STOP
during the broadcast)?

Answered from the database at most every ``interval`` seconds with two small queries over the
notices and addresses whose messages are in this process's hands, so the hot path pays
nothing. A message that slips through in that window is not lost truth: its address is told by
the newer version, which waits for this message's outcome and then sends the correction. A STOP
stops every text to the number that is not handed to the provider within ``interval`` of it
(those still waiting for a worker are skipped at once by the opt-out itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from notifier.delivery import faults
from notifier.delivery.outcomes import WorkItem
from notifier.domain.deliveries import Outcome, opted_out, withdrawn
from notifier.storage import consent as consent_rows
from notifier.storage import notices as notice_rows
from notifier.storage.engine import Database

log = logging.getLogger(__name__)


class Withdrawals:
    def __init__(self, db: Database, interval: float = 0.25) -> None:
        self.db = db
        self.interval = interval
        self._in_hand: Counter[int] = Counter()
        self._addresses: Counter[str] = Counter()
        self._withdrawn: set[int] = set()
        self._opted_out: set[tuple[str, str]] = set()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def track(self, item: WorkItem) -> None:
        with self._lock:
            self._in_hand[item.notice_id] += 1
            self._addresses[item.message.to] += 1

    def untrack(self, item: WorkItem) -> None:
        with self._lock:
            _release(self._in_hand, item.notice_id)
            _release(self._addresses, item.message.to)

    def last_look(self, item: WorkItem) -> Outcome | None:
        """Why the message must not go out after all (as of at most ``interval`` ago): its
        notice was cancelled or replaced, or its address opted out; None to send it."""
        self._refresh_if_stale()
        with self._lock:
            if item.notice_id in self._withdrawn:
                return withdrawn(item.attempts)
            if (item.channel, item.message.to) in self._opted_out:
                return opted_out(item.attempts)
            return None

    def _refresh_if_stale(self) -> None:
        if self.interval and time.monotonic() - self._checked < self.interval:
            return
        if not self._refreshing.acquire(blocking=not self.interval):
            return  # another sender is refreshing: use what we have
        try:
            with self._lock:
                wanted, addresses = list(self._in_hand), list(self._addresses)
            with self.db.session() as s:
                found = notice_rows.withdrawn_among(s, wanted)
                stopped = consent_rows.opted_out(s, addresses) if addresses else set()
            with self._lock:
                self._withdrawn, self._opted_out = found, stopped
            self._checked = time.monotonic()
        except Exception as error:  # keep the last answer; the next send asks again
            log.warning(
                "could not check for withdrawn notices: %s",
                faults.reason("last look", error),
                extra={"action": "last_look_failed"},
            )
        finally:
            self._refreshing.release()


def _release(counter: Counter[Any], key: object) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
