"""Workers' heartbeats, and taking over what a dead worker held.

Every ``notifier serve`` process beats every ``NOTIFIER_HEARTBEAT_SECONDS``: it marks itself
alive and pushes out the leases of the deliveries it is working on, so a slow send is never
taken over. Any live process, on the same schedule, hands back the claims of a worker silent for
``NOTIFIER_WORKER_TIMEOUT_SECONDS`` (and any claim whose lease ran out): pending again, the
interrupted attempt counted, the provider asked before any resend. That is seconds after a
crash, not a whole lease, and it does not wait for the queue to drain.

A process that could not beat either (the database was locked or away) takes nothing over in
that round: the others were most likely just as blocked, not dead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from notifier import metrics
from notifier.clock import Clock
from notifier.settings import Settings
from notifier.storage import deliveries as delivery_rows
from notifier.storage.engine import Database

log = logging.getLogger(__name__)


class Workers:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        worker_id: str,
        role: str,
        held: Callable[[], Sequence[int]] = list,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id
        self.role = role
        self._held = held
        self._last_beat: datetime | None = None

    def beat(self) -> None:
        """Say this worker is alive; extend the leases of what it is working on."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.db.session() as s:
            delivery_rows.beat(s, self.worker_id, self.role, now)
            delivery_rows.extend_leases(s, self.worker_id, self._held(), lease_until)
        self._last_beat = now

    def take_over(self) -> int:
        """Hand back the claims of dead workers and of run-out leases; how many."""
        now = self.clock.now()
        timeout = timedelta(seconds=self.settings.worker_timeout_seconds)
        if self._last_beat is None or now - self._last_beat > timeout / 2:
            return 0  # we could not beat either: the database was blocked, not the others dead
        taken = 0
        with self.db.session() as s:
            dead = {
                worker: at
                for worker, at in delivery_rows.dead_workers(s, now - timeout)
                if worker != self.worker_id
            }
            stalled = delivery_rows.stalled(s, self.worker_id, now, list(dead))
            for delivery_id, holder in stalled:
                if holder in dead:
                    event = "worker_lost"
                    why = f"worker {holder} stopped (last heartbeat {dead[holder].isoformat()})"
                else:
                    event = "lease_expired"
                    why = f"worker {holder} stopped mid-send (its lease ran out)"
                taken += (n := delivery_rows.take_over(s, delivery_id, holder, now, event, why))
                metrics.lease_recoveries(event, n)
            if len(stalled) < delivery_rows.STALLED_BATCH:  # all of theirs handed back
                for worker in dead:
                    delivery_rows.forget_worker(s, worker)
        if taken or dead:
            log.warning(
                "took over the deliveries of stopped workers",
                extra={"action": "claims_taken_over", "count": taken, "workers": sorted(dead)},
            )
        return taken

    def tick(self) -> None:
        """The heartbeat job: beat, then take over what the dead left behind."""
        self.beat()
        self.take_over()

    def leave(self) -> None:
        """A clean stop: this worker is gone (its claims were handed back already)."""
        with self.db.session() as s:
            delivery_rows.forget_worker(s, self.worker_id)
