"""Preparing claimed deliveries: each is checked (withdrawn? too late? quiet hours?) and
rendered for its patient inside its own fault boundary.

One that breaks is failed with the reason (masked) and the rest of the batch is sent. A batch
that cannot even be loaded is prepared again one delivery at a time, so only the broken one
fails; a database that is briefly away gets the claims handed back, failing nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.channels.base import Channel, OutgoingMessage
from notifier.delivery import faults
from notifier.delivery.outcomes import WorkItem
from notifier.domain.batches import batch_then_each
from notifier.domain.deliveries import DeliveryState, Outcome
from notifier.domain.notices import (
    WITHDRAWN,
    Heard,
    NoticeChange,
    NoticeFacts,
    Template,
    telling,
    template_for,
    too_late,
)
from notifier.domain.quiet_hours import Deferral, QuietHours, deferral
from notifier.errors import TemplateError
from notifier.rendering.messages import context, resolve_language
from notifier.rendering.renderer import Rendered
from notifier.storage import calls as call_rows
from notifier.storage import deliveries as delivery_rows
from notifier.storage import notices as notice_rows
from notifier.storage.models import Appointment, Delivery
from notifier.usecases import Deps

log = logging.getLogger(__name__)

# A later version waits for the outcome of an earlier version's message still in flight.
WAIT_FOR_EARLIER = timedelta(seconds=5)
WAITING = "waiting_for_earlier_version"
WAITING_DETAIL = (
    "an earlier version's message to this address may be at the provider: "
    "waiting for its outcome to know whether to correct it"
)
NEVER_TOLD = "never told of the closure: nothing to correct"


@dataclass
class _Batch:
    """What one claim turned into, written back in the preparing transaction."""

    items: list[WorkItem] = field(default_factory=list)
    # (state, event, detail) → ids
    finished: dict[tuple[DeliveryState, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    deferred: dict[tuple[datetime, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (until, event, detail) → ids
    failures: list[tuple[int, Outcome]] = field(default_factory=list)
    # Pure results shared by a batch's deliveries (most of a broadcast's messages are alike):
    # the quiet-hours rule per (notice, urgent), a rendering per everything its context is made of.
    waits: dict[tuple[int, bool | None], Deferral | None] = field(default_factory=dict)
    rendered: dict[tuple[object, ...], Rendered] = field(default_factory=dict)


class Preparer:
    def __init__(self, deps: Deps, channels: Mapping[str, Channel], worker_id: str) -> None:
        self.deps = deps
        self.db = deps.db
        self.channels = channels
        self.worker_id = worker_id
        self.quiet_hours = QuietHours.parse(deps.settings.quiet_hours)
        self._languages: list[str] | None = None

    def prepare(self, ids: Sequence[int], now: datetime) -> list[WorkItem]:
        """The claimed ``ids`` that are to be sent now, rendered; the rest is written back."""
        self._languages = None  # a directory listing: once per claim batch

        def on_split(error: Exception) -> None:
            log.warning(
                "a batch of deliveries could not be prepared (%s); preparing them one by one",
                faults.reason("preparing", error),
                extra={"action": "batch_prepare_failed", "count": len(ids)},
            )

        def alone(delivery_id: int, error: Exception) -> list[WorkItem]:
            """It broke in its own transaction: failed with the reason (or handed back if the
            database is briefly away)."""
            if faults.is_transient(error):
                self._hand_back([delivery_id], now, error)
            else:
                self._fail_unprepared(delivery_id, now, error)
            return []

        try:
            return batch_then_each(
                ids,
                lambda some: self._prepare(some, now),
                splits=lambda error: not faults.is_transient(error),
                alone=alone,
                on_split=on_split,
            )
        except Exception as error:  # the database is briefly away: give the batch back
            self._hand_back(ids, now, error)
            return []

    def _prepare(self, ids: Sequence[int], now: datetime) -> list[WorkItem]:
        """Load, check and render the claimed deliveries; write back what will not be sent
        (withdrawn, expired, held for quiet hours, or failed) in the same transaction."""
        batch = _Batch()
        with self.db.session() as s:
            deliveries = delivery_rows.deliveries_with_context(s, ids)
            facts: dict[int, NoticeFacts | Exception] = {}
            appointments = self._appointments(s, deliveries)
            heard = self._heard(s, deliveries)
            for delivery in deliveries:
                try:
                    self._decide(delivery, facts, appointments, heard, now, batch)
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

    def _heard(self, s: Session, deliveries: Sequence[Delivery]) -> dict[int, Heard]:
        """For each delivery of a later version (not a reminder): what its address heard of
        the earlier versions, in one query per notice and channel."""
        wanted: dict[tuple[int, str], list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            broadcast = delivery.broadcast
            notice = broadcast.notice
            if (
                notice.supersedes_id is not None
                and broadcast.repeats_id is None
                and notice.status not in WITHDRAWN  # only reconciled, never sent afresh
            ):
                wanted[(broadcast.notice_id, delivery.channel)].append(delivery)
        result: dict[int, Heard] = {}
        for (_, channel), group in wanted.items():
            notice = group[0].broadcast.notice
            by_address = notice_rows.heard(s, notice, channel, [d.address for d in group])
            result.update({d.id: by_address[d.address] for d in group})
        return result

    def _decide(
        self,
        delivery: Delivery,
        facts_by_notice: dict[int, NoticeFacts | Exception],
        appointments: dict[int, list[Appointment]],
        heard: dict[int, Heard],
        now: datetime,
        batch: _Batch,
    ) -> None:
        notice = delivery.broadcast.notice
        if notice.status in WITHDRAWN and not delivery.needs_reconcile:
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
        if delivery.id in heard:  # rule 1: the correction, the plain latest, or nothing
            if heard[delivery.id] is Heard.MAYBE:
                batch.deferred[(now + WAIT_FOR_EARLIER, WAITING, WAITING_DETAIL)].append(
                    delivery.id
                )
                return
            change = telling(facts.change, heard[delivery.id])
            if change is None:
                batch.finished[(DeliveryState.SKIPPED, "skipped", NEVER_TOLD)].append(delivery.id)
                return
            facts = replace(facts, change=change)
        elif delivery.broadcast.repeats_id is not None:
            facts = replace(facts, change=NoticeChange.ORIGINAL)  # a reminder: plainly again
        spec = self.channels[delivery.channel].spec
        if spec.quiet_hours and notice.status not in WITHDRAWN:
            urgent = spec.urgency(delivery.broadcast.urgent)
            if (notice.id, urgent) in batch.waits:
                wait = batch.waits[(notice.id, urgent)]
            else:
                wait = batch.waits[(notice.id, urgent)] = deferral(
                    self.quiet_hours, now, closure.tz, urgent, closure.starts, closure.ends
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
                    batch.deferred[(wait.until, "deferred_quiet_hours", detail)].append(delivery.id)
                return
        try:
            batch.items.append(
                self._work_item(delivery, facts, appointments.get(delivery.id, []), batch)
            )
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
        self,
        delivery: Delivery,
        facts: NoticeFacts,
        appointments: Sequence[Appointment],
        batch: _Batch,
    ) -> WorkItem:
        """Render the delivery's message: the patient's language, name and appointments (once
        per batch for each distinct set of them)."""
        spec = self.channels[delivery.channel].spec
        if self._languages is None:
            self._languages = self.deps.messages.languages()
        language = resolve_language(
            delivery.patient.language, facts.clinic.default_language, self._languages
        )
        # Rescheduled since the fan-out: the general notice still fits.
        template = template_for(facts.change, bool(appointments))
        first_name = delivery.patient.first_name
        times = tuple((a.starts_at, a.provider) for a in appointments)
        # ``facts`` is the notice's (one object per notice in a batch), or a copy telling another
        # change: its id, change and what changed, with the rest, make the context.
        key = (spec.format, facts.id, facts.change, facts.changed, language, first_name, times)
        rendered = batch.rendered.get(key)
        if rendered is None:
            ctx = context(facts, language, first_name, list(times))
            rendered = self.deps.messages.render(spec.format, ctx, template)
            batch.rendered[key] = rendered
        return WorkItem(
            delivery_id=delivery.id,
            notice_id=facts.id,
            channel=delivery.channel,
            message=OutgoingMessage(
                delivery.id,
                delivery.address,
                rendered.text,
                rendered.subject,
                rendered.html,
                delivery.patient_id,
                language=language,
            ),
            attempts=delivery.attempts,
            needs_reconcile=delivery.needs_reconcile,
            created_at=delivery.created_at,
            closure_ends=facts.closure.ends,
            cost=rendered.cost,
        )

    def _write_back(self, s: Session, batch: _Batch, now: datetime) -> None:
        spoken = [
            (item.delivery_id, item.message.language or "", item.message.text)
            for item in batch.items
            if self.channels[item.channel].spec.served
        ]
        call_rows.keep(s, spoken, now)
        for (state, event, detail), ids in batch.finished.items():
            delivery_rows.set_states(s, ids, DeliveryState.SENDING, state, now, event, detail)
        for (until, event, detail), ids in batch.deferred.items():
            delivery_rows.hand_back(
                s, ids, self.worker_id, now, until=until, event=event, detail=detail
            )
        if batch.failures:
            delivery_rows.record_many(s, self.worker_id, batch.failures, now)

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
                delivery_rows.record(s, delivery_id, self.worker_id, outcome, now)
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
                delivery_rows.hand_back(s, ids, self.worker_id, now)
        except Exception as again:  # their leases run out and they are taken over
            faults.log_failure(log, "could not hand the claims back", again)
