"""Firing due broadcasts: each turns, exactly once, into one delivery row per recipient."""

from __future__ import annotations

import logging

from notifier import store
from notifier.clock import Clock
from notifier.db import Database
from notifier.domain import BroadcastStatus, NoticeStatus
from notifier.rendering import Renderer
from notifier.service import estimate_broadcast, estimate_warnings
from notifier.settings import Settings

log = logging.getLogger(__name__)


def fire_due_broadcasts(
    db: Database, clock: Clock, settings: Settings, renderer: Renderer | None = None
) -> int:
    """Fan out every broadcast whose time has come; return how many were fired.

    Idempotent and safe to run from several schedulers at once: the SCHEDULED → SENDING
    transition is a conditional UPDATE, and only its winner inserts deliveries (same transaction).
    With a ``renderer``, the completion time is estimated and logged, with a warning when it
    exceeds the provider's queue window.
    """
    now = clock.now()
    statuses = settings.channel_statuses()
    with db.session() as s:
        due = store.due_broadcast_ids(s, now)
    fired = 0
    for broadcast_id in due:
        with db.session() as s:
            broadcast = store.broadcast(s, broadcast_id)
            if broadcast is None or broadcast.status != BroadcastStatus.SCHEDULED:
                continue
            notice = broadcast.notice
            if notice.status == NoticeStatus.CANCELLED:
                store.transition_broadcast(
                    s,
                    broadcast_id,
                    BroadcastStatus.SCHEDULED,
                    BroadcastStatus.CANCELLED,
                    now,
                    "notice cancelled",
                )
                continue
            if now >= notice.ends_at:
                reason = (
                    f"the closure ended at {notice.ends_at.isoformat()} before the broadcast "
                    f"could go out (due {broadcast.send_at.isoformat()}); nothing was sent"
                )
                store.transition_broadcast(
                    s,
                    broadcast_id,
                    BroadcastStatus.SCHEDULED,
                    BroadcastStatus.EXPIRED,
                    now,
                    reason,
                )
                log.warning(
                    "broadcast expired: %s",
                    reason,
                    extra={"action": "broadcast_expired", "broadcast_id": broadcast_id},
                )
                continue
            if not store.transition_broadcast(
                s, broadcast_id, BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, now
            ):
                continue  # another scheduler won the race
            counts = {}
            for channel in broadcast.channels.split(","):
                status = statuses[channel]
                counts[channel] = store.fan_out(
                    s,
                    broadcast,
                    channel,
                    now,
                    None if status.enabled else status.reason,
                    sms_weekly_cap=settings.sms_weekly_cap,
                )
            fired += 1
            estimate: dict[str, float] = {}
            if renderer is not None:
                enabled = [c for c in counts if statuses[c].enabled]
                estimate = estimate_broadcast(s, notice, enabled, renderer, settings)
                for warning in estimate_warnings(estimate, settings):
                    log.warning(
                        "broadcast too long for the provider's queue: %s",
                        warning,
                        extra={"action": "broadcast_too_long", "broadcast_id": broadcast_id},
                    )
            log.info(
                "broadcast fired",
                extra={
                    "action": "broadcast_fired",
                    "broadcast_id": broadcast_id,
                    "notice_id": notice.id,
                    "deliveries": counts,
                    "estimated_seconds": estimate,
                    "lag_seconds": round((now - broadcast.send_at).total_seconds(), 3),
                },
            )
    return fired


def finish_broadcasts(db: Database, clock: Clock) -> int:
    with db.session() as s:
        return store.finish_broadcasts(s, clock.now())
