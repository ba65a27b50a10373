"""What stays of an address once it is erased: a marker per delivery row, or a keyed hash.

A keyed hash (HMAC-SHA256 under a key derived from ``NOTIFIER_SECRET_KEY``) lets an opted-out
address be recognised if it is ever imported again, and a consent ledger entry be checked
against a number someone names, without the address being stored: nobody without the key can
test guesses against it (a plain hash of a phone number falls to a dictionary of all numbers).
"""

from __future__ import annotations

import hashlib
import hmac

ERASED = "erased:"  # a delivery's address after retention or forget: "erased:<delivery id>"
DIGEST = "hmac:"  # a consent ledger address after erasure: "hmac:<hex digest>"
_KEY_LABEL = b"notifier.erasure.address-digest"


def address_digest(secret: str, channel: str, address: str) -> str:
    """The keyed hash of an address on a channel, hex (64 characters)."""
    key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
    return hmac.new(key, f"{channel}\n{address}".encode(), hashlib.sha256).hexdigest()


def erased_address(delivery_id: int) -> str:
    """A delivery's address once erased: unique per row, as the delivery key needs."""
    return f"{ERASED}{delivery_id}"
