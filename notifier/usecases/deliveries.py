"""The delivery log: every message, its state, attempts and errors; each one's history; counts
per channel and state; re-queueing failed deliveries; and what providers report about them
(status callbacks, and its answers when asked: see ``usecases.receipts``).

Reports are stored first (the receipts intake, once per provider id and status) and applied in
batches by the workers. They never move a delivery backwards: ``sending``/``sent`` <
``delivered`` | ``undelivered`` | ``failed``; a repeated report changes nothing; a late one
(``sent`` after ``delivered``) changes nothing but is kept as an event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.calls import Redial
from notifier.domain.deliveries import Report, bucket_counts, eta_seconds
from notifier.domain.notices import BroadcastStatus
from notifier.domain.wording import plural
from notifier.errors import NotFoundError
from notifier.storage import deliveries as delivery_rows
from notifier.storage import notices as notice_rows
from notifier.storage import receipts as receipt_rows
from notifier.storage import reports
from notifier.usecases import UseCase, receipts
from notifier.usecases.audit import record
from notifier.usecases.lookups import require_manager, require_notice, require_patient_data
from notifier.usecases.views import (
    DeliveryView,
    EventView,
    NotReached,
    Progress,
    delivery_view,
    event_view,
    local_iso,
    log_view,
    notice_view,
)

log = logging.getLogger(__name__)


class Deliveries(UseCase):
    def log(
        self,
        actor: Actor,
        notice_id: int | None = None,
        state: str | None = None,
        channel: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        show_patients: bool = False,
        export: bool = False,
    ) -> list[DeliveryView]:
        """The log of the actor's locations (notices' deliveries, and the staff answers and
        auto-replies of their conversations), addresses masked; ``show_patients`` names each
        patient (only for an actor who ``sees_patients``). Audited as a bulk read when it
        names patients or is an ``export`` (a CSV download)."""
        with self.db.session() as s:
            if notice_id is not None:
                require_notice(s, notice_id, actor)
            if show_patients:
                require_patient_data(actor)
            query = reports.LogQuery(
                notice_id, state, channel, limit, offset, show_patients, actor.locations
            )
            rows = reports.delivery_log(s, query)
            if show_patients or export:
                target = f"notice:{notice_id}" if notice_id is not None else None
                record(s, actor, "delivery_log_export", self.clock.now(), target, len(rows))
            return [log_view(row, show_patients) for row in rows]

    def not_reached(self, actor: Actor, notice_id: int) -> list[NotReached]:
        """This notice's messages that reached nobody (undelivered, failed, skipped by consent
        or the weekly cap, expired), with each patient's name, phone and email and the
        channels that did reach them: for the front desk to call. Only for an actor who
        ``sees_patients``."""
        with self.db.session() as s:
            require_notice(s, notice_id, actor)
            require_patient_data(actor)
            rows = reports.not_reached(s, notice_id)
            target = f"notice:{notice_id}"
            record(s, actor, "not_reached_export", self.clock.now(), target, len(rows))
            reached = reports.reached_channels(s, notice_id, sorted({d.patient_id for d in rows}))
            return [
                NotReached(
                    patient=d.patient.external_id,
                    first_name=d.patient.first_name,
                    last_name=d.patient.last_name,
                    channel=d.channel,
                    state=d.state,
                    reason=d.error_message,
                    reached_by=",".join(sorted(reached.get(d.patient_id, set()))),
                    phone=d.patient.phone,
                    email=d.patient.email,
                )
                for d in rows
            ]

    def history(self, actor: Actor, delivery_id: int) -> tuple[DeliveryView, list[EventView]]:
        """One delivery and every event it went through, oldest first."""
        with self.db.session() as s:
            delivery = reports.delivery(s, delivery_id)
            if delivery is None or not actor.sees(delivery.broadcast.notice.location_id):
                raise NotFoundError(f"no delivery with id {delivery_id}")
            events = [event_view(e) for e in reports.events_for(s, [delivery_id])]
            return delivery_view(delivery), events

    def summary(self, actor: Actor, notice_id: int) -> dict[str, dict[str, int]]:
        """Deliveries by channel and state."""
        with self.db.session() as s:
            require_notice(s, notice_id, actor)
            counts: dict[str, dict[str, int]] = {}
            for (channel, state), count in reports.state_counts(s, [notice_id]).items():
                counts.setdefault(channel, {})[state] = count
            return counts

    def waits(self, actor: Actor, notice_id: int) -> list[str]:
        """Why this notice's messages still wait, counted: "2 messages waiting: quiet hours:
        held until 2025-02-19 08:00 America/New_York"."""
        with self.db.session() as s:
            require_notice(s, notice_id, actor)
            return _waits(s, notice_id)

    def progress(self, actor: Actor, notice_id: int) -> Progress:
        """Counts by bucket, why messages wait, the pace so far and an ETA, and whether the
        notice's sending is over (nothing queued and no broadcast due or going out)."""
        now = self.clock.now()
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            states: dict[str, int] = {}
            for (_, state), count in reports.state_counts(s, [notice_id]).items():
                states[state] = states.get(state, 0) + count
            counts = bucket_counts(states)
            total = sum(counts.values())
            since = reports.fanned_out_since(s, notice_id)
            elapsed = (now - since).total_seconds() if since else 0.0
            rate, eta = eta_seconds(total - counts["queued"], counts["queued"], elapsed)
            # A broadcast due but not fanned out yet; one fanning out holds its deliveries'
            # rows from the start (one transaction), so nothing queued means nothing left.
            due = [
                b
                for b in notice.broadcasts
                if b.status == BroadcastStatus.SCHEDULED and b.send_at <= now
            ]
            ahead = sorted(
                b.send_at
                for b in notice.broadcasts
                if b.status == BroadcastStatus.SCHEDULED and b.send_at > now
            )
            waits = _waits(s, notice_id)
            followed = notice_rows.successors(s, [notice_id]).get(notice_id)
            return Progress(
                notice_id=notice_id,
                state=notice_view(notice, now, followed).state,
                total=total,
                counts=counts,
                waits=waits,
                rate=rate,
                eta_seconds=eta,
                finished=counts["queued"] == 0 and not due,
                next_send_at=local_iso(ahead[0], notice.timezone) if ahead else None,
            )

    def reached_anyone(self, actor: Actor, notice_id: int) -> bool:
        """Whether this notice or an earlier version of it reached anyone (an update then goes
        only to them)."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            return notice_rows.chain_reached_anyone(s, notice.root_id or notice.id)

    def retry_failed(self, actor: Actor, notice_id: int | None = None) -> int:
        """Re-queue failed deliveries (not of withdrawn notices or ended closures) of the
        actor's locations."""
        now = self.clock.now()
        with self.db.session() as s:
            if notice_id is not None:
                require_notice(s, notice_id, actor)
            require_manager(actor)
            ids = delivery_rows.retry_failed(s, now, notice_id, actor.locations)
            target = f"notice:{notice_id}" if notice_id is not None else None
            record(s, actor, "deliveries_retry", now, target, len(ids))
        log.info(
            "failed deliveries re-queued",
            extra={"action": "retry_requested", "notice_id": notice_id, "count": len(ids)},
        )
        return len(ids)

    # --- delivery reports (status callbacks, the provider's answers) -----------------------

    def take_in(self, reports: Sequence[Report], source: str = "callback") -> int:
        """Store reports in the receipts intake, all in one transaction (a group commit); a
        repeat of one already there changes nothing. How many were worth storing (reports the
        channel does not act on, such as "queued", are dropped)."""
        now = self.clock.now()
        rows = [r for r in (receipts.row(x, self.deps.channels, source, now) for x in reports) if r]
        if rows:
            with self.db.session() as s:
                receipt_rows.append(s, rows)
        return len(rows)

    def apply_received(self, limit: int | None = None) -> dict[str, int]:
        """Apply one batch of stored reports (oldest first) to their deliveries; how many had
        each outcome. Empty when nothing is due."""
        now = self.clock.now()
        wait = timedelta(seconds=self.settings.receipts_unknown_wait_seconds)
        with self.db.session() as s:
            batch = receipt_rows.claim(s, now, limit or self.settings.receipts_batch_size)
            if not batch:
                return {}
            enabled = {
                name: spec
                for name, spec in self.deps.channels.items()
                if self.deps.statuses[name].enabled
            }
            return receipts.apply(s, self.deps.channels, batch, now, wait, self._redials(), enabled)

    def _redials(self) -> dict[str, Redial]:
        """Each channel's redial policy (busy lines, no answer), from its settings."""
        return {
            name: Redial(
                int(getattr(self.settings, spec.redial_setting)),
                timedelta(minutes=float(getattr(self.settings, spec.redial_spacing_setting))),
            )
            for name, spec in self.deps.channels.items()
            if spec.redial_setting and spec.redial_spacing_setting
        }

    def receipts_waiting(self) -> int:
        """Stored reports not applied yet."""
        with self.db.session() as s:
            return receipt_rows.waiting(s)

    def stale_sent(self, channel: str, limit: int) -> list[tuple[str, datetime]]:
        """Provider ids of deliveries left "sent" longer than
        NOTIFIER_RECEIPTS_RECONCILE_AFTER_MINUTES (within NOTIFIER_RECEIPTS_RECONCILE_FOR_HOURS
        of sending) and not asked about for as long, with when each was sent, oldest first;
        each is marked asked now."""
        settings, now = self.settings, self.clock.now()
        before = now - timedelta(minutes=settings.receipts_reconcile_after_minutes)
        after = now - timedelta(hours=settings.receipts_reconcile_for_hours)
        with self.db.session() as s:
            found = receipt_rows.stale_sent(s, channel, before, after, limit)
            receipt_rows.checked(s, [delivery_id for delivery_id, _, _ in found], now)
        return [(provider_id, sent_at) for _, provider_id, sent_at in found]

    def purge_receipts(self) -> int:
        """Forget applied reports older than NOTIFIER_RECEIPTS_KEEP_DAYS."""
        cutoff = self.clock.now() - timedelta(days=self.settings.receipts_keep_days)
        with self.db.session() as s:
            return receipt_rows.purge(s, cutoff)


def _waits(s: Session, notice_id: int) -> list[str]:
    return [
        f"{plural(count, 'message')} waiting: {reason}"
        for reason, count in reports.waits(s, notice_id).items()
    ]
