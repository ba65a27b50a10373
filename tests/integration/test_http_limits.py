"""Bounded HTTP: every request body has a per-route limit enforced while it is read (413), and
the API token or console session is checked before a large body is read at all.

The 50 MB test runs ``notifier serve`` as its users do (a subprocess) and reads the server's
resident memory from ``/proc`` before and after; the rest serve the app in-process on loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from notifier.clock import FrozenClock
from notifier.errors import ConfigurationError
from notifier.settings import load_settings
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.patients import PATIENTS_CSV
from tests.support.processes import free_port, run_notifier, service_env
from tests.support.serving import serving
from tests.support.web import PASSWORD, Web, csrf_of, served, sign_in

BIG = 50 * 1000 * 1000
CHUNK = 64 * 1024
MANAGER = "manager@cova.example"
SECRET = "Vq3kZr8TnW5xLp2HjY7cFm4Ds9Ga6Be1Qu0Ko"  # strong enough to sign sessions
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BOUNDARY = "limits-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def stream(size: int, head: bytes = b"") -> Iterator[bytes]:
    """``size`` bytes of body starting with ``head``, in 64 KiB pieces (never all in memory)."""
    yield head
    piece = b"x" * CHUNK
    left = size - len(head)
    while left > 0:
        yield piece[: min(CHUNK, left)]
        left -= CHUNK


def multipart_head(csrf: str = "") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()


def post_big(
    client: httpx.Client, path: str, content_type: str, head: bytes, chunked: bool, **headers: str
) -> int:
    """POST 50 MB to ``path``: with Content-Length, or chunked when ``chunked``."""
    sent = {"Content-Type": content_type} | headers
    if not chunked:
        sent["Content-Length"] = str(BIG)
    answer = client.post(path, content=stream(BIG, head), headers=sent)
    if chunked:
        assert answer.request.headers.get("transfer-encoding") == "chunked"
    else:
        assert "transfer-encoding" not in answer.request.headers
    return answer.status_code


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@dataclass
class Served:
    url: str
    pid: int
    token: str
    auth_token: str

    def signed(self, path: str, params: dict[str, str]) -> dict[str, str]:
        signature = RequestValidator(self.auth_token).compute_signature(self.url + path, params)
        return {"X-Twilio-Signature": signature}


@pytest.fixture
def serve(database_url: str, fake_twilio: FakeTwilio, tmp_path: Path) -> Iterator[Served]:
    """``notifier serve`` in its own process, with an API token and a console manager."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        tmp_path,
        database_url,
        fake_twilio.info(),
        HTTP_PORT=str(port),
        PUBLIC_BASE_URL=url,
        SECRET_KEY=SECRET,
    )
    token = run_notifier(env, "token", "create", "--name", "limits").stdout.strip()
    run_notifier(env, "user", "create", "--email", MANAGER, "--role", "manager", stdin=PASSWORD)
    with serving(env, tmp_path / "serve.log") as service:
        yield Served(url, service.pid, token, fake_twilio.auth_token)


def normal_requests_work(served: Served, manager: httpx.Client) -> None:
    """One ordinary request to each public POST route is answered as before."""
    client = manager
    bearer = {"Authorization": f"Bearer {served.token}"}
    status = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    path = "/webhooks/twilio/status"
    assert client.post(path, data=status, headers=served.signed(path, status)).status_code == 200
    help_ = {"From": "+15405550111", "Body": "HELP", "MessageSid": "SM" + "1" * 32}
    path = "/webhooks/twilio/inbound"
    answer = client.post(path, data=help_, headers=served.signed(path, help_))
    assert answer.status_code == 200 and "<Response" in answer.text  # TwiML
    one_click = client.post("/unsubscribe/not-a-token", data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 404  # an ordinary answer: the link is not genuine
    location = {"name": "COVA", "timezone": "America/New_York", "phone": "540-555-0100"}
    assert client.put("/api/v1/locations/cova", json=location, headers=bearer).status_code == 200
    opt_out = {"channel": "sms", "address": "+15405550199"}
    assert client.post("/api/v1/opt-outs", json=opt_out, headers=bearer).status_code == 200
    csrf = csrf_of(client.get("/console/patients/import"))
    files = {"file": ("p.csv", PATIENTS_CSV.encode(), "text/csv")}
    imported = client.post("/console/patients/import", data={"csrf": csrf}, files=files)
    assert imported.status_code == 200 and "Imported" in imported.text


def test_50_mb_to_each_public_post_route_is_refused_and_the_server_stays_small(
    serve: Served,
) -> None:
    manager = httpx.Client(base_url=serve.url, timeout=60)
    stranger = httpx.Client(base_url=serve.url, timeout=60)
    try:
        csrf = csrf_of(manager.get("/console/login"))
        signed_in = manager.post(
            "/console/login", data={"email": MANAGER, "password": PASSWORD, "csrf": csrf}
        )
        assert signed_in.status_code == 303
        normal_requests_work(serve, manager)  # also warms every route up before measuring
        csrf = csrf_of(manager.get("/console/patients/import"))
        bearer = {"Authorization": f"Bearer {serve.token}"}
        cases: list[tuple[httpx.Client, str, str, bytes, dict[str, str], int, int]] = [
            # client, path, type, head, headers, with Content-Length, chunked
            (stranger, "/webhooks/twilio/status", FORM, b"MessageSid=", {}, 413, 413),
            (stranger, "/webhooks/twilio/inbound", FORM, b"Body=", {}, 413, 413),
            # The one-click page never reads a body: it answers as if none came, and hangs up.
            (stranger, "/unsubscribe/not-a-token", FORM, b"List-Unsubscribe=", {}, 413, 404),
            (stranger, "/api/v1/notices", JSON, b'{"reason": "', {}, 413, 401),
            (stranger, "/api/v1/opt-outs", JSON, b'{"address": "', {}, 413, 401),
            (stranger, "/api/v1/patients/import", "text/csv", b"external_id,", {}, 413, 401),
            (stranger, "/api/v1/notices", JSON, b'{"reason": "', bearer, 413, 413),
            (stranger, "/console/login", FORM, b"email=", {}, 413, 413),
            (stranger, "/console/login", MULTIPART, multipart_head(), {}, 413, 413),
            (stranger, "/console/patients/import", MULTIPART, multipart_head(), {}, 413, 303),
            (manager, "/console/patients/import", MULTIPART, multipart_head(csrf), {}, 413, 413),
        ]
        before = rss_kib(serve.pid)
        answers = {}
        for client, path, kind, head, headers, declared, chunked in cases:
            who = "manager" if client is manager else "stranger"
            for is_chunked, expected in ((False, declared), (True, chunked)):
                got = post_big(client, path, kind, head, is_chunked, **headers)
                answers[(who, path, kind, bool(headers), is_chunked)] = (got, expected)
        grown = rss_kib(serve.pid) - before
        statuses = {case: got for case, (got, _) in answers.items()}
        expected = {case: wanted for case, (_, wanted) in answers.items()}
        assert (statuses, grown < 20 * 1024) == (expected, True), f"grew by {grown} KiB"
        normal_requests_work(serve, manager)  # and it still serves ordinary requests
    finally:
        manager.close()
        stranger.close()


def raw_head(web: Web, head: str, wait: float = 5.0) -> str:
    """Send only a request's head (no body) and return the status line the server answers."""
    with socket.create_connection(("127.0.0.1", web.server.port), timeout=wait) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        try:
            return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]
        except TimeoutError:
            return "no answer: the server waited for the body"


