"""Receipts survive a crash: ``notifier serve`` is SIGKILLed while a burst of signed status
callbacks arrives from many concurrent senders, and restarted. A callback answered 200 is never
sent again (as Twilio would not), so if the intake had lost one, its delivery would stay "sent";
one that got no answer is sent again after the restart. The verdict is counted in the database:
every delivery reached its final state exactly once, each report was stored once and applied
once, repeats and duplicates changed nothing."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.storage.models import DeliveryEvent, Receipt
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import patients_csv
from tests.support.peers import peer_settings
from tests.support.processes import NOTIFIER, free_port, service_env
from tests.support.web import SECRET, save_cova

DELIVERIES = 300
SENDERS = 32
KILL_AFTER = 250  # answered callbacks before the SIGKILL (of 700)


def start(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    base = f"http://127.0.0.1:{env['NOTIFIER_HTTP_PORT']}"
    with log.open("a") as out:
        process = subprocess.Popen(
            [*NOTIFIER, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "notifier serve did not answer in 30 s"
        time.sleep(0.1)


@pytest.fixture
def sent(database_url: str, fake_twilio: FakeTwilio, clock: FrozenClock) -> Iterator[App]:
    """A broadcast of DELIVERIES texts, all "sent" (accepted by the provider)."""
    app = build_app(peer_settings(database_url, fake_twilio, None), clock=clock)
    save_cova(app)
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(DELIVERIES, with_email=False)))
    app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    )
    app.fanout.fire_due()
    app.dispatcher({"sms": FakeChannel()}, "w1").drain()
    assert len(app.deliveries.log(OPERATOR, state="sent")) == DELIVERIES
    yield app
    app.close()


def callbacks(app: App) -> list[dict[str, str]]:
    """For every text a repeat of "sent" and its final status; a third of the finals twice
    (a provider's retry), all shuffled as concurrent senders would deliver them."""
    found: list[dict[str, str]] = []
    for d in app.deliveries.log(OPERATOR, state="sent"):
        sid = d.provider_id or ""
        final = {"MessageStatus": "delivered"}
        if d.id % 3 == 0:
            final = {"MessageStatus": "undelivered", "ErrorCode": "30003"}
        found.append({"MessageSid": sid, "MessageStatus": "sent"})
        found.append({"MessageSid": sid} | final)
        if d.id % 3 == 1:
            found.append({"MessageSid": sid} | final)
    random.Random(7).shuffle(found)
    return found


def test_a_kill_mid_burst_loses_no_callback_and_applies_none_twice(
    sent: App, fake_twilio: FakeTwilio, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        tmp_path,
        database_url,
        fake_twilio.info(),
        HTTP_PORT=str(port),
        PUBLIC_BASE_URL=url,
        SECRET_KEY=SECRET,
        LOG_LEVEL="WARNING",
    )
    log = tmp_path / "serve.log"
    burst = callbacks(sent)
    validator = RequestValidator(fake_twilio.auth_token)
    answered = 0
    refused = 0  # requests that got no 200 (the process was dead or dying) and were sent again
    lock = threading.Lock()
    killed = threading.Event()

    def post(params: dict[str, str], client: httpx.Client) -> None:
        nonlocal answered, refused
        signature = validator.compute_signature(url + "/webhooks/twilio/status", params)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    "/webhooks/twilio/status",
                    data=params,
                    headers={"X-Twilio-Signature": signature},
                )
                if response.status_code == 200:
                    with lock:
                        answered += 1
                    return
            except httpx.TransportError:
                pass
            with lock:
                refused += 1
            time.sleep(0.05)
        raise AssertionError("a callback was never answered 200")

    process = start(env, log)
    try:
        limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
        with (
            httpx.Client(base_url=url, timeout=10, limits=limits) as client,
            ThreadPoolExecutor(SENDERS) as pool,
        ):
            futures = [pool.submit(post, params, client) for params in burst]
            while answered < KILL_AFTER:
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            killed.set()
            answered_before_kill = answered
            process = start(env, log)
            for future in futures:
                future.result()
        assert KILL_AFTER <= answered_before_kill < len(burst)  # the kill was mid-burst
        assert refused > 0  # and some callbacks found no one to answer them
        deadline = time.monotonic() + 60
        while sent.deliveries.receipts_waiting():
            assert time.monotonic() < deadline, "reports still waiting after 60 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)

    states = Counter(d.state for d in sent.deliveries.log(OPERATOR))
    assert states == {"delivered": DELIVERIES - DELIVERIES // 3, "undelivered": DELIVERIES // 3}
    with sent.db.session() as s:
        kinds = s.execute(
            select(DeliveryEvent.delivery_id, DeliveryEvent.kind).where(
                DeliveryEvent.kind.like("status_%")
            )
        ).all()
        outcomes = dict(
            s.execute(select(Receipt.outcome, func.count()).group_by(Receipt.outcome)).all()
        )
    changes = Counter(i for i, kind in kinds if kind in ("status_delivered", "status_undelivered"))
    assert len(changes) == DELIVERIES and set(changes.values()) == {1}
    # One stored report per (message, status): the finals applied once each, their retries
    # never stored twice; each "sent" repeat changed nothing (a duplicate of our own state, or
    # late after the final one, then only noted as an ignored event).
    assert outcomes.pop("applied") == DELIVERIES
    assert set(outcomes) <= {"duplicate", "ignored"} and sum(outcomes.values()) == DELIVERIES
    assert Counter(kind for _, kind in kinds)["status_ignored"] == outcomes.get("ignored", 0)
