"""Providers' reports as the receipts intake holds them: cleaned into rows before they are
stored, and applied in batches. Used by ``Deliveries.take_in`` and ``Deliveries.apply_received``
inside their transactions.

A batch locks the deliveries it names in id order (so two workers on PostgreSQL never deadlock
each other), decides every report in memory against the states it read, in arrival order per
delivery (a report never moves a delivery backwards), and writes the changes, events and
outcomes in a few statements; an UPDATE that finds a state other than the one read rolls the
whole batch back, to be applied again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from notifier.domain.calls import Redial
from notifier.domain.channels import ChannelSpec
from notifier.domain.contacts import mask_text
from notifier.domain.conversations import MessageState, reported
from notifier.domain.deliveries import DeliveryState, Report, judge
from notifier.domain.untrusted import FREE_TEXT_LIMIT, printable
from notifier.storage import receipts as receipt_rows
from notifier.storage.limits import string_lengths
from notifier.storage.models import Delivery, DeliveryEvent
from notifier.storage.receipts import Claimed
from notifier.usecases.fallback import curable, take_over

log = logging.getLogger(__name__)
# A report's fields are cut to the columns they are stored in (PostgreSQL refuses longer).
_SID_CHARS = string_lengths(Delivery)["provider_id"]
_CODE_CHARS = min(string_lengths(Delivery)["error_code"], string_lengths(DeliveryEvent)["code"])
RETRY_UNKNOWN = timedelta(seconds=1)  # how soon a report for an unknown message is tried again


def row(
    report: Report, channels: Mapping[str, ChannelSpec], source: str, now: datetime
) -> dict[str, Any] | None:
    """The intake row for ``report``, cleaned; None for a report nothing would come of (an
    unknown channel, no usable id, a status the channel does not act on: queued, sending…)."""
    spec = channels.get(report.channel)
    provider_id, status = printable(report.provider_id), printable(report.status).lower()
    if spec is None or not provider_id or len(provider_id) > _SID_CHARS:
        return None  # no id of ours is longer than the column
    if status not in spec.reports:
        return None
    code = mask_text(printable(report.error_code))[:_CODE_CHARS] if report.error_code else None
    # The provider's words may quote the patient's number or address: masked before stored.
    text = printable(report.error_message, FREE_TEXT_LIMIT) if report.error_message else None
    return {
        "channel": spec.name,
        "provider_id": provider_id,
        "status": status,
        "error_code": code or None,
        "error_message": mask_text(text) if text else None,
        "source": source,
        "received_at": now,
        "due_at": now,
    }


def apply(
    s: Session,
    channels: Mapping[str, ChannelSpec],
    batch: Sequence[Claimed],
    now: datetime,
    unknown_wait: timedelta,
    redials: Mapping[str, Redial] | None = None,
    enabled: Mapping[str, ChannelSpec] | None = None,
) -> dict[str, int]:
    """Apply a claimed batch; how many reports had each outcome (applied, duplicate, ignored,
    unknown_sid, waiting). The deliveries are locked as read, so every decision is made in
    memory and written in a few statements. A report that means "try again later" (a busy
    line) makes its delivery pending again while the channel's ``redials`` allow; one that
    fails a delivery for a reason another channel may cure hands it to the notice's fallback
    (on the ``enabled`` channels)."""
    found = receipt_rows.deliveries_for(s, sorted({r.provider_id for r in batch}))
    answers = _answers(s, channels, [r for r in batch if r.provider_id not in found], now)
    batch = [r for r in batch if r.id not in answers]
    read = {f.delivery_id: f.state for f in found.values()}
    states = dict(read)

    def order(receipt: Claimed) -> tuple[int, int]:
        known = found.get(receipt.provider_id)
        return (known.delivery_id if known else 0, receipt.id)

    events: list[dict[str, Any]] = []
    outcomes: list[tuple[int, str]] = []
    later: list[int] = []
    again: list[tuple[int, datetime]] = []
    fallen: list[int] = []
    changes: dict[int, dict[str, Any]] = {}
    for receipt in sorted(batch, key=order):
        known = found.get(receipt.provider_id)
        if known is None:
            if receipt.received_at + unknown_wait > now:
                later.append(receipt.id)
                continue
            outcomes.append((receipt.id, "unknown_sid"))
            log.info(
                "status callback for an unknown message",
                extra={"action": "status_unknown_sid", "provider_id": receipt.provider_id},
            )
            continue
        delivery_id = known.delivery_id
        spec = channels[receipt.channel]
        policy = (redials or {}).get(spec.name)
        if (
            receipt.status in spec.redial_reports
            and states[delivery_id] is DeliveryState.SENT
            and delivery_id not in changes
            and policy is not None
            and policy.allows(known.attempts)
        ):
            due = now + policy.spacing
            states[delivery_id] = DeliveryState.PENDING
            again.append((delivery_id, due))
            outcomes.append((receipt.id, "applied"))
            detail = (
                f"{receipt.status}: trying again at {due:%H:%M} UTC (attempt "
                f"{known.attempts + 1} of {policy.tries + 1}, quiet hours permitting)"
            )
            events.append(
                _event(
                    "applied",
                    delivery_id,
                    now,
                    "redial_scheduled",
                    DeliveryState.PENDING,
                    receipt.error_code,
                    detail,
                )
            )
            continue
        new = spec.reports[receipt.status]
        verdict, event = _judged(receipt, delivery_id, states[delivery_id], new, now)
        outcomes.append((receipt.id, verdict))
        if event is not None:
            events.append(event)
        if verdict == "applied":
            states[delivery_id] = new
            change = changes.setdefault(delivery_id, {"b_id": delivery_id, "b_code": None})
            change |= {"b_was": read[delivery_id], "b_state": new.value}
            if receipt.error_code is not None and event is not None:
                change |= {"b_code": receipt.error_code, "b_detail": event["detail"]}
            if curable(spec, new, receipt.error_code):
                fallen.append(delivery_id)
    receipt_rows.advance(s, list(changes.values()), now)
    receipt_rows.redial(s, again, now)
    if fallen:
        s.flush()
        take_over(s, enabled or {}, fallen, now)
    receipt_rows.add_events(s, events)
    receipt_rows.mark(s, outcomes, now)
    receipt_rows.postpone(s, later, now + RETRY_UNKNOWN)
    counts: dict[str, int] = {"waiting": len(later)} if later else {}
    for verdict in answers.values():
        counts[verdict] = counts.get(verdict, 0) + 1
    for _, verdict in outcomes:
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def _answers(
    s: Session, channels: Mapping[str, ChannelSpec], unmatched: Sequence[Claimed], now: datetime
) -> dict[int, str]:
    """Reports about staff answers and auto-replies (not deliveries): each answer moves
    forward to delivered, undelivered or failed, never back; the reports are marked. The
    outcome of each report, by its id."""
    if not unmatched:
        return {}
    known = receipt_rows.answers_for(s, sorted({r.provider_id for r in unmatched}))
    states = {sid: MessageState(state) for sid, (_, state) in known.items()}
    verdicts: dict[int, str] = {}
    changes: dict[int, tuple[int, str, str | None, str | None]] = {}
    for receipt in sorted(unmatched, key=lambda r: r.id):
        if receipt.provider_id not in known:
            continue
        message_id = known[receipt.provider_id][0]
        report = channels[receipt.channel].reports[receipt.status]
        new = reported(states[receipt.provider_id], report)
        verdicts[receipt.id] = "applied" if new is not None else "duplicate"
        if new is not None:
            states[receipt.provider_id] = new
            changes[message_id] = (message_id, new.value, receipt.error_code, receipt.error_message)
    receipt_rows.advance_answers(s, list(changes.values()), now)
    receipt_rows.mark(s, list(verdicts.items()), now)
    return verdicts


def _judged(
    receipt: Claimed,
    delivery_id: int,
    current: DeliveryState,
    new: DeliveryState,
    now: datetime,
) -> tuple[str, dict[str, Any] | None]:
    """One report against the delivery's state: its outcome and the event it adds (none for
    a duplicate)."""
    status, code = receipt.status, receipt.error_code
    verdict = judge(current, new)
    if verdict == "applied":
        detail = receipt.error_message or (
            f"the provider reported {status}" + (f" (error {code})" if code else "")
        )
        return verdict, _event(verdict, delivery_id, now, f"status_{new.value}", new, code, detail)
    if verdict == "duplicate":
        return verdict, None
    detail = f"late or conflicting status {status!r} ignored: already {current.value}"
    return verdict, _event(verdict, delivery_id, now, "status_ignored", current, code, detail)


def _event(
    outcome: str,
    delivery_id: int,
    now: datetime,
    kind: str,
    state: DeliveryState,
    code: str | None,
    detail: str,
) -> dict[str, Any]:
    log.info(
        "status callback %s",
        outcome,
        extra={"action": f"status_{outcome}", "delivery_id": delivery_id, "code": code},
    )
    return {
        "delivery_id": delivery_id,
        "at": now,
        "kind": kind,
        "state": state.value,
        "attempt": 0,
        "code": code,
        "detail": detail,
    }
