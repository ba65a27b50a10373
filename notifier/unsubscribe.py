"""One-click unsubscribe (RFC 8058): signed, opaque tokens and the List-Unsubscribe headers.

A token is ``[patient id, channel, tag]`` signed with ``NOTIFIER_SECRET_KEY`` (itsdangerous,
HMAC over a salted key). The tag is a keyed hash (HMAC-SHA256, 96 bits) of the address, so the
token carries no address, and nobody without the key can even test a guessed one against it;
the address is found again among those the patient has or had on that channel (their
deliveries), so a link keeps working after the patient changes address. A token cannot be
forged, and it names one patient and one address, so it cannot be used for another patient.
Tokens do not expire: an old email's link still works, and links sent before tokens became
opaque (``[patient id, channel, address]`` under the ``v1`` salt) are still read, but honoured
only for an address that patient has or was sent to on that channel: anyone holding the key
could write a v1 token naming any address, and it must not opt out an address no patient has.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from itsdangerous import BadData, URLSafeSerializer

from notifier.settings import Settings

_SALT = "notifier.unsubscribe.v2"
_SALT_V1 = "notifier.unsubscribe.v1"  # readable tokens with the address inside: read only
_TAG_KEY = b"notifier.unsubscribe.address-tag"
_TAG_CHARS = 16  # base64url characters: 96 bits


@dataclass(frozen=True)
class Subscriber:
    patient_id: int
    channel: str
    address: str


@dataclass(frozen=True)
class Claim:
    """What a genuine token says: a patient and a channel, and either the address tag or, in
    a link sent before tokens became opaque, the address itself."""

    patient_id: int
    channel: str
    tag: str | None = None
    address: str | None = None


class UnsubscribeTokens:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        self._v1 = URLSafeSerializer(secret, salt=_SALT_V1)
        self._tag_key = hmac.new(secret.encode(), _TAG_KEY, hashlib.sha256).digest()

    def make(self, subscriber: Subscriber) -> str:
        tag = self._tag(subscriber.channel, subscriber.address)
        return self._serializer.dumps([subscriber.patient_id, subscriber.channel, tag])

    def read(self, token: str) -> Claim | None:
        """What a genuine token claims; None for anything forged or malformed."""
        for serializer, legacy in ((self._serializer, False), (self._v1, True)):
            try:
                data = serializer.loads(token)
            except BadData:
                continue
            if (
                not isinstance(data, list)
                or len(data) != 3
                or not isinstance(data[0], int)
                or not all(isinstance(x, str) for x in data[1:])
            ):
                return None
            if legacy:
                return Claim(data[0], data[1], address=data[2])
            return Claim(data[0], data[1], tag=data[2])
        return None

    def subscriber(self, claim: Claim, addresses: Iterable[str]) -> Subscriber | None:
        """The subscriber a claim names: the one of ``addresses`` (those the patient has or had
        on the channel) its tag was made from, or a legacy (v1) token names; None if none."""
        for address in addresses:
            if claim.address is not None:
                if hmac.compare_digest(address.encode(), claim.address.encode()):
                    return Subscriber(claim.patient_id, claim.channel, address)
                continue
            tag = self._tag(claim.channel, address)
            if claim.tag is not None and hmac.compare_digest(tag.encode(), claim.tag.encode()):
                return Subscriber(claim.patient_id, claim.channel, address)
        return None

    def _tag(self, channel: str, address: str) -> str:
        digest = hmac.new(self._tag_key, f"{channel}\n{address}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_TAG_CHARS]


def tokens(settings: Settings) -> UnsubscribeTokens | None:
    if settings.secret_key is None:
        return None
    return _tokens_for(settings.secret_key.get_secret_value())


@functools.lru_cache(maxsize=4)
def _tokens_for(secret: str) -> UnsubscribeTokens:
    """One signer per key: every closure email needs one, and building it derives a key."""
    return UnsubscribeTokens(secret)


def unsubscribe_headers(
    settings: Settings, channel: str, patient_id: int, address: str
) -> dict[str, str]:
    """List-Unsubscribe (https + mailto) and List-Unsubscribe-Post for one closure email.

    Empty when the links cannot work (no NOTIFIER_SECRET_KEY or NOTIFIER_PUBLIC_BASE_URL).
    """
    signer = tokens(settings)
    if signer is None or not settings.public_base_url:
        return {}
    token = signer.make(Subscriber(patient_id, channel, address))
    links = [f"<{settings.public_base_url}/unsubscribe/{token}>"]
    mailbox = settings.unsubscribe_mailto or settings.email_from
    if mailbox:
        links.append(f"<mailto:{mailbox}?subject={quote('unsubscribe ' + token)}>")
    return {
        "List-Unsubscribe": ", ".join(links),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
