"""Channel registry: adding a channel is one module here plus one line below."""

from __future__ import annotations

from collections.abc import Callable

from notifier.channels.base import Channel, ChannelError, OutgoingMessage, SendResult
from notifier.channels.email import EmailChannel
from notifier.channels.sms import SmsChannel
from notifier.settings import Settings

ChannelFactory = Callable[[Settings], Channel]

CHANNELS: dict[str, ChannelFactory] = {
    "sms": SmsChannel,
    "email": EmailChannel,
}


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Instantiate every channel whose settings are complete."""
    statuses = settings.channel_statuses()
    return {name: factory(settings) for name, factory in CHANNELS.items() if statuses[name].enabled}


__all__ = ["CHANNELS", "Channel", "ChannelError", "OutgoingMessage", "SendResult", "build_channels"]
