"""Fallback between channels, inside the transaction that records a permanent failure.

A broadcast may carry a fallback order (``"sms>voice>email"``). When one of its deliveries fails
for good with a code its channel says another channel may cure (``ChannelSpec.curable_codes``:
Twilio 21614 or 30006 for a landline, an SMTP 5xx for a mailbox that is gone), the next channel
in the order that the patient consented to, has an address for, has not opted out of and is
enabled gets one delivery that stands in for it (``fallback_of``), once. A patient never hears
the notice twice on one channel: a broadcast has at most one delivery per channel and address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.domain.channels import ChannelSpec
from notifier.domain.contacts import mask_address
from notifier.domain.deliveries import DeliveryState
from notifier.storage import fallback as fallback_rows

log = logging.getLogger(__name__)
FAILED = (DeliveryState.FAILED, DeliveryState.UNDELIVERED)


def curable(spec: ChannelSpec, state: DeliveryState, code: str | None) -> bool:
    """Whether a delivery in ``state`` with ``code`` is one a fallback may take over."""
    return state in FAILED and spec.cures(code)


def take_over(
    s: Session, enabled: Mapping[str, ChannelSpec], delivery_ids: Sequence[int], now: datetime
) -> int:
    """Queue the next channel for each of ``delivery_ids`` (failed for good, curably) whose
    broadcast has a fallback order; how many were queued."""
    if not delivery_ids:
        return 0
    queued = 0
    for failed in fallback_rows.failed_with_fallback(s, delivery_ids):
        order = (failed.broadcast.fallback or "").split(">")
        if failed.channel not in order:
            continue
        for name in order[order.index(failed.channel) + 1 :]:
            spec = enabled.get(name)
            if spec is None:
                continue
            address = getattr(failed.patient, spec.address.value)
            if not address or not getattr(failed.patient, spec.consent_field):
                continue
            if fallback_rows.opted_out(s, name, address):
                continue
            if fallback_rows.taken(s, failed.broadcast_id, name, address):
                break  # told there already (or about to be): never twice
            why = f"{failed.channel} failed ({failed.error_code}), trying {spec.label}"
            new_id = fallback_rows.queue(s, failed, name, address, now, why)
            queued += 1
            log.info(
                "fallback queued",
                extra={
                    "action": "fallback_queued",
                    "delivery_id": new_id,
                    "fallback_of": failed.id,
                    "channel": name,
                    "to": mask_address(address),
                },
            )
            break
    return queued
