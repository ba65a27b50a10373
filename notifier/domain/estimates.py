"""How long a broadcast takes at the configured rates, and when that is too long."""

from __future__ import annotations

from collections.abc import Mapping


def seconds(units: float, rate_per_second: float) -> float:
    return round(units / rate_per_second, 1)


def too_long(
    estimate: Mapping[str, float], window_seconds: float, rate_settings: Mapping[str, str]
) -> list[str]:
    """Warn when a channel needs longer than the provider will queue (Twilio: ~10 hours)."""
    warnings = []
    for channel, needed in estimate.items():
        if needed > window_seconds:
            warnings.append(
                f"{channel}: sending to everyone takes about {duration(needed)} at the "
                f"configured rate ({rate_settings[channel]}), longer than the "
                f"{duration(window_seconds)} the provider queues; later messages may be "
                "dropped or arrive after the closure — use a faster sender or split the list"
            )
    return warnings


def too_long_per_sender(
    channel: str,
    seconds_by_sender: Mapping[str, float],
    window_seconds: float,
    rate_setting: str,
) -> list[str]:
    """Warn for each sender of a pool that needs longer than the provider queues at its own
    rate: a slow number in a pool fails its patients even when the pool as a whole is fast."""
    return [
        f"{channel} from {sender}: its patients' messages take about {duration(needed)} at "
        f"its rate ({rate_setting}), longer than the {duration(window_seconds)} the provider "
        "queues; later messages may be dropped or arrive after the closure — give it a faster "
        "rate, add numbers to the pool or split the list"
        for sender, needed in seconds_by_sender.items()
        if needed > window_seconds
    ]


def duration(seconds: float) -> str:
    """``45 s``, ``12 min 5 s``, ``5.6 h``: as precise as a person needs."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds / 3600:.1f} h"
