"""How a provider's report moves a delivery: forward only, a repeat is a duplicate, anything
else late or conflicting is ignored (and kept as an event by the caller)."""

from __future__ import annotations

import pytest

from notifier.domain.deliveries import DeliveryState, judge

S = DeliveryState


@pytest.mark.parametrize(
    ("current", "new", "verdict"),
    [
        (S.SENDING, S.SENT, "applied"),
        (S.SENDING, S.DELIVERED, "applied"),  # the callback overtook our record of the send
        (S.SENT, S.DELIVERED, "applied"),
        (S.SENT, S.UNDELIVERED, "applied"),
        (S.SENT, S.SENT, "duplicate"),
        (S.DELIVERED, S.DELIVERED, "duplicate"),
        (S.DELIVERED, S.SENT, "ignored"),  # late
        (S.DELIVERED, S.UNDELIVERED, "ignored"),  # conflicting: the first final one stands
        (S.FAILED, S.DELIVERED, "ignored"),
    ],
)
def test_a_report_moves_a_delivery_forward_only(
    current: DeliveryState, new: DeliveryState, verdict: str
) -> None:
    assert judge(current, new) == verdict
