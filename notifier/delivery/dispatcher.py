"""The dispatcher: claims due deliveries, prepares them, sends them through channels, records
every outcome.

Crash safety: a delivery is committed as ``sending`` (with a lease) before the provider call and
committed again with the outcome after it. If the process dies in between, another process
takes the claim over (``delivery.workers``) and the provider is asked (``Channel.find_sent``)
before any resend.

Fault boundary: each claimed delivery is prepared (checked, rendered) on its own; one that
breaks is failed with the reason and the rest of the batch is sent. A batch that cannot even be
loaded is prepared again one delivery at a time, so only the broken one fails.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.channels.base import Channel, ChannelError, OutgoingMessage
from notifier.delivery import faults
from notifier.delivery.outcomes import OutcomeWriter, WorkItem, failed, sent
from notifier.delivery.ratelimit import TokenBucket
from notifier.domain.contacts import mask_address
from notifier.domain.deliveries import DeliveryState, Outcome
from notifier.domain.notices import WITHDRAWN, NoticeFacts, Template, template_for, too_late
from notifier.domain.quiet_hours import QuietHours, deferral
from notifier.errors import TemplateError
from notifier.rendering.messages import context, resolve_language
from notifier.storage import notices as notice_rows
from notifier.storage import queue
from notifier.storage.models import Appointment, Delivery
from notifier.usecases import Deps
from notifier.usecases.consent import on_send_outcome

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    """Host, process, and a random part: a restarted container reuses its pid (often 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class _Batch:
    """What one claim turned into, written back in the preparing transaction."""

    items: list[WorkItem]
    finished: dict[tuple[DeliveryState, str, str], list[int]]  # (state, event, detail) → ids
    deferred: dict[tuple[datetime, str], list[int]]  # (until, detail) → ids
    failures: list[tuple[int, Outcome]]


class Dispatcher:
    def __init__(
        self,
        deps: Deps,
        channels: Mapping[str, Channel],
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.deps = deps
        self.db = deps.db
        self.channels = dict(channels)
        self.clock = deps.clock
        self.settings = deps.settings
        self.worker_id = worker_id or new_worker_id()
        self.rng = rng or random.Random()
        self.limiters = {
            name: TokenBucket(float(getattr(self.settings, channel.spec.rate_setting)))
            for name, channel in self.channels.items()
        }
        self.quiet_hours = QuietHours.parse(self.settings.quiet_hours)
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.dispatch_concurrency, thread_name_prefix="send"
        )
        self._in_flight: set[Future[None]] = set()
        self._held: set[int] = set()  # claimed and not yet recorded or handed back
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._outcomes = OutcomeWriter(self.db, self.clock, self._record)
        self._languages: list[str] | None = None

    # --- the loop -------------------------------------------------------------------------

    def drain(self) -> int:
        """Send everything due now; return how many deliveries were handled."""
        handled = 0
        while not self.stopping.is_set():
            room = self._room()
            if room <= 0 or (room < self._min_claim() and self._busy()):
                # Claim in batches, not one by one as sends finish: every claim is a write
                # transaction, and a stream of tiny ones was half of the dispatcher's DB time.
                self._wait_for_completion()
                continue
            items = self._claim(room)
            if not items:
                if not self._wait_for_completion(nothing_claimed=True):
                    break
                continue
            handled += len(items)
            for item in items:
                future = self._pool.submit(self._deliver, item)
                with self._lock:
                    self._in_flight.add(future)
                future.add_done_callback(self._finished)
        self._wait_all()
        self._outcomes.close()  # restarted by the next write
        return handled

    def held(self) -> list[int]:
        """The deliveries this worker holds a claim on right now (their leases are extended
        while it lives)."""
        with self._lock:
            return sorted(self._held)

    def stop(self) -> None:
        """Stop claiming; in-flight sends finish, claimed-but-unsent deliveries are released."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)
        self._outcomes.close()
        for channel in self.channels.values():
            channel.close()

    def _room(self) -> int:
        """How many more deliveries to claim: enough to keep every sender busy, but not so many
        that some would wait a long time, claimed, behind the rate limit."""
        with self._lock:
            in_flight = len(self._in_flight)
        rate = sum(limiter.rate for limiter in self.limiters.values())
        ceiling = max(
            1,
            min(
                self.settings.dispatch_concurrency * 2,
                int(rate * self.settings.lease_seconds / 4),
            ),
        )
        return min(self.settings.dispatch_batch_size, ceiling - in_flight)

    def _min_claim(self) -> int:
        return max(
            1, min(self.settings.dispatch_batch_size, self.settings.dispatch_concurrency) // 4
        )

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
            self._done.notify_all()
        error = future.exception()
        if error is not None:  # _deliver records its own errors; this is a bug
            faults.log_failure(log, "delivery task crashed", error)

    def _wait_for_completion(self, nothing_claimed: bool = False) -> bool:
        """Wait for a send to finish. False when there is nothing in flight to wait for."""
        with self._lock:
            if not self._in_flight:
                return not nothing_claimed
            self._done.wait(timeout=self.settings.poll_interval_seconds)
            return True

    def _wait_all(self) -> None:
        with self._lock:
            while self._in_flight:
                self._done.wait(timeout=1.0)

    def _hold(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held.update(ids)

    def _let_go(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held.difference_update(ids)

    # --- claiming and preparing -----------------------------------------------------------

    def _claim(self, limit: int) -> list[WorkItem]:
        self._languages = None
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.db.session() as s:
            ids = queue.claim(s, self.worker_id, self.channels, now, lease_until, limit)
        if not ids:
            return []
        self._hold(ids)
        try:
            items = self._prepare(ids, now)
        except Exception as error:
            if faults.is_transient(error):
                self._hand_back(ids, now, error)
                return []
            log.warning(
                "a batch of deliveries could not be prepared (%s); preparing them one by one",
                faults.reason("preparing", error),
                extra={"action": "batch_prepare_failed", "count": len(ids)},
            )
            items = []
            for delivery_id in ids:
                items.extend(self._prepare_one(delivery_id, now))
        prepared = {item.delivery_id for item in items}
        self._let_go([i for i in ids if i not in prepared])
        return items

    def _prepare_one(self, delivery_id: int, now: datetime) -> list[WorkItem]:
        """The fallback boundary: one delivery in its own transaction; if even that breaks, it
        is failed with the reason (or handed back if the database is briefly away)."""
        try:
            return self._prepare([delivery_id], now)
        except Exception as error:
            if faults.is_transient(error):
                self._hand_back([delivery_id], now, error)
                return []
            self._fail_unprepared(delivery_id, now, error)
            return []

    def _prepare(self, ids: Sequence[int], now: datetime) -> list[WorkItem]:
        """Load, check and render the claimed deliveries; write back what will not be sent
        (withdrawn, expired, held for quiet hours, or failed) in the same transaction."""
        batch = _Batch([], defaultdict(list), defaultdict(list), [])
        with self.db.session() as s:
            deliveries = queue.deliveries_with_context(s, ids)
            facts: dict[int, NoticeFacts | Exception] = {}
            appointments = self._appointments(s, deliveries)
            for delivery in deliveries:
                try:
                    self._decide(delivery, facts, appointments, now, batch)
                except Exception as error:  # the boundary: this delivery, not the batch
                    doing = "could not prepare the message"
                    outcome = self._internal(delivery.id, delivery.attempts, doing, error)
                    batch.failures.append((delivery.id, outcome))
            self._write_back(s, batch, now)
        return batch.items

    def _appointments(
        self, s: Session, deliveries: Sequence[Delivery]
    ) -> dict[int, list[Appointment]]:
        """The affected appointments of every patient whose message names them, per delivery."""
        wanted: dict[int, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            if delivery.message_kind == Template.APPOINTMENT:
                wanted[delivery.broadcast.notice_id].append(delivery)
        result: dict[int, list[Appointment]] = {}
        for group in wanted.values():
            notice = group[0].broadcast.notice
            by_patient: dict[int, list[Appointment]] = defaultdict(list)
            for appointment in notice_rows.affected_appointments(
                s,
                notice.location_id,
                notice_rows.closure_of(notice).intervals,
                patient_ids=[d.patient_id for d in group],
            ):
                by_patient[appointment.patient_id].append(appointment)
            for delivery in group:
                result[delivery.id] = by_patient.get(delivery.patient_id, [])
        return result

    def _decide(
        self,
        delivery: Delivery,
        facts_by_notice: dict[int, NoticeFacts | Exception],
        appointments: dict[int, list[Appointment]],
        now: datetime,
        batch: _Batch,
    ) -> None:
        notice = delivery.broadcast.notice
        if notice.status in WITHDRAWN:
            batch.finished[(DeliveryState.CANCELLED, "cancelled", "notice cancelled")].append(
                delivery.id
            )
            return
        facts = facts_by_notice.get(notice.id)
        if facts is None:
            try:
                facts = notice_rows.facts(notice)
            except Exception as error:  # every delivery of a broken notice fails, with why
                facts = error
            facts_by_notice[notice.id] = facts
        if isinstance(facts, Exception):
            raise facts
        closure = facts.closure
        if too_late(closure.ends, now):
            key = (
                DeliveryState.EXPIRED,
                "expired",
                "the closure was over before this message could be sent",
            )
            batch.finished[key].append(delivery.id)
            return
        spec = self.channels[delivery.channel].spec
        if spec.quiet_hours:
            wait = deferral(
                self.quiet_hours,
                now,
                closure.tz,
                delivery.broadcast.urgent,
                closure.starts,
                closure.ends,
            )
            if wait is not None:
                local = wait.until.astimezone(closure.tz)
                if wait.expired:
                    detail = (
                        f"quiet hours until {local:%Y-%m-%d %H:%M} and the closure is over by then"
                    )
                    batch.finished[(DeliveryState.EXPIRED, "expired", detail)].append(delivery.id)
                else:
                    detail = f"quiet hours: held until {local:%Y-%m-%d %H:%M} {closure.tz.key}"
                    batch.deferred[(wait.until, detail)].append(delivery.id)
                return
        try:
            batch.items.append(self._work_item(delivery, facts, appointments.get(delivery.id, [])))
        except TemplateError as error:
            batch.failures.append(
                (
                    delivery.id,
                    Outcome(
                        DeliveryState.FAILED,
                        "failed",
                        delivery.attempts,
                        code="template",
                        detail=str(error),
                    ),
                )
            )

    def _work_item(
        self, delivery: Delivery, facts: NoticeFacts, appointments: Sequence[Appointment]
    ) -> WorkItem:
        """Render the delivery's message: the patient's language, name and appointments."""
        spec = self.channels[delivery.channel].spec
        if self._languages is None:  # a directory listing: once per claim batch
            self._languages = self.deps.messages.languages()
        language = resolve_language(
            delivery.patient.language, facts.clinic.default_language, self._languages
        )
        # Rescheduled since the fan-out: the general notice still fits.
        template = template_for(facts.change, bool(appointments))
        ctx = context(
            facts,
            language,
            delivery.patient.first_name,
            [(a.starts_at, a.provider) for a in appointments],
        )
        rendered = self.deps.messages.render(spec.format, ctx, template)
        return WorkItem(
            delivery_id=delivery.id,
            channel=delivery.channel,
            message=OutgoingMessage(
                delivery.id,
                delivery.address,
                rendered.text,
                rendered.subject,
                rendered.html,
                delivery.patient_id,
            ),
            attempts=delivery.attempts,
            needs_reconcile=delivery.needs_reconcile,
            created_at=delivery.created_at,
            closure_ends=facts.closure.ends,
            cost=rendered.cost,
        )

    def _write_back(self, s: Session, batch: _Batch, now: datetime) -> None:
        for (state, event, detail), ids in batch.finished.items():
            queue.set_states(s, ids, state, now, event, detail)
        for (until, detail), ids in batch.deferred.items():
            queue.hand_back(
                s,
                ids,
                self.worker_id,
                now,
                until=until,
                event="deferred_quiet_hours",
                detail=detail,
            )
        if batch.failures:
            queue.record_many(s, self.worker_id, batch.failures, now)

    def _internal(self, delivery_id: int, attempts: int, doing: str, error: Exception) -> Outcome:
        """A delivery that broke before its provider call: failed, with why (masked), and
        logged once."""
        why = faults.reason(doing, error)
        faults.log_failure(
            log,
            f"delivery {delivery_id} failed: {why}",
            error,
            action="delivery_prepare_failed",
            delivery_id=delivery_id,
        )
        return Outcome(DeliveryState.FAILED, "failed", attempts, code="internal", detail=why)

    def _fail_unprepared(self, delivery_id: int, now: datetime, error: Exception) -> None:
        outcome = self._internal(delivery_id, 0, "could not load the delivery", error)
        try:
            with self.db.session() as s:
                queue.record(s, delivery_id, self.worker_id, outcome, now)
        except Exception as again:  # its lease runs out and another pass takes it over
            faults.log_failure(log, "could not mark the delivery failed", again)

    def _hand_back(self, ids: Sequence[int], now: datetime, error: Exception) -> None:
        """The database is briefly away: give the claims back (no attempt counted)."""
        log.warning(
            "claimed deliveries handed back, the database is unavailable: %s",
            faults.reason("preparing", error),
            extra={"action": "claims_handed_back", "count": len(ids)},
        )
        try:
            with self.db.session() as s:
                queue.hand_back(s, ids, self.worker_id, now)
        except Exception as again:  # their leases run out and they are taken over
            faults.log_failure(log, "could not hand the claims back", again)

    # --- sending --------------------------------------------------------------------------

    def _deliver(self, item: WorkItem) -> None:
        channel = self.channels[item.channel]
        try:
            outcome = self._attempt(channel, item)
        except Exception as error:  # a bug or an unexpected library error: never lose the row
            faults.log_failure(
                log,
                "unexpected error while sending",
                error,
                action="delivery_error",
                delivery_id=item.delivery_id,
            )
            outcome = self._failure(
                item,
                ChannelError(
                    faults.reason("unexpected error", error), code="internal", ambiguous=True
                ),
            )
        try:
            if outcome is None:  # shutting down before the provider call
                with self.db.session() as s:
                    queue.hand_back(s, [item.delivery_id], self.worker_id, self.clock.now())
                return
            kept = self._outcomes.write(item, outcome)
        finally:
            self._let_go([item.delivery_id])
        level = logging.INFO if outcome.state != DeliveryState.FAILED else logging.WARNING
        log.log(
            level,
            "delivery %s",
            outcome.event,
            extra={
                "action": f"delivery_{outcome.event}",
                "delivery_id": item.delivery_id,
                "channel": item.channel,
                "to": mask_address(item.message.to),
                "attempt": outcome.attempts,
                "code": outcome.code,
                "stale": not kept,
            },
        )

    def _record(
        self, s: Session, batch: Sequence[tuple[WorkItem, Outcome]], now: datetime
    ) -> list[bool]:
        """A batch of outcomes, inside the writer's one transaction."""
        pairs = [(item.delivery_id, outcome) for item, outcome in batch]
        kept = queue.record_many(s, self.worker_id, pairs, now)
        for (item, outcome), stored in zip(batch, kept, strict=True):
            if stored:  # a send refused because the address unsubscribed with the provider
                spec = self.channels[item.channel].spec
                on_send_outcome(s, spec, item.message.to, outcome.code, now)
        return kept

    def _attempt(self, channel: Channel, item: WorkItem) -> Outcome | None:
        attempt = item.attempts + 1
        try:
            if item.needs_reconcile:
                since = item.created_at - timedelta(minutes=5)
                found = channel.find_sent(item.message, since)
                if found is not None:
                    return sent(item, found, item.attempts, "reconciled")
            if not self.limiters[item.channel].acquire(item.cost, self.stopping):
                return None
            if self.stopping.is_set():
                return None
            result = channel.send(item.message)
        except ChannelError as error:
            return self._failure(item, error)
        return sent(item, result, attempt, "sent")

    def _failure(self, item: WorkItem, error: ChannelError) -> Outcome:
        return failed(item, error, self.settings, self.clock.now(), self.rng.random())
