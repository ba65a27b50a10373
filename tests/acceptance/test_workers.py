"""Several `notifier serve` processes on one PostgreSQL, split by role: two schedulers fire the
broadcast exactly once, three workers send it, one worker dies mid-broadcast, and every message
is still sent exactly once, finished by the survivors (claims are exclusive, leases expire)."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.bootstrap import build_app
from notifier.clock import FrozenClock
from notifier.settings import load_settings
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_control import FakeTwilioProcess
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.peers import EVENING_BEFORE
from tests.support.processes import NOTIFIER, free_port, service_env

RECIPIENTS = 3000
WORKERS = 3


@pytest.fixture
def twilio_process() -> Iterator[FakeTwilioProcess]:
    with FakeTwilioProcess("--latency-ms", "20", "60", "--seed", "7") as process:
        yield process


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_one_killed_every_message_sent_exactly_once(
    postgres_url: str, twilio_process: FakeTwilioProcess, tmp_path: Path
) -> None:
    env = service_env(
        tmp_path,
        postgres_url,
        twilio_process.info,
        SMS_RATE_PER_SECOND="2000",
        DISPATCH_CONCURRENCY="8",
        LEASE_SECONDS="4",
    )
    settings = load_settings(database_url=postgres_url)
    app = build_app(settings, clock=FrozenClock(EVENING_BEFORE))
    app.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(RECIPIENTS, with_email=False)))
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    ).notice

    schedulers = [
        subprocess.Popen(
            [*NOTIFIER, "serve", "--role", "scheduler", "--no-http"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(WORKERS)]  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [*NOTIFIER, "serve", "--role", "worker"],
            env=env | {"NOTIFIER_HTTP_PORT": str(free_port())},
            stderr=logs[i],
        )
        for i in range(WORKERS)
    ]
    control = twilio_process.control
    victim = workers[random.Random(11).randrange(WORKERS)]
    try:
        deadline = time.monotonic() + 60
        while control.request_count()["creates"] < RECIPIENTS // 3:
            assert time.monotonic() < deadline, "the workers did not start sending"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        deadline = time.monotonic() + 120
        while True:
            states = Counter(d.state for d in app.deliveries.log(OPERATOR, notice.id))
            if set(states) == {"sent"}:
                break
            assert time.monotonic() < deadline, f"survivors did not finish: {states}"
            time.sleep(0.5)
    finally:
        for worker in workers + schedulers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers + schedulers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for log in logs:
            log.close()
        app.close()

    assert len(app.deliveries.log(OPERATOR, notice.id)) == RECIPIENTS  # fanned out once, by one
    assert all(s.returncode == 0 for s in schedulers)
    creates = control.received_creates()
    per_number = Counter(record["form"]["To"][0] for record in creates)
    assert len(per_number) == RECIPIENTS, "a message was lost"
    duplicates = {to: n for to, n in per_number.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} numbers got two texts"
    survivors = [w for w in workers if w is not victim]
    assert all(w.returncode == 0 for w in survivors), "a survivor did not shut down cleanly"
