"""One-click unsubscribe (RFC 8058): signed tokens and the List-Unsubscribe headers.

A token is the patient, channel and address signed with ``NOTIFIER_SECRET_KEY`` (itsdangerous,
HMAC-SHA1 over a salted key): it cannot be forged, and it names one patient and one address, so
it cannot be used for another patient. Tokens do not expire: an old email's link still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from notifier.settings import Settings

_SALT = "notifier.unsubscribe.v1"


@dataclass(frozen=True)
class Subscriber:
    patient_id: int
    channel: str
    address: str


class UnsubscribeTokens:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def make(self, subscriber: Subscriber) -> str:
        return self._serializer.dumps(
            [subscriber.patient_id, subscriber.channel, subscriber.address]
        )

    def read(self, token: str) -> Subscriber | None:
        """The subscriber a genuine token names; None for anything forged or malformed."""
        try:
            data = self._serializer.loads(token)
        except BadSignature:
            return None
        if (
            not isinstance(data, list)
            or len(data) != 3
            or not isinstance(data[0], int)
            or not all(isinstance(x, str) for x in data[1:])
        ):
            return None
        return Subscriber(data[0], data[1], data[2])


def tokens(settings: Settings) -> UnsubscribeTokens | None:
    if settings.secret_key is None:
        return None
    return UnsubscribeTokens(settings.secret_key.get_secret_value())


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
