"""Console sessions kept on the server and sign-in limits that hold under concurrency, over real
HTTP (uvicorn on loopback) on SQLite and PostgreSQL.

Requests come from different loopback addresses (127.0.0.x) to play different client IPs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from notifier.clock import FrozenClock
from notifier.storage.models import ConsoleSession as SessionRow
from notifier.storage.models import SignInAttempt
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import PASSWORD, SECRET, Web, csrf_of, served

MANAGER, VIEWER = "manager@cova.example", "viewer@cova.example"
SESSION_COOKIE = "notifier_console"


@pytest.fixture
def web(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    with served(database_url, fake_twilio, fake_smtp, clock) as w:
        w.app.accounts.create_user(MANAGER, "manager", PASSWORD)
        w.app.accounts.create_user(VIEWER, "viewer", PASSWORD)
        yield w


def client_from(web: Web, address: str = "127.0.0.1") -> httpx.Client:
    """A browser at ``address``: the server sees that client IP."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=web.server.url, timeout=30.0, transport=transport)


def attempt(client: httpx.Client, email: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/console/login"))
    return client.post("/console/login", data={"email": email, "password": password, "csrf": token})


@contextmanager
def signed_in_client(
    web: Web, email: str = MANAGER, address: str = "127.0.0.1"
) -> Iterator[httpx.Client]:
    with client_from(web, address) as client:
        answer = attempt(client, email, PASSWORD)
        assert answer.status_code == 303, answer.text
        yield client


def is_signed_in(client: httpx.Client) -> bool:
    answer = client.get("/console/notices")
    assert answer.status_code in (200, 303), answer.status_code
    return answer.status_code == 200


def sign_out(client: httpx.Client) -> None:
    out = client.post("/console/logout", data={"csrf": csrf_of(client.get("/console/notices"))})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"


def concurrently(count: int, request: object) -> list[int]:
    """Run ``request(i)`` in ``count`` threads released at the same moment; the statuses."""
    assert callable(request)
    gate = threading.Barrier(count)
    statuses: list[int] = [0] * count

    def run(i: int) -> None:
        gate.wait()
        statuses[i] = request(i).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


# Sign-in limits -------------------------------------------------------------------------------


def test_thirty_concurrent_wrong_passwords_get_five_checks_and_the_rest_429(web: Web) -> None:
    clients = [client_from(web) for _ in range(30)]
    tokens = [csrf_of(c.get("/console/login")) for c in clients]

    def guess(i: int) -> httpx.Response:
        form = {"email": MANAGER, "password": f"guess {i}", "csrf": tokens[i]}
        return clients[i].post("/console/login", data=form)

    statuses = concurrently(30, guess)
    for c in clients:
        c.close()
    assert sorted(statuses) == [401] * 5 + [429] * 25
    with web.app.db.session() as s:
        recorded = s.scalars(select(SignInAttempt.outcome)).all()
    assert sorted(recorded) == ["failed"] * 5  # only the checked ones are recorded


def test_one_address_gets_twenty_guesses_across_accounts_even_concurrently(web: Web) -> None:
    clients = [client_from(web, "127.0.0.5") for _ in range(30)]
    tokens = [csrf_of(c.get("/console/login")) for c in clients]

    def guess(i: int) -> httpx.Response:
        form = {"email": f"user{i}@cova.example", "password": "guess", "csrf": tokens[i]}
        return clients[i].post("/console/login", data=form)

    statuses = concurrently(30, guess)
    # Those beyond the password-check slots (NOTIFIER_SIGN_IN_CHECKS_AT_ONCE) may be told to
    # come back (429, not counted); guessing on, the address still gets exactly twenty.
    checked = statuses.count(401)
    assert checked <= 20 and statuses.count(429) == 30 - checked
    for i in range(30):
        if attempt(clients[i], f"late{i}@cova.example", "guess").status_code == 401:
            checked += 1
    for c in clients:
        c.close()
    assert checked == 20
    with client_from(web, "127.0.0.6") as elsewhere:
        assert attempt(elsewhere, MANAGER, PASSWORD).status_code == 303


def test_a_stranger_guessing_cannot_lock_out_a_manager_signing_in_from_elsewhere(
    web: Web,
) -> None:
    with client_from(web, "127.0.0.9") as stranger:
        tries = [attempt(stranger, MANAGER, "guess").status_code for _ in range(7)]
        assert tries == [401] * 5 + [429] * 2
        assert attempt(stranger, MANAGER, PASSWORD).status_code == 429  # even the right one
    with client_from(web, "127.0.0.1") as desk:
        assert attempt(desk, MANAGER, PASSWORD).status_code == 303
        assert is_signed_in(desk)


def test_the_wait_ends_when_the_oldest_failure_leaves_the_window(
    web: Web, clock: FrozenClock
) -> None:
    with client_from(web) as client:
        for _ in range(5):
            assert attempt(client, MANAGER, "guess").status_code == 401
            clock.advance(60)
        locked = attempt(client, MANAGER, PASSWORD)
        assert locked.status_code == 429 and "try again in 10 min" in locked.text
        clock.advance(10 * 60)
        assert attempt(client, MANAGER, PASSWORD).status_code == 303


def test_signing_in_forgives_that_accounts_failures_from_that_address(web: Web) -> None:
    with client_from(web) as client:
        for _ in range(4):
            assert attempt(client, MANAGER, "guess").status_code == 401
        assert attempt(client, MANAGER, PASSWORD).status_code == 303
        sign_out(client)
        assert [attempt(client, MANAGER, "guess").status_code for _ in range(5)] == [401] * 5
        assert attempt(client, MANAGER, "guess").status_code == 429


# Sessions ----------------------------------------------------------------------------------


def test_a_nul_in_the_email_is_a_wrong_sign_in_not_a_server_error(web: Web) -> None:
    with client_from(web) as client:
        answer = attempt(client, "manager\x00@cova.example", PASSWORD)
    assert answer.status_code == 401, answer.text
    with web.app.db.session() as s:
        assert s.scalars(select(SignInAttempt.outcome)).all() == ["failed"]


def test_the_cookie_is_a_random_session_id_stored_only_as_its_sha256(web: Web) -> None:
    with signed_in_client(web) as client:
        session_id = client.cookies[SESSION_COOKIE]
        assert len(session_id) >= 43
        with web.app.db.session() as s:
            rows = s.scalars(select(SessionRow)).all()
        assert [row.token_sha256 for row in rows] == [
            hashlib.sha256(session_id.encode()).hexdigest()
        ]
        assert session_id not in {row.csrf for row in rows}


def test_a_cookie_replayed_after_sign_out_is_signed_out(web: Web) -> None:
    with signed_in_client(web) as client:
        stolen = client.cookies[SESSION_COOKIE]
        sign_out(client)
    with client_from(web) as replay:
        replay.cookies.set(SESSION_COOKIE, stolen, path="/console")
        assert not is_signed_in(replay)
    with web.app.db.session() as s:
        row = s.scalars(select(SessionRow)).one()
    assert row.ended_at is not None and row.ended_because == "signed_out"


def test_signing_in_gives_a_new_session_id_and_ends_the_previous_one(web: Web) -> None:
    with client_from(web) as client:
        planted = "attacker-chosen-session-id-0123456789abcdef"
        client.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1", path="/console")
        anonymous_csrf = csrf_of(client.get("/console/login"))
        assert (
            client.post(
                "/console/login",
                data={"email": MANAGER, "password": PASSWORD, "csrf": anonymous_csrf},
            ).status_code
            == 303
        )
        first = client.cookies[SESSION_COOKIE]
        assert first != planted
        session_csrf = csrf_of(client.get("/console/notices"))
        assert session_csrf != anonymous_csrf
        again = client.post(
            "/console/login", data={"email": VIEWER, "password": PASSWORD, "csrf": session_csrf}
        )
        assert again.status_code == 303
        second = client.cookies[SESSION_COOKIE]
        assert second not in (first, planted)
        assert client.get("/console/notices/new").status_code == 403  # now the viewer
    with client_from(web) as replay:
        replay.cookies.set(SESSION_COOKIE, first, path="/console")
        assert not is_signed_in(replay)


def test_a_session_ends_after_thirty_idle_minutes(web: Web, clock: FrozenClock) -> None:
    with signed_in_client(web) as client:
        for _ in range(3):
            clock.advance(29 * 60)
            assert is_signed_in(client)  # each visit keeps it alive
        clock.advance(31 * 60)
        assert not is_signed_in(client)


def test_a_session_ends_after_twelve_hours_however_busy(web: Web, clock: FrozenClock) -> None:
    with signed_in_client(web) as client:
        for _ in range(35):  # 11 h 40 min of visits every 20 min
            clock.advance(20 * 60)
            assert is_signed_in(client)
        clock.advance(20 * 60)
        assert not is_signed_in(client)


def test_a_disabled_users_live_session_is_signed_out_at_once_and_stays_out(web: Web) -> None:
    with signed_in_client(web) as manager, signed_in_client(web, VIEWER) as viewer:
        web.app.accounts.disable_user(MANAGER)
        assert not is_signed_in(manager)
        assert is_signed_in(viewer)
        web.app.accounts.enable_user(MANAGER)
        assert not is_signed_in(manager)  # enabling does not revive the old session
        with client_from(web) as fresh:
            assert attempt(fresh, MANAGER, PASSWORD).status_code == 303


def test_a_signed_cookie_from_before_server_side_sessions_is_not_valid(web: Web) -> None:
    old = URLSafeTimedSerializer(SECRET, salt="notifier.console.session")
    with client_from(web) as forger:
        forger.cookies.set(SESSION_COOKIE, old.dumps({"uid": 1, "csrf": "x"}), path="/console")
        assert not is_signed_in(forger)


def test_the_console_works_without_a_secret_key(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with served(database_url, fake_twilio, fake_smtp, clock) as w:
        w.app.settings.secret_key = None
        w.app.accounts.create_user(MANAGER, "manager", PASSWORD)
        with signed_in_client(w) as client:
            assert is_signed_in(client)


# Cookies -----------------------------------------------------------------------------------


def cookie_attributes(answer: httpx.Response, name: str) -> set[str]:
    for header in answer.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no {name} cookie in {answer.headers.get_list('set-cookie')}")


def test_the_cookie_is_secure_when_the_public_url_is_https_even_behind_plain_http(
    web: Web,
) -> None:
    web.app.settings.public_base_url = "https://notifier.example.org"
    with client_from(web) as client:  # plain http, as from a TLS-terminating proxy
        login = client.get("/console/login")
        token = csrf_of(login)
        # A Secure cookie goes only over https: send it back by hand, as the browser would.
        signed = client.post(
            "/console/login",
            data={"email": MANAGER, "password": PASSWORD, "csrf": token},
            headers={"Cookie": f"notifier_csrf={token}"},
        )
        assert signed.status_code == 303
    session = cookie_attributes(signed, SESSION_COOKIE)
    assert {"secure", "httponly", "samesite=lax", "path=/console"} <= session
    anonymous = login.headers.get_list("set-cookie")
    assert anonymous and all("secure" in header.lower() for header in anonymous)


def test_the_cookie_is_not_secure_on_a_plain_http_public_url(web: Web) -> None:
    with client_from(web) as client:
        signed = attempt(client, MANAGER, PASSWORD)
    attributes = cookie_attributes(signed, SESSION_COOKIE)
    assert "secure" not in attributes
    assert {"httponly", "samesite=lax", "path=/console"} <= attributes


# API tokens --------------------------------------------------------------------------------


def test_a_revoked_api_token_gets_401(web: Web) -> None:
    token = web.app.accounts.create_token("clinic website")
    auth = {"Authorization": f"Bearer {token}"}
    assert web.client.get("/api/v1/notices", headers=auth).status_code == 200
    revoked = web.app.accounts.revoke_token(name="clinic website")
    assert revoked.name == "clinic website"
    assert web.client.get("/api/v1/notices", headers=auth).status_code == 401
