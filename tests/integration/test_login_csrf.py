"""Login CSRF: the pre-sign-in CSRF token is one this server signed, recently. A value planted
in a victim's browser, however well-formed, is replaced and cannot carry a sign-in."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner

from notifier.clock import FrozenClock
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import PASSWORD, Web, csrf_of, served

ATTACKER = "attacker@cova.example"


@pytest.fixture
def web(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    with served(f"sqlite:///{tmp_path / 'n.db'}", fake_twilio, fake_smtp, clock) as w:
        w.app.accounts.create_user(ATTACKER, "viewer", PASSWORD)
        yield w


def _sign_in_with(web: Web, planted: str) -> httpx.Response:
    form = {"email": ATTACKER, "password": PASSWORD, "csrf": planted}
    cookie = {"Cookie": f"notifier_csrf={planted}"}
    return web.client.post("/console/login", data=form, headers=cookie)


@pytest.mark.parametrize(
    "planted",
    [
        secrets.token_urlsafe(32),  # the old, merely well-formed shape
        TimestampSigner("another-servers-key-0123456789abcdef", salt="x").sign("a").decode(),
    ],
    ids=["well-formed", "signed-elsewhere"],
)
def test_a_planted_csrf_cookie_cannot_sign_anyone_in(web: Web, planted: str) -> None:
    page = web.client.get("/console/login", headers={"Cookie": f"notifier_csrf={planted}"})
    assert csrf_of(page) != planted  # replaced by one of ours
    answer = _sign_in_with(web, planted)
    assert answer.status_code == 403
    assert "notifier_console" not in answer.cookies


def test_a_genuine_token_works_and_expires_after_twelve_hours(web: Web, clock: FrozenClock) -> None:
    with httpx.Client(base_url=web.server.url) as attacker:
        harvested = csrf_of(attacker.get("/console/login"))
    clock.advance(12 * 3600 + 60)
    assert _sign_in_with(web, harvested).status_code == 403
    with httpx.Client(base_url=web.server.url) as browser:
        fresh = csrf_of(browser.get("/console/login"))
        form = {"email": ATTACKER, "password": PASSWORD, "csrf": fresh}
        assert browser.post("/console/login", data=form).status_code == 303
