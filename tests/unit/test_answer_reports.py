"""A provider's report moves a staff answer forward only, never back."""

from __future__ import annotations

import pytest

from notifier.domain.conversations import MessageState, reported
from notifier.domain.deliveries import DeliveryState


@pytest.mark.parametrize(
    ("current", "report", "after"),
    [
        (MessageState.SENT, DeliveryState.DELIVERED, MessageState.DELIVERED),
        (MessageState.SENDING, DeliveryState.DELIVERED, MessageState.DELIVERED),
        (MessageState.SENT, DeliveryState.UNDELIVERED, MessageState.UNDELIVERED),
        (MessageState.SENT, DeliveryState.FAILED, MessageState.FAILED),
        (MessageState.SENT, DeliveryState.SENT, None),  # "sent" again says nothing new
        (MessageState.DELIVERED, DeliveryState.UNDELIVERED, None),  # late and conflicting
        (MessageState.DELIVERED, DeliveryState.DELIVERED, None),  # a duplicate
        (MessageState.REFUSED, DeliveryState.DELIVERED, None),  # never sent: nothing to report
    ],
)
def test_a_report_moves_an_answer_forward_only(
    current: MessageState, report: DeliveryState, after: MessageState | None
) -> None:
    assert reported(current, report) == after
