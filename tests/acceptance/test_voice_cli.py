"""Calls from the command line: ``notifier notice create --channels sms,voice --fallback
sms>voice`` in a separate process stores the notice's channels and fallback order."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from notifier.storage.engine import Database
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.processes import run_notifier, service_env
from tests.support.web import SECRET

PATIENTS = """\
external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent,\
voice_consent,phone_type
v1,Ruth,Baker,540-555-0121,,en,cova,yes,no,yes,landline
v2,Omar,Haddad,540-555-0123,,en,cova,yes,no,no,
"""


def test_notice_create_stores_the_channels_and_the_fallback_given(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, tmp_path: Path
) -> None:
    env = service_env(
        tmp_path,
        database_url,
        fake_twilio.info(),
        (fake_smtp.host, fake_smtp.port),
        VOICE_FROM_NUMBER=fake_twilio.from_number,
        PUBLIC_BASE_URL="https://notices.example.org",
        SECRET_KEY=SECRET,
    )
    run_notifier(env, "location", "add", "--slug", "cova", "--name", "COVA", "--timezone",
                 "America/New_York", "--phone", "540-555-0100")  # fmt: skip
    patients = tmp_path / "patients.csv"
    patients.write_text(PATIENTS)
    run_notifier(env, "patients", "import", str(patients))
    args = ["notice", "create", "--location", "cova", "--starts", "2025-02-19 12:30",
            "--ends", "2025-02-21 00:00", "--reason", "inclement weather",
            "--channels", "sms,voice", "--fallback", "sms>voice"]  # fmt: skip
    created = run_notifier(env, *args).stdout
    assert "sms,voice not scheduled, fallback sms>voice" in created
    assert "--- voice call [en, closure]" in created  # the spoken words are previewed
    notice = json.loads(run_notifier(env, *args, "--json").stdout)
    (broadcast,) = notice["broadcasts"]
    assert (broadcast["channels"], broadcast["fallback"]) == (["sms", "voice"], ["sms", "voice"])
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            stored = connection.execute(text("SELECT channels, fallback FROM broadcasts")).all()
    finally:
        db.dispose()
    assert [tuple(row) for row in stored] == [("sms,voice", "sms>voice")] * 2
    refused = run_notifier(env, *args[:-1], "sms>fax", check=False)
    assert refused.returncode != 0 and "fallback 'sms>fax' not understood" in refused.stderr
