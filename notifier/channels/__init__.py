"""Channel registry: adding a channel is one module here plus one line below.

Everything else (fan-out, rendering, quiet hours, the weekly cap, consent, status reports, the
API's and the console's channel lists) reads the channel's ``spec``; nothing outside this
package branches on a channel's name.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifier.channels.base import (
    Channel,
    ChannelError,
    ChannelFactory,
    ChannelStatus,
    OutgoingMessage,
    SendResult,
)
from notifier.channels.email import EmailChannel
from notifier.channels.sms import SmsChannel
from notifier.channels.voice import VoiceChannel
from notifier.clock import Clock
from notifier.domain.channels import ChannelSpec
from notifier.domain.senders import Sender, parse_pool
from notifier.errors import ConfigurationError
from notifier.settings import ENV_PREFIX, Settings

CHANNELS: dict[str, ChannelFactory] = {
    SmsChannel.spec.name: SmsChannel,
    EmailChannel.spec.name: EmailChannel,
    VoiceChannel.spec.name: VoiceChannel,
}


def specs() -> dict[str, ChannelSpec]:
    """Every registered channel's spec, by name, in registry order."""
    return {name: factory.spec for name, factory in CHANNELS.items()}


def status(spec: ChannelSpec, settings: Settings) -> ChannelStatus:
    """All required settings set: enabled. None set: disabled, with the reason. Some set: a
    configuration error naming what is missing."""
    missing = [
        " or ".join(ENV_PREFIX + one.upper() for one in name.split("|"))
        for name in spec.required_settings
        if not any(getattr(settings, one) for one in name.split("|"))
    ]
    if not missing:
        needed = [
            ENV_PREFIX + name.upper() for name in spec.needs_settings if not getattr(settings, name)
        ]
        if needed:
            raise ConfigurationError(
                f"{spec.label} needs {', '.join(needed)} (or unset "
                f"{', '.join(ENV_PREFIX + n.upper() for n in spec.required_settings)} to "
                "disable it)"
            )
        return ChannelStatus(True)
    if len(missing) == len(spec.required_settings):
        return ChannelStatus(False, f"{spec.label} disabled: {', '.join(missing)} not set")
    raise ConfigurationError(
        f"{spec.label} is half configured: set {', '.join(missing)} "
        f"(or unset the other {spec.label} settings to disable it)"
    )


def statuses(settings: Settings) -> dict[str, ChannelStatus]:
    return {name: status(spec, settings) for name, spec in specs().items()}


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """Instantiate every channel whose settings are complete, on the service's clock."""
    enabled = statuses(settings)
    return {
        name: factory(settings, clock)
        for name, factory in CHANNELS.items()
        if enabled[name].enabled
    }


def price(spec: ChannelSpec, settings: Settings) -> float | None:
    """What one rate unit (a segment or a message) of the channel costs; None: not configured."""
    value = getattr(settings, spec.price_setting, None)
    return float(value) if isinstance(value, int | float) else None


def rate(spec: ChannelSpec, settings: Settings) -> float:
    """The channel's configured rate: units (segments or messages) per second; with a pool of
    senders, the pool's (each patient's share follows the senders' rates)."""
    pool = senders(spec, settings)
    if pool:
        return sum(sender.rate for sender in pool)
    return float(getattr(settings, spec.rate_setting))


def weekly_cap(spec: ChannelSpec, settings: Settings) -> int:
    """The channel's weekly cap per address (0: none)."""
    return int(getattr(settings, spec.cap_setting)) if spec.cap_setting else 0


def senders(spec: ChannelSpec, settings: Settings) -> tuple[Sender, ...]:
    """The channel's pool of senders with their rates; empty if it sends from one."""
    text = getattr(settings, spec.senders_setting) if spec.senders_setting else None
    if not text:
        return ()
    return parse_pool(text, float(getattr(settings, spec.rate_setting)))


def rates(settings: Settings, names: Mapping[str, ChannelSpec] | None = None) -> dict[str, float]:
    return {name: rate(spec, settings) for name, spec in (names or specs()).items()}


__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelError",
    "ChannelFactory",
    "ChannelStatus",
    "OutgoingMessage",
    "SendResult",
    "build_channels",
    "rate",
    "rates",
    "senders",
    "specs",
    "status",
    "statuses",
    "weekly_cap",
]
