"""The moment every test lives in, and settings that point the real channels at the sandbox's
Twilio-compatible and SMTP servers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from notifier.settings import Settings, load_settings
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio

NEW_YORK = ZoneInfo("America/New_York")
# The evening before the reference closure: the storm is forecast, the clinic decides.
EVENING_BEFORE = datetime(2025, 2, 18, 18, 0, tzinfo=NEW_YORK)


def peer_settings(
    database_url: str, twilio: FakeTwilio | None, smtp: FakeSmtp | None, **extra: Any
) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "retry_base_seconds": 1.0}
    if twilio is not None:
        values |= {
            "twilio_account_sid": twilio.account_sid,
            "twilio_auth_token": twilio.auth_token,
            "twilio_from_number": twilio.from_number,
            "twilio_api_base_url": twilio.base_url,
            "twilio_timeout_seconds": 5.0,
        }
    if smtp is not None:
        values |= {
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "email_from": "closures@cova.example",
            "smtp_timeout_seconds": 5.0,
        }
    return load_settings(**(values | extra))
