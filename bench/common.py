"""Shared pieces of the benchmarks: a Twilio-compatible server in its own process, a throw-away
SQLite app, patients inserted in bulk (the importer is not what is measured here)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update

from notifier.bootstrap import App, build_app
from notifier.clock import Clock, ShiftedClock
from notifier.domain.actors import Actor
from notifier.settings import load_settings
from notifier.storage.models import Broadcast, Patient
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_control import FakeTwilioProcess

OPERATOR = Actor.operator()  # benchmarks run the installation: every location

SHORT = "Closed today for snow. Reopens tomorrow 8 AM."  # one GSM-7 segment with the prefix
# The benchmarks' clock starts here, whatever the hour of the run: a Tuesday, 10:00 in New York,
# outside the default quiet hours (run at night on the wall clock, every text was held).
PINNED = datetime(2025, 2, 18, 15, 0, tzinfo=UTC)


class NothingSent(RuntimeError):
    """A measurement that sent less than it queued measures nothing: fail loudly."""


def require_sent(what: str, sent: int, expected: int) -> None:
    if sent < expected:
        raise NothingSent(f"{what}: the server received {sent} of {expected} messages")


@contextmanager
def twilio_server(latency_ms: tuple[float, float] | None) -> Iterator[FakeTwilioProcess]:
    args = ["--seed", "1"]
    if latency_ms:
        args += ["--latency-ms", str(latency_ms[0]), str(latency_ms[1])]
    with FakeTwilioProcess(*args) as process:
        yield process


# Benchmarks measure sending, not the confidence gates (issue 20): no undo window, no approval.
BENCH_GATES: dict[str, Any] = {"send_hold_seconds": 0.0, "approval_threshold": 10**9}
BENCH_GATES_ENV = {name.upper(): str(value) for name, value in BENCH_GATES.items()}


@contextmanager
def bench_app(
    twilio: FakeTwilioProcess | None, clock: Clock | None = None, **settings: Any
) -> Iterator[App]:
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "log_level": "WARNING",
            "sms_weekly_cap": 0,
            **BENCH_GATES,
        }
        if twilio is not None:
            info = twilio.info
            values |= {
                "twilio_account_sid": info["account_sid"],
                "twilio_auth_token": info["auth_token"],
                "twilio_from_number": info["from_number"],
                "twilio_api_base_url": info["base_url"],
            }
        app = build_app(load_settings(**(values | settings)), clock=clock or ShiftedClock(PINNED))
        try:
            app.locations.save(
                OPERATOR,
                "cova",
                "COVA Spine and Pain Center",
                "America/New_York",
                "Mon-Fri 08:00-17:00",
            )
            yield app
        finally:
            app.close()


def add_patients(app: App, count: int, start: int = 0, location_id: int = 1) -> None:
    """Distinct valid phones, SMS consent only; executemany in chunks."""
    now = datetime.now(UTC)
    rows = [
        {
            "external_id": f"b{i}",
            "first_name": "Pat",
            "last_name": "Bench",
            "phone": f"+1540{2000000 + i}",
            "email": None,
            "language": "en",
            "location_id": location_id,
            "sms_consent": True,
            "email_consent": False,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(start, start + count)
    ]
    with app.db.session() as s:
        for chunk in range(0, len(rows), 20_000):
            s.execute(insert(Patient), rows[chunk : chunk + 20_000])


def queue_notice(
    app: App, message: str = SHORT, send_at: datetime | None = None, location: str = "cova"
) -> int:
    """A notice for the whole location whose closure lasts two days from now; SMS only."""
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location=location,
            starts=_local(app, 1),
            ends=_local(app, 2),
            reason="snow",
            message=message,
            channels=("sms",),
        ),
    )
    if send_at is not None:
        with app.db.session() as s:
            s.execute(
                update(Broadcast).where(Broadcast.notice_id == notice.id).values(send_at=send_at)
            )
    return notice.id


def _local(app: App, days: int) -> str:
    instant = app.clock.now().astimezone(ZoneInfo("America/New_York")) + timedelta(days=days)
    return instant.strftime("%Y-%m-%d %H:%M")


def drain_timed(app: App) -> tuple[float, float]:
    """Fire what is due and send it all with one dispatcher: (wall seconds, this process's CPU
    seconds) of the drain."""
    app.fanout.fire_due()
    dispatcher = app.dispatcher()
    started, cpu = time.monotonic(), time.process_time()
    try:
        dispatcher.drain()
    finally:
        dispatcher.close()
    return time.monotonic() - started, time.process_time() - cpu


def create_times(twilio: FakeTwilioProcess, since: int = 0) -> list[float]:
    """Server-side arrival time of every create request (the server's own request log)."""
    records = twilio.control.call("GET", f"requests?kind=create&since={since}")
    return sorted(r["time"] for r in records)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best
