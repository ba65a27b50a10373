"""The one small contract every channel implements.

A channel declares what it is (``spec``: its address field, consent column, message format, rate
setting, the provider's report statuses) and turns an ``OutgoingMessage`` into a provider
request. It classifies failures (it alone knows the provider's codes) by raising
``ChannelError``; the dispatcher decides what to do next and records it. A provider's text
often quotes the address back ("Invalid 'To' Phone Number: +1…"): ``ChannelError`` masks every
phone and email in its message as it is made, so nothing downstream can store or log it raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Protocol, runtime_checkable

from notifier.clock import Clock
from notifier.domain.channels import ChannelSpec
from notifier.domain.contacts import mask_text
from notifier.domain.deliveries import Report
from notifier.errors import NotifierError
from notifier.settings import Settings


@dataclass(frozen=True)
class ChannelStatus:
    """Whether a channel can send, and if not, why (shown at start and in previews)."""

    enabled: bool
    reason: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: int
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    patient_id: int | None = None  # for links that act for this patient (unsubscribe)
    sender: str | None = None  # from the channel's pool of senders, if it has one
    language: str | None = None  # the language it was rendered in


@dataclass(frozen=True)
class SendResult:
    provider_id: str
    segments: int | None = None


class ChannelError(NotifierError):
    """A send failed. ``permanent``: retrying cannot help. ``ambiguous``: the provider may
    have accepted the message anyway, so check before sending again. The message is stored
    with phones and emails masked."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        permanent: bool = False,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.message = mask_text(message)
        super().__init__(self.message)
        self.code = code
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class Channel(Protocol):
    spec: ClassVar[ChannelSpec]

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand the message to the provider; raise ``ChannelError`` on failure."""
        ...

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        """After a crash or an ambiguous failure: did the provider already take this message?"""
        ...

    def close(self) -> None: ...


class ChannelFactory(Protocol):
    """A channel class: its spec, and a constructor from the settings and the service's clock
    (what a channel dates or lets expire goes by the service's time, never the wall clock)."""

    @property
    def spec(self) -> ChannelSpec: ...

    def __call__(self, settings: Settings, clock: Clock) -> Channel: ...


@runtime_checkable
class Asked(Protocol):
    """A channel whose provider can be asked where its messages are (reconciliation)."""

    def reports(
        self, provider_ids: Sequence[str], sent: tuple[date, date] | None = None
    ) -> list[Report]:
        """The provider's current status of each message it still knows (``sent``: the first
        and last day, UTC, they were sent on, for a provider that can list by day); raise
        ``ChannelError`` if it cannot be asked at all."""
        ...
