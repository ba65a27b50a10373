"""The whole story through real boundaries: the twilio SDK over HTTP to a Twilio-compatible
server on loopback, smtplib to a real SMTP server, and SQLite or PostgreSQL."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from notifier.bootstrap import App
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import PATIENTS_CSV


def test_reference_closure_reaches_each_consenting_patient_exactly_once(
    app: App, cova: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
        ),
    ).notice
    run_once(app)
    run_once(app)  # a second tick sends nothing more

    texts = fake_twilio.received_creates()
    assert sorted(r["form"]["To"][0] for r in texts) == ["+15405550111", "+15405550112"]
    for request in texts:
        body = request["form"]["Body"][0]
        assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in body
        assert "closed all day Thursday, 2/20/2025" in body
        assert request["form"]["From"] == [fake_twilio.from_number]

    emails = fake_smtp.messages
    assert sorted(r for m in emails for r in m.rcpt_tos) == [
        "ana@example.org",
        "jane@example.org",
        "maria@example.org",
    ]
    maria = fake_smtp.received_for("maria@example.org")[0].message
    assert isinstance(maria, EmailMessage)
    assert maria["Subject"] == "COVA Spine and Pain Center: closure on Wed 2/19 – Thu 2/20"
    assert maria["Message-ID"].startswith("<delivery-")
    assert parsedate_to_datetime(maria["Date"]) == app.clock.now().replace(microsecond=0)
    plain = maria.get_body(("plain",))
    html = maria.get_body(("html",))
    assert plain is not None and html is not None
    assert "Dear Maria" in plain.get_content()
    assert "closed all day Thursday, 2/20/2025" in html.get_content()

    log = app.deliveries.log(OPERATOR, notice.id)
    sent = [d for d in log if d.state == "sent"]
    assert len(sent) == 5
    sids = {m for m in fake_twilio.messages}
    assert {d.provider_id for d in sent if d.channel == "sms"} <= sids
    assert all(d.attempts == 1 for d in sent)
    assert all("*" in d.address for d in log)  # masked in the log
    assert app.notices.get(OPERATOR, notice.id).broadcasts[0].status == "done"


def test_provider_errors_are_classified_and_recorded(
    app: App, cova: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    fake_twilio.fault(
        match={"to": "+15405550111"},
        times=None,
        response={"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"},
    )
    fake_twilio.fault(
        match={"to": "+15405550112"},
        times=1,
        response={"status": 429, "code": 20429, "message": "Too Many Requests", "retry_after": 1},
    )
    fake_smtp.fault(
        match={"rcpt_regex": "ana@"}, stage="rcpt", reply="550 5.1.1 User unknown", times=None
    )
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
        ),
    ).notice
    run_once(app)
    by_address = {(d.channel, d.address): d for d in app.deliveries.log(OPERATOR, notice.id)}
    invalid = by_address[("sms", "+1******0111")]
    assert (invalid.state, invalid.error_code) == ("failed", "21211")
    assert "Invalid 'To' Phone Number" in (invalid.error or "")
    throttled = by_address[("sms", "+1******0112")]
    assert (throttled.state, throttled.error_code) == ("pending", "20429")
    refused = by_address[("email", "a***@example.org")]
    assert (refused.state, refused.error_code) == ("failed", "550")
    app.clock.advance(5)  # type: ignore[attr-defined]
    run_once(app)
    throttled = next(d for d in app.deliveries.log(OPERATOR, notice.id) if d.id == throttled.id)
    assert (throttled.state, throttled.attempts) == ("sent", 2)
    assert len(fake_twilio.received_creates()) == 1
