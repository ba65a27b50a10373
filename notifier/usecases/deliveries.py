"""The delivery log: every message, its state, attempts and errors; each one's history; counts
per channel and state; re-queueing failed deliveries."""

from __future__ import annotations

import logging

from notifier.errors import NotFoundError
from notifier.storage import notices as notice_rows
from notifier.storage import queue, reports
from notifier.usecases import UseCase
from notifier.usecases.lookups import require_notice
from notifier.usecases.views import DeliveryView, EventView, delivery_view, event_view

log = logging.getLogger(__name__)


class Deliveries(UseCase):
    def log(
        self,
        notice_id: int | None = None,
        state: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DeliveryView]:
        with self.db.session() as s:
            if notice_id is not None:
                require_notice(s, notice_id)
            query = reports.LogQuery(notice_id, state, channel, limit, offset)
            rows = reports.delivery_log(s, query)
            return [delivery_view(d) for d in rows]

    def history(self, delivery_id: int) -> tuple[DeliveryView, list[EventView]]:
        """One delivery and every event it went through, oldest first."""
        with self.db.session() as s:
            delivery = reports.delivery(s, delivery_id)
            if delivery is None:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            events = [event_view(e) for e in reports.events_for(s, [delivery_id])]
            return delivery_view(delivery), events

    def summary(self, notice_id: int) -> dict[str, dict[str, int]]:
        """Deliveries by channel and state."""
        with self.db.session() as s:
            require_notice(s, notice_id)
            counts: dict[str, dict[str, int]] = {}
            for (channel, state), count in reports.state_counts(s, [notice_id]).items():
                counts.setdefault(channel, {})[state] = count
            return counts

    def reached_anyone(self, notice_id: int) -> bool:
        """Whether this notice or an earlier version of it reached anyone (an update then goes
        only to them)."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
            return notice_rows.chain_reached_anyone(s, notice.root_id or notice.id)

    def retry_failed(self, notice_id: int | None = None) -> int:
        """Re-queue failed deliveries (not of withdrawn notices or ended closures)."""
        now = self.clock.now()
        with self.db.session() as s:
            if notice_id is not None:
                require_notice(s, notice_id)
            ids = queue.retry_failed(s, now, notice_id)
        log.info(
            "failed deliveries re-queued",
            extra={"action": "retry_requested", "notice_id": notice_id, "count": len(ids)},
        )
        return len(ids)
