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


NO_APPROVAL = 10_000_000  # patients: tests not about approval never reach it


def peer_settings(
    database_url: str, twilio: FakeTwilio | None, smtp: FakeSmtp | None, **extra: Any
) -> Settings:
    # No undo window and no approval unless a test is about them (tests/integration/
    # test_approval_and_hold.py): the rest send at once, as they did before issue 20.
    values: dict[str, Any] = {
        "database_url": database_url,
        "retry_base_seconds": 1.0,
        "send_hold_seconds": 0.0,
        "approval_threshold": NO_APPROVAL,
    }
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
