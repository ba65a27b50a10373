"""The one fake channel: at our own seam (the ``Channel`` protocol), for tests of our decisions.
Provider behaviour itself is tested through the real SDKs against the sandbox servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.channels.sms import SmsChannel
from notifier.domain.channels import ChannelSpec

Script = Callable[[OutgoingMessage, int], SendResult | ChannelError]


def accept(message: OutgoingMessage, _call: int) -> SendResult:
    """Every message taken, with a provider id derived from the delivery (2 segments)."""
    return SendResult(f"SM{message.delivery_id:032d}", 2)


class FakeChannel:
    """Records every send; ``script(message, call_number)`` decides each outcome. Answers
    ``find_sent`` from what it accepted, as a provider would."""

    def __init__(self, script: Script = accept, spec: ChannelSpec = SmsChannel.spec) -> None:
        self.spec = spec
        self.script = script
        self.sent: list[OutgoingMessage] = []
        self.accepted: dict[int, SendResult] = {}
        self._accepted_in_order: list[OutgoingMessage] = []
        self.reconcile_checks: list[int] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        outcome = self.script(message, len(self.sent))
        if isinstance(outcome, ChannelError):
            raise outcome
        self.accepted[message.delivery_id] = outcome
        self._accepted_in_order.append(message)
        return outcome

    def accepted_messages(self) -> list[OutgoingMessage]:
        """What the provider took, in the order it took it."""
        return list(self._accepted_in_order)

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        self.reconcile_checks.append(message.delivery_id)
        return self.accepted.get(message.delivery_id)

    def close(self) -> None:
        pass


def refusing(address: str, code: str = "21614") -> FakeChannel:
    """Accepts every text except to ``address`` (a permanent failure, as for a landline)."""

    def script(message: OutgoingMessage, call: int) -> SendResult | ChannelError:
        if message.to == address:
            return ChannelError("not a mobile number", code=code, permanent=True)
        return accept(message, call)

    return FakeChannel(script)
