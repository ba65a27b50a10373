"""Firing due broadcasts: each turns, exactly once, into one delivery row per recipient.

Each broadcast is fired in its own transaction, inside its own fault boundary: one that cannot
be fanned out is marked ``failed`` with the reason (and can be retried after a fix), and the
others due at the same moment go out regardless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from notifier.delivery import faults
from notifier.domain.notices import WITHDRAWN, BroadcastStatus, too_late
from notifier.storage import notices as notice_rows
from notifier.storage import recipients as recipient_rows
from notifier.usecases import Deps
from notifier.usecases.plans import fan_out_broadcast
from notifier.usecases.previews import Previews

log = logging.getLogger(__name__)


class Fanout:
    def __init__(self, deps: Deps, previews: Previews) -> None:
        self.deps = deps
        self.db = deps.db
        self.clock = deps.clock
        self.previews = previews

    def fire_due(self) -> int:
        """Fan out every broadcast whose time has come; return how many were fired.

        Idempotent and safe to run from several schedulers at once: the SCHEDULED → SENDING
        transition is a conditional UPDATE, and only its winner inserts deliveries (same
        transaction). The completion time is estimated and logged, with a warning when it
        exceeds the provider's queue window.
        """
        now = self.clock.now()
        with self.db.session() as s:
            # The undo window: a broadcast is taken only once its hold after its due time is
            # over; until then ``Notices.cancel`` withdraws it with nothing sent.
            due = notice_rows.due_broadcast_ids(s, now - self._hold)
        fired = 0
        for broadcast_id in due:
            try:
                fired += self._fire(broadcast_id)
            except Exception as error:  # the boundary: this broadcast, not the others
                self._failed(broadcast_id, error)
        return fired

    def next_due(self) -> datetime | None:
        """When the earliest scheduled broadcast is due, its undo window over."""
        with self.db.session() as s:
            due = notice_rows.next_send_at(s)
        return None if due is None else due + self._hold

    @property
    def _hold(self) -> timedelta:
        return timedelta(seconds=self.deps.settings.send_hold_seconds)

    def finish(self) -> int:
        """Mark sending broadcasts whose deliveries are all final as done."""
        with self.db.session() as s:
            return recipient_rows.finish_broadcasts(s, self.clock.now())

    def _fire(self, broadcast_id: int) -> int:
        now = self.clock.now()
        with self.db.session() as s:
            broadcast = notice_rows.broadcast(s, broadcast_id)
            if broadcast is None or broadcast.status != BroadcastStatus.SCHEDULED:
                return 0
            notice = broadcast.notice
            if notice.status in WITHDRAWN:
                notice_rows.transition_broadcast(
                    s,
                    broadcast_id,
                    BroadcastStatus.SCHEDULED,
                    BroadcastStatus.CANCELLED,
                    now,
                    f"notice {notice.status}",
                )
                return 0
            if too_late(notice.ends_at, now):
                reason = (
                    f"the closure ended at {notice.ends_at.isoformat()} before the broadcast "
                    f"could go out (due {broadcast.send_at.isoformat()}); nothing was sent"
                )
                notice_rows.transition_broadcast(
                    s, broadcast_id, BroadcastStatus.SCHEDULED, BroadcastStatus.EXPIRED, now, reason
                )
                log.warning(
                    "broadcast expired: %s",
                    reason,
                    extra={"action": "broadcast_expired", "broadcast_id": broadcast_id},
                )
                return 0
            if not notice_rows.transition_broadcast(
                s, broadcast_id, BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, now
            ):
                return 0  # another scheduler won the race
            counts = fan_out_broadcast(self.deps, s, broadcast, now)
            notice_id, send_at = notice.id, broadcast.send_at
        # After the commit: the estimate informs, it never decides; nothing in it may undo the
        # fan-out.
        estimate = self._estimate(
            broadcast_id, [n for n in counts if self.deps.statuses[n].enabled]
        )
        log.info(
            "broadcast fired",
            extra={
                "action": "broadcast_fired",
                "broadcast_id": broadcast_id,
                "notice_id": notice_id,
                "deliveries": counts,
                "estimated_seconds": estimate,
                "lag_seconds": round((now - send_at).total_seconds(), 3),
            },
        )
        return 1

    def _estimate(self, broadcast_id: int, channels: list[str]) -> dict[str, float] | None:
        """How long the queued deliveries take at the configured rates; warns when longer than
        the provider queues. Logged, never raised: the broadcast is already out."""
        try:
            with self.db.session() as s:
                broadcast = notice_rows.broadcast(s, broadcast_id)
                assert broadcast is not None
                notice = broadcast.notice
                estimate = self.previews.estimate(
                    s,
                    notice_rows.facts(notice),
                    notice.location_id,
                    channels,
                    lambda spec: self.previews.queued(s, notice, broadcast_id, spec),
                )
        except Exception as error:
            log.warning(
                "broadcast %s fired; its duration could not be estimated: %s",
                broadcast_id,
                faults.reason("estimating", error),
                extra={"action": "estimate_failed", "broadcast_id": broadcast_id},
            )
            return None
        for warning in self.previews.estimate_warnings(estimate):
            log.warning(
                "broadcast too long for the provider's queue: %s",
                warning,
                extra={"action": "broadcast_too_long", "broadcast_id": broadcast_id},
            )
        return estimate.seconds

    def _failed(self, broadcast_id: int, error: Exception) -> None:
        """Mark the broadcast failed with the reason (its transaction was rolled back, so no
        delivery of it exists); a database that is only briefly away leaves it scheduled."""
        extra = {"action": "broadcast_failed", "broadcast_id": broadcast_id}
        if faults.is_transient(error):
            log.warning(
                "broadcast not fired, the database is unavailable: %s; trying again next tick",
                faults.reason("fan-out", error),
                extra=extra,
            )
            return
        why = faults.reason("the fan-out failed", error)
        faults.log_failure(log, f"broadcast {broadcast_id} failed: {why}", error, **extra)
        try:
            with self.db.session() as s:
                notice_id = notice_rows.notice_id_of_broadcast(s, broadcast_id)
                notice_rows.transition_broadcast(
                    s,
                    broadcast_id,
                    BroadcastStatus.SCHEDULED,
                    BroadcastStatus.FAILED,
                    self.clock.now(),
                    f"{why}. Fix the cause, then retry: notifier notice retry {notice_id}",
                )
        except Exception as again:  # it stays scheduled and is tried again next tick
            faults.log_failure(log, "could not mark the broadcast failed", again, **extra)
