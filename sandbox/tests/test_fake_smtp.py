"""The fake SMTP server driven by plain smtplib: what each injected fault looks like to a client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifier_sandbox.smtp_server import DROP, DROP_AFTER_ACCEPT, FakeSmtp

ROOT = Path(__file__).resolve().parents[2]
BUSY = "421 4.7.0 Too busy, closing"


@pytest.fixture
def fake() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def notice(to: str | list[str] = "ana@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Clinic <noreply@clinic.test>"
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Subject"] = "Clínica cerrada el sábado"
    msg.set_content("We are closed on Saturday.\nCerrado el sábado.")
    msg.add_alternative("<p>We are closed on <b>Saturday</b>.</p>", subtype="html")
    return msg


def connect(server: FakeSmtp, host: str | None = None) -> smtplib.SMTP:
    # local_hostname avoids a getfqdn() DNS lookup on every connection.
    return smtplib.SMTP(host or server.host, server.port, local_hostname="localhost", timeout=5)


def send(server: FakeSmtp, msg: EmailMessage | None = None) -> dict[str, tuple[int, bytes]]:
    with connect(server) as client:
        return client.send_message(msg or notice())


def test_multipart_message_arrives_and_parses(fake: FakeSmtp) -> None:
    assert send(fake, notice(["ana@example.test", "Bo@Example.test"])) == {}
    [record] = fake.messages
    assert record.mail_from == "noreply@clinic.test"
    assert record.rcpt_tos == ("ana@example.test", "Bo@Example.test")
    assert record.login is None and record.tls is False
    assert b"Subject: =?utf-8?" in record.raw
    msg = record.message
    assert msg["Subject"] == "Clínica cerrada el sábado"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and "Cerrado el sábado." in plain.get_content()
    assert html is not None and "<b>Saturday</b>" in html.get_content()
    assert fake.received_for("bo@example.test") == [record]
    assert fake.received_for("nobody@example.test") == []
    fake.reset()
    assert fake.messages == []


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "452 4.2.2 Mailbox full"])
def test_rcpt_transient_refusal(fake: FakeSmtp, reply: str) -> None:
    fake.fault(stage="rcpt", reply=reply)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(fake)
    code, text = info.value.recipients["ana@example.test"]
    assert (code, text.decode()) == (int(reply[:3]), reply[4:])
    assert fake.messages == []


def test_rcpt_permanent_refusal(fake: FakeSmtp) -> None:
    fake.fault(stage="rcpt", reply="550 5.1.1 User unknown")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(fake)
    assert info.value.recipients == {"ana@example.test": (550, b"5.1.1 User unknown")}


def test_rcpt_fault_matching_one_recipient_partially_delivers(fake: FakeSmtp) -> None:
    fault = fake.fault({"rcpt_regex": r"^gone@"}, stage="rcpt", reply="550 5.1.1 User unknown")
    refused = send(fake, notice(["ana@example.test", "gone@example.test"]))
    assert refused == {"gone@example.test": (550, b"5.1.1 User unknown")}
    assert [m.rcpt_tos for m in fake.messages] == [("ana@example.test",)]
    assert fault.hits == 1


def test_data_rejections(fake: FakeSmtp) -> None:
    fake.fault(stage="data", reply="554 5.7.1 Message rejected")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(fake)
    assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.7.1 Message rejected")
    fake.fault({"mail_from_regex": "clinic"}, stage="data", reply="452 4.3.1 Insufficient storage")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(fake)
    assert info.value.smtp_code == 452
    assert fake.messages == []


def test_mail_from_refusal(fake: FakeSmtp) -> None:
    fake.fault(stage="mail", reply="451 4.3.0 Try again later")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(fake)
    assert (info.value.smtp_code, info.value.sender) == (451, "noreply@clinic.test")


def test_421_at_connect_raises_connect_error(fake: FakeSmtp) -> None:
    fake.fault(stage="connect", reply=BUSY)
    with pytest.raises(smtplib.SMTPConnectError) as info:
        connect(fake)
    assert (info.value.smtp_code, info.value.smtp_error) == (421, b"4.7.0 Too busy, closing")
    send(fake)  # times=1: the next connection is greeted normally
    assert len(fake.messages) == 1


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("mail", smtplib.SMTPSenderRefused),
        ("rcpt", smtplib.SMTPRecipientsRefused),
        ("data", smtplib.SMTPDataError),
    ],
)
def test_421_at_each_stage(fake: FakeSmtp, stage: str, error: type[Exception]) -> None:
    fake.fault(stage=stage, reply=BUSY)  # type: ignore[arg-type]
    with connect(fake) as client, pytest.raises(error) as info:
        client.send_message(notice())
    exc = info.value
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        assert exc.recipients == {"ana@example.test": (421, b"4.7.0 Too busy, closing")}
    else:
        assert isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421
    assert client.sock is None  # smtplib closes its side when it sees 421 in sendmail()
    assert fake.messages == []


def test_421_closes_the_connection_server_side(fake: FakeSmtp) -> None:
    fake.fault(stage="mail", reply=BUSY)
    with connect(fake) as client:
        client.ehlo()
        assert client.docmd("MAIL FROM:<noreply@clinic.test>") == (421, b"4.7.0 Too busy, closing")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


@pytest.mark.parametrize("stage", ["connect", "mail", "rcpt", "data"])
def test_drop_raises_server_disconnected(fake: FakeSmtp, stage: str) -> None:
    fake.fault(stage=stage, reply=DROP)  # type: ignore[arg-type]
    with pytest.raises(smtplib.SMTPServerDisconnected, match="Connection unexpectedly closed"):
        send(fake)
    assert fake.messages == []
    send(fake)
    assert len(fake.messages) == 1


def test_drop_after_accept_stores_the_message_but_never_replies(fake: FakeSmtp) -> None:
    fake.fault(stage="data", reply=DROP_AFTER_ACCEPT)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(fake)
    assert len(fake.messages) == 1  # the ambiguous case: delivered, but the client can't know


def test_times_limits_and_unlimited_faults(fake: FakeSmtp) -> None:
    once = fake.fault(stage="rcpt", reply="451 4.3.0 Try again later", times=1)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(fake)
    assert send(fake) == {}
    assert once.hits == 1
    twice = fake.fault(stage="rcpt", reply="451 4.3.0 Try again later", times=2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(fake)
    assert send(fake) == {}
    assert twice.hits == 2
    forever = fake.fault(stage="data", reply="554 5.7.1 No", times=None)
    for _ in range(3):
        with pytest.raises(smtplib.SMTPDataError):
            send(fake)
    assert forever.hits == 3
    fake.clear_faults()
    assert send(fake) == {}
    assert len(fake.messages) == 3


def test_fault_delay_and_server_latency() -> None:
    with FakeSmtp(latency=(0.05, 0.06)) as server:
        started = time.monotonic()
        send(server)  # greeting + MAIL + RCPT + DATA each wait 50-60 ms
        assert time.monotonic() - started >= 0.2
    with FakeSmtp() as server:
        server.fault(stage="rcpt", reply=None, delay_s=0.3)
        started = time.monotonic()
        assert send(server) == {}
        assert time.monotonic() - started >= 0.3
        server.fault(stage="rcpt", reply=DROP, delay_s=0.2)
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send(server)
        assert time.monotonic() - started >= 0.2


def test_custom_success_reply_still_accepts(fake: FakeSmtp) -> None:
    fake.fault(stage="data", reply="250 2.0.0 Ok: queued as ABC123")
    with connect(fake) as client:
        client.ehlo()
        client.mail("noreply@clinic.test")
        client.rcpt("ana@example.test")
        assert client.data(notice().as_bytes()) == (250, b"2.0.0 Ok: queued as ABC123")
    assert len(fake.messages) == 1


def test_invalid_fault_definitions(fake: FakeSmtp) -> None:
    with pytest.raises(ValueError):
        fake.fault(stage="helo")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fake.fault({"rcpt_regex": "x"}, stage="mail")
    with pytest.raises(ValueError):
        fake.fault({"subject": "x"})
    with pytest.raises(ValueError):
        fake.fault(stage="rcpt", reply=DROP_AFTER_ACCEPT)


def test_auth_plain_and_login() -> None:
    with FakeSmtp(auth=("clinic", "s3cret")) as server:
        with connect(server) as client, pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.send_message(notice())
        assert info.value.smtp_code == 530
        with connect(server) as client, pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            client.login("clinic", "wrong")
        assert bad.value.smtp_code == 535
        for mechanism in ("PLAIN", "LOGIN"):
            with connect(server) as client:
                client.ehlo()
                client.esmtp_features["auth"] = mechanism  # force smtplib's choice
                assert client.login("clinic", "s3cret")[0] == 235
                client.send_message(notice())
        assert [m.login for m in server.messages] == ["clinic", "clinic"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_starttls_with_self_signed_certificate() -> None:
    with FakeSmtp(auth=("clinic", "s3cret"), starttls=True, require_starttls=True) as server:
        assert server.cert_path is not None
        with connect(server) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                client.send_message(notice())
            assert info.value.smtp_code == 530  # Must issue a STARTTLS command first
        with connect(server, host="localhost") as client:
            client.starttls(context=ssl.create_default_context(cafile=server.cert_path))
            client.login("clinic", "s3cret")
            client.send_message(notice())
        [record] = server.messages
        assert record.tls and record.login == "clinic"


def test_maildir_writes_one_file_per_accepted_message(tmp_path: Path) -> None:
    with FakeSmtp(maildir=tmp_path / "mail") as server:
        send(server)
        server.fault(stage="data", reply="554 5.7.1 No")
        with pytest.raises(smtplib.SMTPDataError):
            send(server)
        send(server, notice("bo@example.test"))
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert files == ["000001.eml", "000002.eml"]
    assert b"To: bo@example.test" in (tmp_path / "mail" / "000002.eml").read_bytes()


def test_standalone_process_with_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    command = [sys.executable, "-m", "notifier_sandbox.smtp_server", "--port", "0"]
    with subprocess.Popen(
        [*command, "--maildir", str(maildir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["host"] == "127.0.0.1" and info["port"] > 0
            for _ in range(2):
                with smtplib.SMTP(info["host"], info["port"], local_hostname="localhost") as c:
                    c.send_message(notice())
            assert sorted(p.name for p in maildir.glob("*.eml")) == ["000001.eml", "000002.eml"]
        finally:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
