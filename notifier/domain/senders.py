"""Senders: the numbers (or the one Messaging Service) a channel sends from, each with its own
rate, and which one a patient hears from.

A patient keeps the same sender across notices, so replies and STOP land on the number they
know: the choice is a weighted rendezvous hash of (address, sender), stable across processes
and restarts without storing anything, weighted by each sender's rate, and when a number joins
or leaves the pool only the patients of that number move.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from notifier.errors import ValidationError


@dataclass(frozen=True)
class Sender:
    address: str  # "+15405550100"
    rate: float  # segments per second


def parse_pool(text: str, default_rate: float) -> tuple[Sender, ...]:
    """``"+15405550100=1, +18885550100=3"``; a number without ``=rate`` gets ``default_rate``."""
    senders: list[Sender] = []
    for item in text.split(","):
        number, _, rate = item.strip().partition("=")
        number = number.strip()
        if not number:
            continue
        try:
            value = float(rate) if rate.strip() else default_rate
        except ValueError:
            raise ValidationError(
                f"sender {number}: rate {rate.strip()!r} is not a number"
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(f"sender {number}: the rate must be a positive number")
        if any(s.address == number for s in senders):
            raise ValidationError(f"sender {number} is listed twice")
        senders.append(Sender(number, value))
    if not senders:
        raise ValidationError("the sender pool is empty")
    return tuple(senders)


def choose(address: str, pool: tuple[Sender, ...]) -> Sender:
    """The sender this address always hears from (while the pool holds it)."""
    return max(pool, key=lambda sender: _score(address, sender))


def _score(address: str, sender: Sender) -> float:
    digest = hashlib.blake2b(f"{address}\x00{sender.address}".encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
    return -sender.rate / math.log(unit)


def share_out(addresses: Iterable[str], pool: tuple[Sender, ...]) -> dict[Sender, int]:
    """How many of ``addresses`` each sender of the pool sends to (``choose`` for each)."""
    counts = dict.fromkeys(pool, 0)
    for address in addresses:
        counts[choose(address, pool)] += 1
    return counts
