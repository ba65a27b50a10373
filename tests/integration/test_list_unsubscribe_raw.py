"""RFC 8058 one-click unsubscribe as a strict reader sees it: the raw bytes the SMTP server
received carry ``List-Unsubscribe: <https://…>, <mailto:…>`` (RFC 2369: angle-bracketed URIs,
comma-separated, no RFC 2047 encoded-words), folded only between the items, and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` — also when a long public URL forces the
header past 78 characters."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterator

import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import PATIENTS_CSV
from tests.support.peers import peer_settings
from tests.support.web import save_cova

LONG_BASE = (
    "https://closure-notices.cova-spine-and-pain-center.example.org/notifier/public/links/"
    "for/our/patients"
)
URI = r"<[^<>\s]+>"
RFC2369 = re.compile(rf"{URI}(?:[ \t]*,[ \t]*{URI})*")


@pytest.fixture(params=["https://notices.example.org", LONG_BASE])
def app(
    request: pytest.FixtureRequest,
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
) -> Iterator[App]:
    settings = peer_settings(
        database_url,
        fake_twilio,
        fake_smtp,
        public_base_url=request.param,
        secret_key=secrets.token_urlsafe(32),
    )
    built = build_app(settings, clock=clock)
    yield built
    built.close()


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    """The physical lines of header ``name`` (its first line and continuation lines)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.lower().startswith(name.lower() + b":"))
    lines = [head[start]]
    for line in head[start + 1 :]:
        if not line.startswith((b" ", b"\t")):
            break
        lines.append(line)
    return lines


def test_list_unsubscribe_goes_out_unencoded_and_folded_between_its_uris(
    app: App, fake_smtp: FakeSmtp
) -> None:
    save_cova(app)
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("email",),
        ),
    )
    run_once(app)
    received = fake_smtp.wait_for(3)
    base = app.settings.public_base_url or ""

    for message in received:
        lines = header_lines(message.raw, b"List-Unsubscribe")
        raw_value = b"\r\n".join(lines).decode("ascii")
        assert "=?" not in raw_value  # no RFC 2047 encoded-word
        assert all(len(line) <= 998 for line in lines)
        assert all(line.startswith(b" <") for line in lines[1:])  # folded between items only
        name, _, value = raw_value.replace("\r\n", "").partition(":")
        assert name == "List-Unsubscribe"
        assert RFC2369.fullmatch(value.strip()), value
        https, mailto = re.findall(r"<([^<>]+)>", value)
        assert https.startswith(f"{base}/unsubscribe/")
        assert mailto.startswith("mailto:closures@cova.example?subject=unsubscribe%20")
        assert app.consent.subscriber(https.rsplit("/", 1)[1]) is not None
        assert header_lines(message.raw, b"List-Unsubscribe-Post") == [
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
        ]
    if base == LONG_BASE:
        assert len(lines) == 2 and len(lines[0]) > 78  # the long URL forced a fold
