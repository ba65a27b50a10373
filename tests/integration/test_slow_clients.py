"""Slow clients are cut off (slowloris): headers or a body sent a byte at a time lose their
connection at the deadline; beyond the connection limit requests get 503; a client that hangs
up mid-body costs one log line, not a traceback. Real sockets against uvicorn on loopback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.clock import FrozenClock
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import Web, served

HEADERS_SECONDS, BODY_SECONDS = 1.0, 2.0


@pytest.fixture
def web(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    with served(
        f"sqlite:///{tmp_path / 'n.db'}",
        fake_twilio,
        fake_smtp,
        clock,
        http_header_timeout_seconds=HEADERS_SECONDS,
        http_body_timeout_seconds=BODY_SECONDS,
        http_max_connections=4,
    ) as w:
        yield w


def _connect(web: Web) -> socket.socket:
    return socket.create_connection(("127.0.0.1", web.server.port), timeout=10)


def _trickle_until_closed(sock: socket.socket, data: bytes, limit: float) -> float:
    """Send ``data`` a byte every 0.3 s until the server hangs up; the seconds it took."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        sock.settimeout(0.3)
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            break
    return float("inf")


SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
SLOW_BODY = (
    b"POST /webhooks/twilio/status HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
)


def test_headers_sent_a_byte_at_a_time_lose_the_connection_at_the_deadline(web: Web) -> None:
    with _connect(web) as sock:
        assert _trickle_until_closed(sock, SLOW_HEADERS, limit=15) < HEADERS_SECONDS + 3


def test_a_connection_that_sends_nothing_is_closed_too(web: Web) -> None:
    with _connect(web) as sock:
        sock.settimeout(HEADERS_SECONDS + 5)
        assert sock.recv(1024) == b""


def test_a_body_sent_a_byte_at_a_time_loses_the_connection_at_the_deadline(web: Web) -> None:
    with _connect(web) as sock:
        sock.sendall(SLOW_BODY)
        took = _trickle_until_closed(sock, b"MessageSid=SM1&" * 20, limit=15)
        assert took < BODY_SECONDS + 3


def test_a_prompt_client_keeps_its_connection_for_several_requests(web: Web) -> None:
    for _ in range(3):
        assert web.client.get("/healthz").status_code == 200
    time.sleep(HEADERS_SECONDS + 0.5)  # the keep-alive timeout, not ours, governs idling now
    assert web.client.get("/healthz").status_code == 200


def test_beyond_the_connection_limit_requests_get_503(web: Web) -> None:
    held = [_connect(web) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # started, not finished
        with _connect(web) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            extra.settimeout(5)
            assert extra.recv(1024).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()


def test_a_client_that_hangs_up_mid_body_costs_one_log_line(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = web.app.accounts.create_token("uploads").encode()
    with _connect(web) as sock:
        sock.sendall(
            b"POST /api/v1/patients/import HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Authorization: Bearer " + token + b"\r\nContent-Type: text/csv\r\n\r\n"
            b"external_id,first_name,last_name,phone\r\n"
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        getattr(r, "action", None) == "http_client_disconnect" for r in caplog.records
    ):
        time.sleep(0.05)
    gone = [r for r in caplog.records if getattr(r, "action", None) == "http_client_disconnect"]
    assert len(gone) == 1 and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