@pytest.fixture
def web(web: Web) -> Web:
    """The shared served app (reference location and patients), plus this file's own setup."""
    web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
    web.app.accounts.create_user("viewer@cova.example", "viewer", PASSWORD)
    return web


def test_the_api_refuses_a_request_without_a_token_before_reading_its_body(web: Web) -> None:
    for token in ("", "Authorization: Bearer ntf_forged\n"):
        status = raw_head(
            web,
            "POST /api/v1/notices HTTP/1.1\nHost: x\nContent-Type: application/json\n"
            f"{token}Content-Length: 500000\n",
        )
        assert status == "HTTP/1.1 401 Unauthorized"


def test_the_console_upload_refuses_anyone_but_a_manager_before_reading_the_file(
    web: Web,
) -> None:
    head = (
        f"POST /console/patients/import HTTP/1.1\nHost: x\nContent-Type: {MULTIPART}\n"
        "Content-Length: 5000000\n"
    )
    assert raw_head(web, head) == "HTTP/1.1 303 See Other"  # to the sign-in page
    viewer = sign_in(web, "viewer@cova.example")
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in viewer.cookies.items())
    finally:
        viewer.close()
    assert raw_head(web, head + f"Cookie: {cookie}\n") == "HTTP/1.1 403 Forbidden"


def test_a_file_over_the_upload_limit_gets_the_import_pages_own_explanation(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with served(database_url, fake_twilio, fake_smtp, clock, http_upload_max_bytes=4096) as web:
        web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
        manager = sign_in(web, MANAGER)
        try:
            csrf = csrf_of(manager.get("/console/patients/import"))

            def upload(size: int) -> httpx.Response:
                data = PATIENTS_CSV.encode().ljust(size, b"\n")
                files = {"file": ("patients.csv", data, "text/csv")}
                return manager.post("/console/patients/import", data={"csrf": csrf}, files=files)

            over = upload(4097)  # the file is over; the form around it still fits
            assert "larger than 4 KiB: split it" in over.text, over.text
            assert upload(4096 + 70_000).status_code == 413  # far over: refused while read
        finally:
            manager.close()


def test_a_genuine_webhook_over_the_limit_is_refused_and_one_under_it_answered(
    web: Web,
) -> None:
    params = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "delivered"}
    under = web.signed_post("/webhooks/twilio/status", params | {"Pad": "x" * 60_000})
    assert under.status_code == 200
    over = web.signed_post("/webhooks/twilio/status", params | {"Pad": "x" * 70_000})
    assert over.status_code == 413
    assert over.json() == {"detail": "the request body is larger than 65536 bytes"}


def test_a_sign_in_form_over_the_limit_is_refused_with_a_page(web: Web) -> None:
    csrf = csrf_of(web.client.get("/console/login"))
    answer = web.client.post(
        "/console/login", data={"email": "x" * 70_000, "password": "p", "csrf": csrf}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "larger than 65536 bytes" in answer.text


def test_the_limits_are_settings(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with served(database_url, fake_twilio, fake_smtp, clock, http_api_max_bytes=2048) as w:
        bearer = {"Authorization": f"Bearer {w.app.accounts.create_token('small')}"}
        opt_out = {"channel": "sms", "address": "+15405550199"}
        assert w.client.post("/api/v1/opt-outs", json=opt_out, headers=bearer).status_code == 200
        padded = opt_out | {"pad": "x" * 3000}
        answer = w.client.post("/api/v1/opt-outs", json=padded, headers=bearer)
        assert answer.status_code == 413
        assert answer.json() == {"detail": "the request body is larger than 2048 bytes"}


@pytest.mark.parametrize(
    "name", ["http_webhook_max_bytes", "http_form_max_bytes", "http_api_max_bytes"]
)
def test_a_limit_below_one_kib_is_refused_naming_the_variable(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"NOTIFIER_{name.upper()}"):
        load_settings(**{name: 100})
