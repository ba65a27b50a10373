"""Two and three `notifier serve --role worker` processes on one PostgreSQL share one SMS rate:
the Twilio-compatible server counts the segments it receives per second, and the fleet stays
within the configured rate (before issue 25 each process applied the limit alone: N × the rate).
In the three-worker run one worker is killed mid-broadcast; the survivors pick up its share and
the rate still holds (its unused slots expire instead of being caught up in a burst).
Per-process limits measured 56 segments/s and 78 in the busiest second here, at R = 20.

The server's own limit is set at R too (``--rate-limit``: beyond R segments/s and a burst of R
it answers 429/20429, as Twilio answers a request it will not process). Rates are counted over
every create the fleet made, answered or refused, so the server's limit cannot hide an
overshoot. The fleet draws a few 429s, not none: its timeline runs at the edge of the same
burst the server allows, so the jitter between a text's slot and its arrival (a new
connection, a busy core, each worker's estimate of the shared clock) now and then brings two
texts closer than the server's bucket takes. Every such text is retried and delivered once."""

from __future__ import annotations

import io
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
from notifier_sandbox.twilio_support import count_segments
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.peers import EVENING_BEFORE
from tests.support.processes import NOTIFIER, free_port, service_env

RATE = 20  # segments per second, for the whole fleet


@pytest.fixture
def twilio_process() -> Iterator[FakeTwilioProcess]:
    with FakeTwilioProcess(
        "--latency-ms", "20", "60", "--seed", "5", "--rate-limit", str(RATE)
    ) as process:
        yield process


def busiest_window(times_segments: list[tuple[float, int]], width: float = 1.0) -> int:
    """The most segments received in any ``width``-second window (each starting at a request)."""
    best = 0
    for i, (start, _) in enumerate(times_segments):
        best = max(best, sum(n for t, n in times_segments[i:] if t < start + width))
    return best


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 3])
def test_a_fleet_of_workers_stays_within_one_segment_rate_at_the_provider(
    postgres_url: str, twilio_process: FakeTwilioProcess, tmp_path: Path, workers: int
) -> None:
    env = service_env(
        tmp_path,
        postgres_url,
        twilio_process.info,
        SMS_RATE_PER_SECOND=str(RATE),
        DISPATCH_CONCURRENCY="8",
        # A worker is dead after 5 s of silence: short enough for the test, long enough that a
        # live worker starved of CPU by a busy machine is not taken for dead (its sends would
        # then be taken over while it still makes them: see the closing note of issue 25).
        LEASE_SECONDS="10",
        WORKER_TIMEOUT_SECONDS="5",
        HEARTBEAT_SECONDS="0.5",
        RATE_GRANT_SECONDS="0.25",
    )
    app = build_app(load_settings(database_url=postgres_url), clock=FrozenClock(EVENING_BEFORE))
    app.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    recipients = 60
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(recipients, with_email=False)))
    processes = [
        subprocess.Popen(
            [*NOTIFIER, "serve", "--role", "worker"],
            env=env | {"NOTIFIER_HTTP_PORT": str(free_port())},
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    control = twilio_process.control
    try:
        time.sleep(2)  # every worker up before the broadcast, so that all of them compete
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
        processes.append(
            subprocess.Popen(
                [*NOTIFIER, "serve", "--role", "scheduler", "--no-http"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 120
        if workers == 3:
            while control.request_count()["creates"] < recipients // 3:
                assert time.monotonic() < deadline, "the workers did not start sending"
                time.sleep(0.05)
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=10)
        while True:
            states = Counter(d.state for d in app.deliveries.log(OPERATOR, notice.id))
            if set(states) == {"sent"}:
                break
            assert time.monotonic() < deadline, f"the fleet did not finish: {states}"
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        app.close()

    creates = sorted(control.received_creates(), key=lambda r: r["time"])
    per_number = Counter(r["form"]["To"][0] for r in creates)
    assert len(per_number) == recipients and max(per_number.values()) == 1
    attempts = [r for r in control.requests() if r["kind"] == "create"]
    start = attempts[0]["time"]
    refused = [round(r["time"] - start, 2) for r in attempts if r["outcome"] == "rate_limited"]
    # Issue 25's target is 0 × 429; measured 1–2 here (bench.fleet_rate: 0–5 per run shared,
    # 21–646 per-process, where about half the sends are refused).
    assert len(refused) <= recipients // 10, f"{len(refused)} × 429, at {refused} s"
    received = [(r["time"], count_segments(r["form"]["Body"][0])) for r in attempts]
    # After the first second (an idle sender may burst one second's worth, as Twilio allows):
    # the steady rate, from the server's clock; the last request's segments take their slots.
    steady = [(t, n) for t, n in received if t >= received[0][0] + 1.0]
    span = steady[-1][0] - steady[0][0] + steady[-1][1] / RATE
    average = sum(n for _, n in steady) / span
    busiest = busiest_window(received)
    assert average <= RATE * 1.1, f"{average:.1f} segments/s on average, limit {RATE}"
    # The target: at most R + max(1, R) in any second (the burst and the rate), plus a little
    # for the server's own latency (20–60 ms).
    assert busiest <= 2 * RATE + 3, f"{busiest} segments in the busiest second, limit {RATE}"
    if workers == 2:  # nobody died: the fleet keeps the rate busy, not just below it
        assert average >= RATE * 0.8, f"only {average:.1f} segments/s of {RATE}"
