"""Dispatch throughput with 1, 2 and 4 `notifier serve --role worker` processes on PostgreSQL.

    python -m bench.workers_pg [--recipients 6000] [--workers 1 2 4] [--url postgresql://...]

For each worker count: a fresh schema, the Twilio-compatible server in its own process answering
in 50–200 ms, one `--role scheduler` process and N `--role worker` processes (each
NOTIFIER_DISPATCH_CONCURRENCY=32, no rate limit). The rate is measured at the server, from its
first to its last create; double sends are counted there too. Writes bench/results/workers_pg.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bench.common import BENCH_GATES, BENCH_GATES_ENV
from bench.postgres_scale import DEFAULT_URL, NOW, RESULTS
from notifier.bootstrap import build_app
from notifier.clock import FrozenClock
from notifier.domain.actors import Actor
from notifier.settings import load_settings
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_control import FakeTwilioProcess

OPERATOR = Actor.operator()  # benchmarks run the installation: every location


def patients_csv(count: int) -> str:
    rows = [
        "external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent"
    ]
    rows += [
        f"w{i},Pat,Ient,+1540{230 + i // 10000:03d}{i % 10000:04d},,en,cova,yes,no"
        for i in range(count)
    ]
    return "\n".join(rows) + "\n"


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new schema on the server at ``url`` (dropped afterwards): its SQLAlchemy URL."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    sa_url += ("&" if "?" in sa_url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        yield sa_url
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def clinic(sa_url: str, recipients: int) -> None:
    """The location and its patients (SMS consent only), pinned to ``NOW``."""
    settings = load_settings(database_url=sa_url, **BENCH_GATES)
    app = build_app(settings, clock=FrozenClock(NOW))
    app.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(recipients)))
    app.close()


def service_env(sa_url: str, info: dict[str, Any], **settings: str) -> dict[str, str]:
    """A `notifier serve` process's environment: no developer NOTIFIER_*, the server, ``NOW``;
    ``settings`` (names without the prefix) add to or override the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    values = {
        "DATABASE_URL": sa_url,
        "CONFIG_FILE": os.devnull,
        "TWILIO_ACCOUNT_SID": info["account_sid"],
        "TWILIO_AUTH_TOKEN": info["auth_token"],
        "TWILIO_FROM_NUMBER": info["from_number"],
        "TWILIO_API_BASE_URL": info["base_url"],
        "NOW": NOW.isoformat(),
        "POLL_INTERVAL_SECONDS": "0.2",
        "DISPATCH_CONCURRENCY": "32",
        "LOG_LEVEL": "WARNING",
    }
    env.update({f"NOTIFIER_{k}": v for k, v in (BENCH_GATES_ENV | values | settings).items()})
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def run(url: str, recipients: int, workers: int) -> dict[str, float]:
    processes: list[subprocess.Popen[bytes]] = []
    with (
        fresh_schema(url) as sa_url,
        FakeTwilioProcess("--latency-ms", "50", "200", "--seed", "3") as twilio,
    ):
        try:
            clinic(sa_url, recipients)
            env = service_env(sa_url, twilio.info, SMS_RATE_PER_SECOND="100000")
            command = [sys.executable, "-m", "notifier.cli", "serve", "--no-http"]
            processes = [
                subprocess.Popen([*command, "--role", "worker"], env=env) for _ in range(workers)
            ]
            time.sleep(3)  # let the workers start before the broadcast is queued
            app = build_app(
                load_settings(database_url=sa_url, **BENCH_GATES), clock=FrozenClock(NOW)
            )
            app.notices.create(
                OPERATOR,
                NoticeRequest(
                    location="cova",
                    starts="2025-02-19 12:30",
                    ends="2025-02-21 00:00",
                    reason="snow",
                    channels=("sms",),
                ),
            )
            app.close()
            processes.append(subprocess.Popen([*command, "--role", "scheduler"], env=env))
            control = twilio.control
            deadline = time.monotonic() + 600
            while control.request_count()["creates"] < recipients:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not finish in 10 minutes")
                time.sleep(0.5)
            creates = control.received_creates()
        finally:
            stop(processes)
    times = sorted(record["time"] for record in creates)
    per_number = Counter(record["form"]["To"][0] for record in creates)
    return {
        "workers": workers,
        "recipients": recipients,
        "messages_per_s": (len(times) - 1) / (times[-1] - times[0]),
        "double_sends": sum(n - 1 for n in per_number.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--recipients", type=int, default=6000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    rows = [run(args.url, args.recipients, n) for n in args.workers]
    print(f"{'workers':>7} {'recipients':>10} {'messages/s':>10} {'double sends':>12}")
    for r in rows:
        print(
            f"{int(r['workers']):>7} {int(r['recipients']):>10} {r['messages_per_s']:>10.1f} "
            f"{int(r['double_sends']):>12}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workers_pg.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
