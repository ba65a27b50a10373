"""Phone types from Twilio Lookup (v2, ``line_type_intelligence``), when configured
(``NOTIFIER_TWILIO_LOOKUP``): a patient imported without ``phone_type`` is looked up once, so a
landline is known before a text to it fails. Lookup is billed per number (about $0.008 for line
type intelligence in 2025); a lookup that fails leaves the type unknown and never stops an import.
"""

from __future__ import annotations

import logging

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from notifier.domain.contacts import mask_address
from notifier.settings import Settings

log = logging.getLogger(__name__)
# Twilio's line types → ours: a number that can take texts, or one that cannot (call it).
KINDS = {
    "mobile": "mobile",
    "landline": "landline",
    "fixedVoip": "landline",
    "tollFree": "landline",
}


class PhoneTypes:
    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_auth_token is not None
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=TwilioHttpClient(timeout=settings.twilio_timeout_seconds),
            environment={"NOTIFIER": "1"},
        )
        if settings.twilio_api_base_url != "https://api.twilio.com":  # a test server serves all
            self.client.lookups.base_url = settings.twilio_api_base_url

    def of(self, phone: str) -> str | None:
        """``mobile``, ``landline``, or None when Twilio cannot tell (or cannot be asked)."""
        try:
            found = self.client.lookups.v2.phone_numbers(phone).fetch(
                fields="line_type_intelligence"
            )
        except (TwilioException, requests.RequestException) as exc:
            log.warning(
                "phone type lookup failed: %s",
                type(exc).__name__,
                extra={"action": "lookup_failed", "to": mask_address(phone)},
            )
            return None
        line = found.line_type_intelligence or {}
        return KINDS.get(str(line.get("type") or ""))

    def close(self) -> None:
        session = getattr(self.client.http_client, "session", None)
        if session is not None:
            session.close()
