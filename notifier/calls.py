"""Signed, expiring links for a call's TwiML: ``/webhooks/twilio/voice/<token>``.

The token is ``[delivery id, expiry]`` signed with ``NOTIFIER_SECRET_KEY`` (itsdangerous, HMAC
over a salted key): no phone number, name or words in the URL, and nobody without the key can
make one. It expires ``NOTIFIER_VOICE_LINK_MINUTES`` after the call is placed; the expiry is
checked against the service's clock (never the wall clock directly, so tests can freeze it).
Twilio signs every request it makes to the link as well (``X-Twilio-Signature``).
"""

from __future__ import annotations

import functools
from datetime import datetime

from itsdangerous import BadData, URLSafeSerializer

from notifier.settings import Settings

_SALT = "notifier.calls.twiml.v1"


class CallLinks:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def make(self, delivery_id: int, expires: datetime) -> str:
        return str(self._serializer.dumps([delivery_id, int(expires.timestamp())]))

    def read(self, token: str, now: datetime) -> int | None:
        """The delivery a genuine, unexpired token names; None for anything else."""
        try:
            data = self._serializer.loads(token)
        except BadData:
            return None
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in data)
        ):
            return None
        delivery_id, expires = data
        return delivery_id if now.timestamp() <= expires else None


def links(settings: Settings) -> CallLinks | None:
    if settings.secret_key is None:
        return None
    return _links_for(settings.secret_key.get_secret_value())


@functools.lru_cache(maxsize=4)
def _links_for(secret: str) -> CallLinks:
    return CallLinks(secret)


def twiml_url(settings: Settings, token: str, step: str = "") -> str:
    """The TwiML URL of a call (``step``: ``keys`` for keypresses, ``machine`` for answering
    machine detection)."""
    return f"{settings.public_base_url}/webhooks/twilio/voice/{token}" + (
        f"/{step}" if step else ""
    )


def status_url(settings: Settings) -> str:
    return f"{settings.public_base_url}/webhooks/twilio/calls/status"
