"""Behind a proxy that NOTIFIER_TRUSTED_PROXIES does not list, every client shares the proxy's
address (and its sign-in limit): the log says so, once per peer. ``*`` is warned about at start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from notifier.clock import FrozenClock
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import served

FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


def _warnings(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


def _get_from(url: str, address: str, headers: dict[str, str]) -> None:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport) as client:
        assert client.get("/healthz", headers=headers).status_code == 200


@pytest.mark.parametrize("trusted", [None, "10.0.0.0/8"])
def test_forwarded_headers_from_an_untrusted_peer_are_logged_once_per_peer(
    tmp_path: Path,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    trusted: str | None,
) -> None:
    caplog.set_level(logging.WARNING)
    extra = {} if trusted is None else {"trusted_proxies": trusted}
    with served(f"sqlite:///{tmp_path / 'n.db'}", fake_twilio, fake_smtp, clock, **extra) as web:
        for _ in range(3):
            _get_from(web.server.url, "127.0.0.1", FORWARDED)
        _get_from(web.server.url, "127.0.0.9", FORWARDED)
        _get_from(web.server.url, "127.0.0.10", {})  # no forwarded headers: nothing to say
    warned = _warnings(caplog, "forwarded_untrusted")
    assert sorted(r.peer for r in warned) == ["127.0.0.1", "127.0.0.9"]  # type: ignore[attr-defined]
    assert "NOTIFIER_TRUSTED_PROXIES" in warned[0].getMessage()


def test_a_trusted_proxy_is_believed_without_a_warning_and_star_is_warned_about(
    tmp_path: Path,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    with served(url, fake_twilio, fake_smtp, clock, trusted_proxies="127.0.0.1") as web:
        _get_from(web.server.url, "127.0.0.1", FORWARDED)
    assert _warnings(caplog, "forwarded_untrusted") == []
    assert _warnings(caplog, "trusted_proxies_any") == []
    with served(url, fake_twilio, fake_smtp, clock, trusted_proxies="*"):
        pass
    assert len(_warnings(caplog, "trusted_proxies_any")) == 1
