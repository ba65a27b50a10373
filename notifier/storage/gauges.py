"""What the database says about the whole fleet at this moment, for ``/metrics``: deliveries by
channel and state, the queue, broadcasts. A few aggregate queries, served by the claim index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.domain.deliveries import DeliveryState
from notifier.domain.notices import BroadcastStatus
from notifier.storage.models import Broadcast, Delivery


@dataclass(frozen=True)
class Gauges:
    deliveries: dict[tuple[str, str], int]  # (channel, state) → deliveries
    due: int  # pending and due now
    waiting: int  # pending, due later (a retry's backoff, quiet hours)
    sending: int  # claimed by a worker
    oldest_due: datetime | None  # the earliest next_attempt_at among due deliveries
    broadcasts: dict[str, int]  # status → broadcasts
    oldest_sending: datetime | None  # when the longest-running broadcast was fanned out
    last_completion_seconds: float | None  # the latest finished broadcast: send_at → done


def read(s: Session, now: datetime) -> Gauges:
    deliveries = {
        (channel, state): int(count)
        for channel, state, count in s.execute(
            select(Delivery.channel, Delivery.state, func.count()).group_by(
                Delivery.channel, Delivery.state
            )
        )
    }
    pending = Delivery.state == DeliveryState.PENDING.value
    is_due = Delivery.next_attempt_at <= now
    due, oldest_due = s.execute(
        select(func.count(), func.min(Delivery.next_attempt_at)).where(pending, is_due)
    ).one()
    broadcasts = {
        status: int(count)
        for status, count in s.execute(
            select(Broadcast.status, func.count()).group_by(Broadcast.status)
        )
    }
    oldest_sending = s.scalar(
        select(func.min(Broadcast.fanned_out_at)).where(
            Broadcast.status == BroadcastStatus.SENDING.value
        )
    )
    last = s.execute(
        select(Broadcast.send_at, Broadcast.finished_at)
        .where(Broadcast.status == BroadcastStatus.DONE.value, Broadcast.finished_at.is_not(None))
        .order_by(Broadcast.finished_at.desc(), Broadcast.id.desc())
        .limit(1)
    ).first()
    total_pending = sum(n for (_, state), n in deliveries.items() if state == "pending")
    return Gauges(
        deliveries=deliveries,
        due=int(due),
        waiting=total_pending - int(due),
        sending=sum(n for (_, state), n in deliveries.items() if state == "sending"),
        oldest_due=oldest_due,
        broadcasts=broadcasts,
        oldest_sending=oldest_sending,
        last_completion_seconds=(
            max(0.0, (last.finished_at - last.send_at).total_seconds()) if last else None
        ),
    )
