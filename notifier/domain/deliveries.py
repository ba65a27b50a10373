"""Deliveries: one message to one address over one channel. Their states, the order a provider's
reports may move them in, what an attempt's outcome is, and the retry policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.notices import too_late


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


@dataclass(frozen=True)
class Failure:
    """A provider call that failed, as the channel classified it."""

    message: str
    code: str | None = None
    permanent: bool = False
    ambiguous: bool = False  # the provider may have taken the message anyway
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float
    max_attempts: int | None = None  # None: retry for as long as the message is useful


def sent(attempts: int, provider_id: str, segments: int, event: str = "sent") -> Outcome:
    return Outcome(DeliveryState.SENT, event, attempts, provider_id=provider_id, segments=segments)


def withdrawn(attempts: int) -> Outcome:
    """Its notice was cancelled or replaced while the message waited: not sent (a later version
    tells this address what it needs to know)."""
    return Outcome(
        DeliveryState.CANCELLED,
        "withdrawn",
        attempts,
        detail="the notice was cancelled or replaced before this message went out",
    )


def opted_out(attempts: int) -> Outcome:
    """Its address opted out (a STOP) while the message waited: not sent."""
    return Outcome(DeliveryState.SKIPPED, "skipped", attempts, detail="opted out")


def paused(attempts: int, until: datetime, channel: str, needs_reconcile: bool) -> Outcome:
    """Not attempted: the channel's provider is failing every request (its breaker is open)."""
    return Outcome(
        DeliveryState.PENDING,
        "paused",
        attempts,
        detail=f"the {channel} provider is failing every request; sends paused, none counted",
        next_attempt_at=until,
        needs_reconcile=needs_reconcile,
    )


def failed(
    failure: Failure,
    attempts: int,
    policy: RetryPolicy,
    now: datetime,
    jitter: float,
    closure_ends: datetime,
) -> Outcome:
    """After attempt number ``attempts`` failed: fail it, retry it later, or let it expire."""
    if failure.permanent:
        return Outcome(
            DeliveryState.FAILED, "failed", attempts, code=failure.code, detail=failure.message
        )
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return Outcome(
            DeliveryState.FAILED,
            "failed",
            attempts,
            code=failure.code,
            detail=f"gave up after {attempts} attempts; last error: {failure.message}",
            needs_reconcile=failure.ambiguous,
        )
    delay = retry_delay(
        attempts, policy.base_seconds, policy.max_seconds, jitter, failure.retry_after
    )
    next_attempt = now + timedelta(seconds=delay)
    if too_late(closure_ends, next_attempt):
        return Outcome(
            DeliveryState.EXPIRED,
            "expired",
            attempts,
            code=failure.code,
            detail=f"the closure ends before the next retry; last error: {failure.message}",
        )
    return Outcome(
        DeliveryState.PENDING,
        "retry_scheduled",
        attempts,
        code=failure.code,
        detail=f"{failure.message} (retry in {delay:.0f}s)",
        next_attempt_at=next_attempt,
        needs_reconcile=failure.ambiguous,
    )


@dataclass(frozen=True)
class Report:
    """What a provider says about one message it took (a status callback, or its answer when
    asked): the provider's id, its status word, and the error it gave, if any."""

    channel: str
    provider_id: str
    status: str
    error_code: str | None = None
    error_message: str | None = None


def judge(current: DeliveryState, new: DeliveryState) -> str:
    """What a report of ``new`` does to a delivery in ``current``: ``applied`` (it moves
    forward), ``duplicate`` (already there) or ``ignored`` (late or conflicting)."""
    if rank(current) < rank(new):
        return "applied"
    return "duplicate" if current == new else "ignored"
