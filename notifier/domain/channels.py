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
    SPOKEN = "voice"  # words written for the ear, read out by a text-to-speech voice


class AddressField(StrEnum):
    """The patient's address a channel sends to (a column of ``patients``)."""

    PHONE = "phone"
    EMAIL = "email"


@dataclass(frozen=True)
class ChannelSpec:
    """Everything a channel is, declared by its module: its patients columns (address, consent,
    the CSV column the consent is imported from), its settings (those that enable it, its rate,
    its weekly cap), the rules it follows (quiet hours), and what its provider's words mean
    (reports, opt-out codes, failures another channel can cure). Nothing outside
    ``notifier/channels/`` branches on a channel's name: adding one is its module, one registry
    line, and a migration for its consent column."""

    name: str  # as stored on deliveries and broadcasts: "sms"
    label: str  # as said in sentences: "no SMS consent", "SMS disabled: ..."
    address: AddressField  # the patients column it sends to
    format: MessageFormat  # the template family its messages are rendered from
    # All set: enabled; none set: disabled. "a|b": either will do.
    required_settings: tuple[str, ...] = ()
    # Settings it cannot work without once enabled (shared with other channels, so their being
    # set does not enable it): enabled without them is a configuration error.
    needs_settings: tuple[str, ...] = ()
    # The Settings field with its weekly cap (messages per address in a rolling week), if any.
    cap_setting: str | None = None
    quiet_hours: bool = False  # held back during NOTIFIER_QUIET_HOURS unless urgent
    # Whether an urgent broadcast goes through quiet hours on it (a text at 05:00 about a
    # closure that morning can wait on the phone; a call rings in the dark): False holds it
    # until the window opens, urgent or not.
    urgent_in_quiet_hours: bool = True
    # The provider's delivery reports → our states; others (queued, sending...) change nothing.
    reports: Mapping[str, DeliveryState] = field(default_factory=dict)
    # Reports that mean "try again later" (a call met a busy line): redialled, see redial_*.
    redial_reports: frozenset[str] = frozenset()
    redial_setting: str | None = None  # the Settings field: how many more tries
    redial_spacing_setting: str | None = None  # the Settings field: minutes between tries
    # Provider error codes meaning "this address unsubscribed with us" (Twilio 21610).
    opt_out_codes: frozenset[str] = frozenset()
    # Provider error codes (or SMTP classes like "5xx") of a permanent failure that another
    # channel may cure (a landline cannot take a text: call it): the notice's fallback goes on.
    curable_codes: frozenset[str] = frozenset()
    consent_field: str = ""  # the patients column; default: <name>_consent
    csv_column: str = ""  # the patients CSV column it is imported from; default: consent_field
    csv_required: bool = True  # False: a CSV without the column imports "no consent"
    rate_setting: str = ""  # the Settings field with units (segments or messages) per second
    # The Settings field with a pool of senders with their own rates (domain.senders), if any.
    senders_setting: str | None = None
    max_characters: int | None = None  # the provider refuses a longer message (Twilio: 1,600)
    # A notice that names no channels goes out on those with by_default (a call only when asked).
    by_default: bool = True
    # The provider fetches the words from us while it delivers them (a call's TwiML): they are
    # kept when the message is prepared.
    served: bool = False
    # The Settings field with the price of one rate unit (a segment or a message), for the
    # plan's cost estimate; default ``<name>_price`` (a channel without one shows no cost).
    price_setting: str = ""

    def __post_init__(self) -> None:
        if not self.price_setting:
            object.__setattr__(self, "price_setting", f"{self.name}_price")
        if not self.consent_field:
            object.__setattr__(self, "consent_field", f"{self.name}_consent")
        if not self.csv_column:
            object.__setattr__(self, "csv_column", self.consent_field)
        if not self.rate_setting:
            object.__setattr__(self, "rate_setting", f"{self.name}_rate_per_second")

    @property
    def weekly_cap(self) -> bool:
        return self.cap_setting is not None

    @property
    def counts_segments(self) -> bool:
        return self.format is MessageFormat.TEXT

    @property
    def rate_variable(self) -> str:
        return f"NOTIFIER_{self.rate_setting.upper()}"

    def urgency(self, urgent: bool | None) -> bool | None:
        """The broadcast's urgency as this channel's quiet hours see it: never urgent on a
        channel urgency cannot take through quiet hours."""
        return urgent if self.urgent_in_quiet_hours else False

    def cures(self, code: str | None) -> bool:
        """Whether a permanent failure with this provider code may be cured by another channel
        (codes like ``5xx`` match a class of SMTP replies)."""
        if not code:
            return False
        return code in self.curable_codes or f"{code[:1]}xx" in self.curable_codes


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


def parse_fallback(text: str, known: Iterable[str]) -> tuple[str, ...]:
    """A notice's fallback order from ``"sms>voice>email"``: two or more known channels, each
    once. A delivery that fails for good for a reason the next channel may cure is tried there."""
    allowed = list(known)
    names = [c.strip().lower() for c in text.split(">")]
    unknown = [n for n in names if n not in allowed]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise ValidationError(
            f"fallback {text!r} not understood: two or more of {', '.join(allowed)}, each once, "
            "in order, like sms>voice>email",
            "fallback",
        )
    return tuple(names)
