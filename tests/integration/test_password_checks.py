"""Password checks (argon2id: 64 MiB and tens of milliseconds each) are bounded: at most
NOTIFIER_SIGN_IN_CHECKS_AT_ONCE run at once, a sign-in that finds no free slot in time gets
429 with Retry-After, and no check runs inside a database transaction (on SQLite that would
hold the write lock against every other write)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

import notifier.usecases.accounts as accounts_module
from notifier.bootstrap import App
from notifier.clock import FrozenClock
from notifier.usecases.accounts import Accounts, UserView
from notifier.usecases.sessions import NewSession, Refused
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import PASSWORD, Web, csrf_of, served

MANAGER = "manager@cova.example"


class HeldChecks:
    """Accounts whose password checks wait until released, counting how many run at once."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = self.peak = 0

    def authenticate(self, email: str, password: str) -> UserView | None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.release.wait(60)
            return self.accounts.authenticate(email, password)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def web(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    with served(database_url, fake_twilio, fake_smtp, clock, sign_in_checks_at_once=2) as w:
        w.app.accounts.create_user(MANAGER, "manager", PASSWORD)
        yield w


def test_beyond_the_slots_a_sign_in_gets_429_with_retry_after_and_at_most_two_run(
    web: Web,
) -> None:
    held = HeldChecks(web.app.sessions.accounts)
    web.app.sessions.accounts = held  # type: ignore[assignment]
    answers: list[httpx.Response] = []
    done = threading.Condition()

    def guess(i: int) -> None:
        with httpx.Client(base_url=web.server.url, timeout=60.0) as client:
            form = {"email": f"user{i}@cova.example", "password": "guess"}
            form["csrf"] = csrf_of(client.get("/console/login"))
            answer = client.post("/console/login", data=form)
        with done:
            answers.append(answer)
            done.notify_all()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    with done:  # two hold the slots; the four others give up waiting
        assert done.wait_for(lambda: len(answers) == 4, timeout=60)
    held.release.set()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401, 401, 429, 429, 429, 429]
    assert held.peak == 2
    busy = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in busy)
    assert all("checking other sign-ins" in a.text for a in busy)


def test_no_password_check_runs_inside_a_database_transaction(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.accounts.create_user(MANAGER, "manager", PASSWORD)
    open_connections: list[int] = []
    verify = accounts_module._verify

    def watched(password_hash: str, password: str) -> bool:
        open_connections.append(app.db.engine.pool.checkedout())  # type: ignore[attr-defined]
        return verify(password_hash, password)

    monkeypatch.setattr(accounts_module, "_verify", watched)
    assert isinstance(app.sessions.sign_in(MANAGER, "wrong password", "10.0.0.1"), Refused)
    assert isinstance(app.sessions.sign_in("nobody@x.example", "wrong", "10.0.0.1"), Refused)
    assert isinstance(app.sessions.sign_in(MANAGER, PASSWORD, "10.0.0.1"), NewSession)
    assert open_connections == [0, 0, 0]
