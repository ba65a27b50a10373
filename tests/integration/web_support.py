"""Helpers for the HTTP tests: the real app served by uvicorn on loopback, signed requests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import httpx
from twilio.request_validator import RequestValidator

from notifier import store
from notifier.bootstrap import App, build_app
from notifier.channels.base import OutgoingMessage, SendResult
from notifier.clock import FrozenClock
from notifier.dispatcher import Dispatcher
from notifier.fanout import fire_due_broadcasts
from notifier.importer import import_patients
from notifier.web.server import HttpServer
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.conftest import PATIENTS_CSV, peer_settings

SECRET = "test-secret-key-0123456789abcdef"


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


@contextmanager
def served(
    database_url: str,
    twilio: FakeTwilio,
    smtp: FakeSmtp,
    clock: FrozenClock,
    unknown_sid_wait: float = 0.0,
) -> Iterator[Web]:
    app = build_app(peer_settings(database_url, twilio, smtp, secret_key=SECRET), clock=clock)
    server = HttpServer(app, "127.0.0.1", 0, unknown_sid_wait=unknown_sid_wait)
    server.start()
    # The port is known only now; channels built after this send callbacks here.
    app.settings.public_base_url = server.url
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            yield Web(app, server, client, twilio)
    finally:
        server.stop()
        app.close()


class RecordingSms:
    """Our own seam: accepts every text with a predictable provider id and records it."""

    name: ClassVar[str] = "sms"

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(f"SM{message.delivery_id:032d}", 2)

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        return None

    def close(self) -> None:
        pass


def add_cova(app: App) -> None:
    app.service.add_location(
        "cova",
        "COVA Spine and Pain Center",
        "America/New_York",
        "Mon-Fri 08:00-17:00",
        "540-555-0100",
    )
    import_patients(app.db, app.clock, io.StringIO(PATIENTS_CSV))


def broadcast_sms(app: App, channel: RecordingSms, **notice: object) -> int:
    """The reference notice by SMS, fired and dispatched through ``channel``; its id."""
    values: dict[str, object] = {
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "inclement weather",
        "channels": "sms",
    } | notice
    view = app.service.create_notice("cova", **values)  # type: ignore[arg-type]
    fire_due_broadcasts(app.db, app.clock, app.settings)
    Dispatcher(app.db, {"sms": channel}, app.renderer, app.clock, app.settings, "w1").drain()
    return view.id


def events(app: App, delivery_id: int) -> list[tuple[str, str, str | None]]:
    with app.db.session() as s:
        return [(e.kind, e.state, e.code) for e in store.events_for(s, [delivery_id])]


def opted_out(app: App, channel: str, address: str) -> bool:
    with app.db.session() as s:
        return store.opt_out_exists(s, channel, address)


def ledger(app: App, channel: str, address: str) -> list[tuple[str, str, str, int | None]]:
    """Opt-out/opt-in entries (the consent granted by the patient import is tested on its own)."""
    with app.db.session() as s:
        return [
            (e.source, e.old, e.new, e.patient_id)
            for e in store.consent_events(s, channel, address)
            if e.source != "import"
        ]
