"""The HTTP tests' harness: the real app served by uvicorn on loopback, signed requests."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.usecases.notice_requests import NoticeRequest
from notifier.web.server import HttpServer
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import PATIENTS_CSV
from tests.support.peers import peer_settings

SECRET = "kF3v9QmZt0r1xYpL2wHs8uNcJd6Ea5Bg-Tz4"  # a fixed random key (tests only)
PASSWORD = "correct horse battery"  # every console user the tests create


@dataclass
class Web:
    app: App
    server: HttpServer
    client: httpx.Client
    twilio: FakeTwilio

    def signed_post(
        self, path: str, params: dict[str, str], token: str | None = None
    ) -> httpx.Response:
        """POST a form as Twilio would, signed with the account's auth token (or ``token``)."""
        url = self.server.url + path
        signature = RequestValidator(token or self.twilio.auth_token).compute_signature(url, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    def inbound(self, body: str, from_: str, sid: str | None = None) -> tuple[int, str]:
        """A signed inbound text from ``from_``: its own new MessageSid unless ``sid`` repeats
        one (a replay). The status code and the TwiML answered."""
        params = {
            "MessageSid": sid or new_message_sid(),
            "From": from_,
            "To": self.twilio.from_number,
            "Body": body,
            "NumMedia": "0",
        }
        response = self.signed_post("/webhooks/twilio/inbound", params)
        return response.status_code, response.text

    def settle(self) -> dict[str, int]:
        """Apply the delivery reports the intake holds, as a worker would; their outcomes."""
        totals: dict[str, int] = {}
        while counts := self.app.deliveries.apply_received():
            for outcome, count in counts.items():
                totals[outcome] = totals.get(outcome, 0) + count
            if set(counts) == {"waiting"}:
                break
        return totals


_message_sids = itertools.count(1)


def new_message_sid() -> str:
    """A MessageSid no other test message has."""
    return f"SM{next(_message_sids):032x}"


@contextmanager
def served(
    database_url: str,
    twilio: FakeTwilio,
    smtp: FakeSmtp,
    clock: FrozenClock,
    **settings: Any,
) -> Iterator[Web]:
    """The app served on a free loopback port; ``settings`` add to the peers' settings."""
    values = {"secret_key": SECRET} | settings
    app = build_app(peer_settings(database_url, twilio, smtp, **values), clock=clock)
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    # The port is known only now; channels built after this send callbacks here.
    app.settings.public_base_url = server.url
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            yield Web(app, server, client, twilio)
    finally:
        server.stop()
        app.close()


def save_cova(app: App) -> str:
    """The reference location (Mon–Fri 08:00–17:00, New York); its slug."""
    app.locations.save(
        OPERATOR,
        "cova",
        "COVA Spine and Pain Center",
        "America/New_York",
        "Mon-Fri 08:00-17:00",
        "540-555-0100",
    )
    return "cova"


def add_cova(app: App) -> None:
    """The reference location and its five patients."""
    save_cova(app)
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a console page carries in its forms."""
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def sign_in(web: Web, email: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in to the console as ``email`` (the caller closes it)."""
    client = httpx.Client(base_url=web.server.url, timeout=10.0)
    token = csrf_of(client.get("/console/login"))
    answer = client.post(
        "/console/login", data={"email": email, "password": password, "csrf": token}
    )
    assert answer.status_code == 303, answer.text
    return client


@contextmanager
def signed_in(web: Web, role: str) -> Iterator[httpx.Client]:
    """A new console user of ``role`` (``role@cova.example``), signed in; closed afterwards."""
    email = f"{role}@cova.example"
    web.app.accounts.create_user(email, role, PASSWORD)
    client = sign_in(web, email)
    try:
        yield client
    finally:
        client.close()


def broadcast_sms(app: App, channel: FakeChannel, **notice: object) -> int:
    """The reference notice by SMS, fired and dispatched through ``channel``; its id."""
    values: dict[str, object] = {
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "inclement weather",
        "channels": ("sms",),
    } | notice
    created = app.notices.create(OPERATOR, NoticeRequest(location="cova", **values))  # type: ignore[arg-type]
    app.fanout.fire_due()
    app.dispatcher({"sms": channel}, "w1").drain()
    return created.id


def broadcast_email(app: App) -> int:
    """The reference notice by email, fired and dispatched through the SMTP peer; its id."""
    created = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("email",),
        ),
    )
    app.fanout.fire_due()
    dispatcher = app.dispatcher()
    try:
        dispatcher.drain()
    finally:
        dispatcher.close()
    return created.id
