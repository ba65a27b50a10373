"""The delivery log: every message, its state, attempts and errors; each one's history; counts
per channel and state; re-queueing failed deliveries; and what providers report about them
(status callbacks).

Delivery reports never move a delivery backwards: ``sending``/``sent`` < ``delivered`` |
``undelivered`` | ``failed``; a repeated report changes nothing; a late one (``sent`` after
``delivered``) changes nothing but is kept as an event.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from notifier.domain.contacts import mask_text
from notifier.domain.deliveries import DeliveryState, earlier_than
from notifier.domain.untrusted import FREE_TEXT_LIMIT, printable
from notifier.errors import NotFoundError
from notifier.storage import notices as notice_rows
from notifier.storage import queue, reports
from notifier.storage.limits import string_lengths
from notifier.storage.models import Delivery, DeliveryEvent
from notifier.usecases import UseCase
from notifier.usecases.lookups import require_notice
from notifier.usecases.views import DeliveryView, EventView, delivery_view, event_view

log = logging.getLogger(__name__)
# A report's fields are cut to the columns they are stored in (PostgreSQL refuses longer).
_SID_CHARS = string_lengths(Delivery)["provider_id"]
_CODE_CHARS = min(string_lengths(Delivery)["error_code"], string_lengths(DeliveryEvent)["code"])


@dataclass(frozen=True)
class ReportResult:
    outcome: str  # applied, duplicate, ignored, unknown_sid, no_op
    state: str | None = None


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

    # --- delivery reports (status callbacks) ----------------------------------------------

    def report(
        self,
        channel: str,
        provider_id: str,
        status: str,
        error_code: str | None = None,
        error_message: str | None = None,
        wait_for_unknown: float = 0.0,
    ) -> ReportResult:
        """Apply one delivery report (a status callback) to the delivery with that provider id."""
        provider_id, status = printable(provider_id), printable(status)
        error_code = printable(error_code) if error_code else None
        error_message = printable(error_message, FREE_TEXT_LIMIT) if error_message else None
        if not provider_id or len(provider_id) > _SID_CHARS:
            return ReportResult("unknown_sid")  # no id of ours is longer than the column
        new = self.deps.spec(channel).reports.get(status.lower())
        if new is None:
            return ReportResult("no_op")
        delivery_id = self._find(provider_id, wait_for_unknown)
        if delivery_id is None:
            log.info(
                "status callback for an unknown message",
                extra={"action": "status_unknown_sid", "provider_id": provider_id},
            )
            return ReportResult("unknown_sid")
        now = self.clock.now()
        # The provider's words may quote the patient's number or address: masked before stored.
        code = mask_text(error_code)[:_CODE_CHARS] if error_code else None
        with self.db.session() as s:
            detail = (
                mask_text(error_message)
                if error_message
                else (f"the provider reported {status}" + (f" (error {code})" if code else ""))
            )
            if queue.advance_state(s, delivery_id, earlier_than(new), new, now, code, detail):
                event, outcome = f"status_{new.value}", ReportResult("applied", new.value)
            else:
                current = queue.delivery_state(s, delivery_id) or ""
                if current == new.value:
                    return ReportResult("duplicate", current)
                new = DeliveryState(current)
                event, outcome = "status_ignored", ReportResult("ignored", current)
                detail = f"late or conflicting status {status!r} ignored: already {current}"
            queue.add_events(s, [delivery_id], now, event, new, code=code, detail=detail)
        log.info(
            "status callback %s",
            outcome.outcome,
            extra={"action": f"status_{outcome.outcome}", "delivery_id": delivery_id, "code": code},
        )
        return outcome

    def _find(self, provider_id: str, wait: float) -> int | None:
        """The report can overtake our own commit of the send: look again briefly."""
        deadline = time.monotonic() + wait
        while True:
            with self.db.session() as s:
                found = queue.delivery_id_by_provider_id(s, provider_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)
