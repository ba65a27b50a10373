"""What a channel is, in the domain's terms: data each channel module declares about itself, so
nothing outside ``notifier/channels/`` branches on a channel's name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from notifier.domain.deliveries import DeliveryState
from notifier.errors import ValidationError


class MessageFormat(StrEnum):
    """The template family a channel's messages are rendered from (``templates/<value>/``)."""

    TEXT = "sms"  # one short plain text, counted (and billed, and throttled) in SMS segments
    EMAIL = "email"  # subject, plain text and HTML


class AddressField(StrEnum):
    """The patient's address a channel sends to (a column of ``patients``)."""

    PHONE = "phone"
    EMAIL = "email"


@dataclass(frozen=True)
class ChannelSpec:
    """What a channel declares about itself. By convention its patients' consent is the column
    ``<name>_consent`` and its rate the setting ``<name>_rate_per_second``; a channel that
    shares another's names them."""

    name: str  # as stored on deliveries and broadcasts: "sms"
    label: str  # as said in sentences: "no SMS consent", "SMS disabled: ..."
    address: AddressField  # the patients column it sends to
    format: MessageFormat  # the template family its messages are rendered from
    # All set: enabled; none set: disabled. "a|b": either will do.
    required_settings: tuple[str, ...] = ()
    weekly_cap: bool = False  # counts against NOTIFIER_SMS_WEEKLY_CAP
    quiet_hours: bool = False  # held back during NOTIFIER_QUIET_HOURS unless urgent
    # The provider's delivery reports → our states; others (queued, sending...) change nothing.
    reports: Mapping[str, DeliveryState] = field(default_factory=dict)
    # Provider error codes meaning "this address unsubscribed with us" (Twilio 21610).
    opt_out_codes: frozenset[str] = frozenset()
    consent_field: str = ""  # default: <name>_consent
    rate_setting: str = ""  # the Settings field with units (segments or messages) per second
    # The Settings field with a pool of senders with their own rates (domain.senders), if any.
    senders_setting: str | None = None
    max_characters: int | None = None  # the provider refuses a longer message (Twilio: 1,600)
    # The Settings field with the price of one rate unit (a segment or a message), for the
    # plan's cost estimate; default ``<name>_price`` (a channel without one shows no cost).
    price_setting: str = ""

    def __post_init__(self) -> None:
        if not self.price_setting:
            object.__setattr__(self, "price_setting", f"{self.name}_price")
        if not self.consent_field:
            object.__setattr__(self, "consent_field", f"{self.name}_consent")
        if not self.rate_setting:
            object.__setattr__(self, "rate_setting", f"{self.name}_rate_per_second")

    @property
    def counts_segments(self) -> bool:
        return self.format is MessageFormat.TEXT

    @property
    def rate_variable(self) -> str:
        return f"NOTIFIER_{self.rate_setting.upper()}"


def parse_channels(given: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """Channel names as given, each one of ``known``, deduplicated."""
    allowed = list(known)
    names = [c.strip().lower() for c in given]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValidationError(
            f"channels {','.join(unknown) or '(none)'} not understood: use one or more of "
            f"{', '.join(allowed)}",
            "channels",
        )
    return tuple(dict.fromkeys(names))
