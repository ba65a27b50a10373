"""Deliveries: one message to one address over one channel. Their states, the order a provider's
reports may move them in, what an attempt's outcome is, and the retry policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its first attempt or a retry (see next_attempt_at)
    SENDING = "sending"  # claimed by a worker; the provider call may be in flight
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the provider confirmed delivery to the handset
    UNDELIVERED = "undelivered"  # the provider reported that delivery failed
    FAILED = "failed"  # refused permanently, retries exhausted, or an internal error
    EXPIRED = "expired"  # the closure ended before it could be sent
    CANCELLED = "cancelled"  # the notice was cancelled before it was sent
    SKIPPED = "skipped"  # not sent on purpose (no consent, opted out, ...)


FINAL_STATES = frozenset(
    {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.UNDELIVERED,
        DeliveryState.FAILED,
        DeliveryState.EXPIRED,
        DeliveryState.CANCELLED,
        DeliveryState.SKIPPED,
    }
)
"""States the dispatcher never leaves (a status callback may still refine SENT)."""

OPEN_STATES = (DeliveryState.PENDING, DeliveryState.SENDING)
"""Not final yet: waiting, or in a worker's hands."""

REACHED_STATES = (DeliveryState.SENT, DeliveryState.DELIVERED)
"""The patient was told (the provider took the message)."""

BUCKETS: tuple[tuple[str, tuple[DeliveryState, ...]], ...] = (
    ("delivered", (DeliveryState.DELIVERED,)),
    ("sent", (DeliveryState.SENT,)),
    ("queued", OPEN_STATES),
    ("failed", (DeliveryState.FAILED, DeliveryState.UNDELIVERED)),
    ("skipped", (DeliveryState.SKIPPED,)),
    ("stopped", (DeliveryState.CANCELLED, DeliveryState.EXPIRED)),
)
"""How staff count a notice's deliveries, in the order progress bars show them."""


def bucket_counts(states: dict[str, int]) -> dict[str, int]:
    """Deliveries by state → by bucket (every bucket present)."""
    return {label: sum(states.get(state, 0) for state in members) for label, members in BUCKETS}


def eta_seconds(finished: int, queued: int, elapsed: float) -> tuple[float | None, float | None]:
    """(messages per second so far, seconds until the queued ones are done at that pace);
    None where there is no pace yet."""
    if elapsed <= 0 or finished <= 0:
        return None, None
    rate = finished / elapsed
    return rate, queued / rate


_RANK = {DeliveryState.PENDING: 0, DeliveryState.SENDING: 0, DeliveryState.SENT: 1}


def rank(state: DeliveryState) -> int:
    """How far along a delivery is; a provider's report never moves it to a lower rank."""
    return _RANK.get(state, 2)


def earlier_than(state: DeliveryState) -> list[DeliveryState]:
    return [s for s in DeliveryState if rank(s) < rank(state)]


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery, as the dispatcher decided it."""

    state: DeliveryState
    event: str
    attempts: int
    provider_id: str | None = None
    segments: int | None = None
    code: str | None = None
    detail: str | None = None
    next_attempt_at: datetime | None = None
    needs_reconcile: bool = False


def retry_delay(
    attempt: int, base: float, cap: float, jitter: float, retry_after: float | None = None
) -> float:
    """Capped exponential backoff with full jitter; a provider's Retry-After is a floor.

    ``jitter`` is a number in [0, 1) supplied by the caller, so the rule stays deterministic.
    """
    backoff = min(cap, base * 2.0 ** max(0, attempt - 1))
    delay = backoff / 2 + backoff / 2 * jitter
    return max(delay, retry_after or 0.0)
