"""A channel is one module plus one registry line. A throwaway pager channel, defined here and
registered with one line, goes through everything a real one does — the preview, the fan-out,
the dispatcher, the delivery log, the command line — without any other module changing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from notifier.bootstrap import build_app
from notifier.channels import CHANNELS
from notifier.channels.base import OutgoingMessage, SendResult
from notifier.cli import main
from notifier.clock import Clock, FrozenClock
from notifier.domain.channels import AddressField, ChannelSpec, MessageFormat
from notifier.runtime import run_until_idle
from notifier.settings import Settings
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.patients import PATIENTS_CSV
from tests.support.peers import EVENING_BEFORE, peer_settings


class PagerChannel:
    """Pages the patient's phone; takes every page."""

    spec: ClassVar[ChannelSpec] = ChannelSpec(
        "pager",
        "pager",
        AddressField.PHONE,
        MessageFormat.TEXT,
        consent_field="sms_consent",  # the consent the clinic records for the phone
        rate_setting="sms_rate_per_second",
    )
    paged: ClassVar[list[OutgoingMessage]] = []

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock

    def send(self, message: OutgoingMessage) -> SendResult:
        self.paged.append(message)
        return SendResult(f"PG{message.delivery_id:08d}")

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def with_pager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CHANNELS, PagerChannel.spec.name, PagerChannel)  # the one line
    PagerChannel.paged.clear()


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_third_channel_sends_through_every_layer_untouched(
    with_pager: None,
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = peer_settings(database_url, fake_twilio, fake_smtp)
    for name in ("database_url", "twilio_account_sid", "twilio_from_number"):
        monkeypatch.setenv(f"NOTIFIER_{name.upper()}", str(getattr(settings, name)))
    monkeypatch.setenv("NOTIFIER_TWILIO_AUTH_TOKEN", fake_twilio.auth_token)
    monkeypatch.setenv("NOTIFIER_TWILIO_API_BASE_URL", fake_twilio.base_url)
    monkeypatch.setenv("NOTIFIER_NOW", EVENING_BEFORE.isoformat())

    cli("db", "upgrade")
    assert "pager: enabled" in cli("config")
    cli("location", "add", "--slug", "cova", "--name", "COVA", "--timezone", "America/New_York")
    patients = tmp_path / "patients.csv"
    patients.write_text(PATIENTS_CSV)
    cli("patients", "import", str(patients))
    created = cli(
        "notice", "create", "--location", "cova", "--starts", "2025-02-19 12:30",
        "--ends", "2025-02-21 00:00", "--reason", "inclement weather", "--channels", "sms,pager",
        "--send-at", "now",
    )  # fmt: skip
    assert "--- pager [en, closure]" in created  # previewed like any channel
    assert "--- longest pager any patient gets" in created  # billed by segments, as texts are

    # The notice was created on the command line's clock, a moment after the evening before.
    app = build_app(settings, clock=FrozenClock(EVENING_BEFORE + timedelta(minutes=1)))
    try:
        assert run_until_idle(app, timeout=60)
    finally:
        app.close()

    phones = ["+15405550111", "+15405550112"]  # p2 and p3 share one: one page
    assert sorted(m.to for m in PagerChannel.paged) == phones
    assert all("closing early Wednesday, 2/19/2025" in m.text for m in PagerChannel.paged)
    assert sorted(r["form"]["To"][0] for r in fake_twilio.received_creates()) == phones
    log = json.loads(cli("deliveries", "--format", "json"))
    pages = [row for row in log if row["channel"] == "pager"]
    # p4 and p5 gave no consent for the phone: skipped, with the pager's own label.
    assert sorted(row["state"] for row in pages) == ["sent", "sent", "skipped", "skipped"]
    assert all(row["provider_id"].startswith("PG") for row in pages if row["state"] == "sent")
    assert {row["error"] for row in pages if row["state"] == "skipped"} == {"no pager consent"}
