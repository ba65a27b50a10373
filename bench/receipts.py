"""Status-callback intake: callbacks/s and p50/p99 latency at 16, 64 and 256 concurrent senders.

    python -m bench.receipts [--callbacks 1500] [--senders 16 64 256] [--baseline REV ...]
                             [--url postgresql://...] [--only sqlite-1 pg-3] [--repeat 3]

Targets, each on a fresh database holding ``repeat × len(senders) × callbacks`` texts "sent":
``sqlite-1`` one ``notifier serve`` on SQLite; ``pg-3`` three on PostgreSQL behind one public
URL (each sender sticks to one process, as behind a load balancer). Each is run with this
tree's code and with the code at each ``--baseline`` revision (default ``9e840e8``, where the
intake began: the synchronous path, and ``9c01250``, the intake before the fast lane; unpacked
with ``git archive``), on the same data (today's schema, stamped at the revision's newest
migration). A sender is a
keep-alive HTTP/1.1 connection posting signed "delivered" callbacks (Twilio's fields) one after
another; the generator is one asyncio process with every request pre-built, and its CPU is
reported apart from the servers' (user+system from /proc). "applied/s" is callbacks until the
last one is applied (the intake applies in the background; the baseline before it answers).
The whole comparison is run ``--repeat`` times, the codes taking turns, and the table gives
each cell's median (callbacks/s also its min-max): the machine is shared and drifts. Writes
every round to bench/results/receipts.json. ``BENCH_RECEIPTS_ENV="NOTIFIER_X=1 NOTIFIER_Y=2"``
passes settings to the servers (e.g. ``NOTIFIER_RECEIPTS_BATCH_SIZE``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import psycopg
from sqlalchemy import Engine, create_engine, func, select, text
from twilio.request_validator import RequestValidator

from bench.common import BENCH_GATES, add_patients
from bench.postgres_scale import DEFAULT_URL, NOW, RESULTS
from notifier.bootstrap import build_app
from notifier.channels.base import OutgoingMessage, SendResult
from notifier.channels.sms import SmsChannel
from notifier.clock import FrozenClock
from notifier.domain.actors import Actor
from notifier.domain.channels import ChannelSpec
from notifier.settings import load_settings
from notifier.storage.models import Delivery
from notifier.usecases.notice_requests import NoticeRequest

OPERATOR = Actor.operator()  # benchmarks run the installation: every location

TOKEN = "0123456789abcdef0123456789abcdef"  # the fake account's auth token (signs callbacks)
PUBLIC = "https://notifier.example"  # what Twilio was given: one URL for every process
PATH = "/webhooks/twilio/status"
ROOT = Path(__file__).resolve().parent.parent
BASELINES = {"9e840e8": "sync", "9c01250": "intake"}  # what the revisions are known as
EXTRA_ENV: dict[str, str] = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_RECEIPTS_ENV", "").split() if item
)


class Accepting:
    """Takes every text at once (the sends only make the deliveries; they are not measured)."""

    spec: ClassVar[ChannelSpec] = SmsChannel.spec

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(f"SM{message.delivery_id:032x}", 1)

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        return None

    def close(self) -> None:
        pass


def prepare(url: str, texts: int) -> list[str]:
    """``texts`` deliveries in state "sent"; their provider ids in delivery order."""
    settings = load_settings(
        database_url=url,
        log_level="WARNING",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15005550006",
        sms_weekly_cap=0,
        sms_rate_per_second=100_000.0,  # the texts are only the data the callbacks name
        dispatch_concurrency=32,
        **BENCH_GATES,
    )
    app = build_app(settings, clock=FrozenClock(NOW))
    try:
        app.locations.save(
            OPERATOR,
            "cova",
            "COVA Spine and Pain Center",
            "America/New_York",
            "Mon-Fri 08:00-17:00",
        )
        add_patients(app, texts)
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
        app.fanout.fire_due()
        dispatcher = app.dispatcher({"sms": Accepting()}, "bench")
        try:
            while dispatcher.drain():
                pass
        finally:
            dispatcher.close()
        with app.db.session() as s:
            sids = s.scalars(
                select(Delivery.provider_id).where(Delivery.state == "sent").order_by(Delivery.id)
            ).all()
        if len(sids) != texts:
            raise RuntimeError(f"{len(sids)} of {texts} texts sent: see the delivery log")
        return [sid for sid in sids if sid]
    finally:
        app.close()


def request(sid: str, port: int) -> bytes:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": sid,
        "MessageStatus": "delivered",
        "RawDlrDoneDate": "2502181805",
        "SmsSid": sid,
        "SmsStatus": "delivered",
        "To": "+15402000000",
    }
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + PATH, params)
    body = urlencode(params).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: TwilioProxy/1.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _sender(port: int, requests: Sequence[bytes], latencies: list[float]) -> int:
    """Posts one after another on one connection; how many were not answered 200 (a dropped
    connection counts one and is opened again)."""
    failed = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in requests:
        started = time.perf_counter()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
        except (ConnectionError, asyncio.IncompleteReadError):
            failed += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        latencies.append(time.perf_counter() - started)
        failed += not head.startswith(b"HTTP/1.1 200")
    writer.close()
    return failed


async def _burst(plan: list[tuple[int, list[bytes]]], latencies: list[float]) -> int:
    results = await asyncio.gather(*(_sender(port, reqs, latencies) for port, reqs in plan))
    return sum(results)


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@contextmanager
def serving(url: str, processes: int, source: Path | None) -> Iterator[list[tuple[int, int]]]:
    """``processes`` × ``notifier serve`` (role all); (port, pid) of each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": url,
        "NOTIFIER_CONFIG_FILE": "/nonexistent.toml",
        "NOTIFIER_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "NOTIFIER_TWILIO_AUTH_TOKEN": TOKEN,
        "NOTIFIER_TWILIO_FROM_NUMBER": "+15005550006",
        "NOTIFIER_TWILIO_API_BASE_URL": "http://127.0.0.1:9",
        "NOTIFIER_PUBLIC_BASE_URL": PUBLIC,
        "NOTIFIER_SECRET_KEY": "kF3v9QmZt0r1xYpL2wHs8uNcJd6Ea5Bg-Tz4",
        "NOTIFIER_NOW": NOW.isoformat(),
        "NOTIFIER_LOG_LEVEL": "WARNING",
        # Database pool 8 + 8 per process (the default, 20 + 20, lets the synchronous path take
        # 120 PostgreSQL connections at 256 senders: more than the shared server allows).
        "NOTIFIER_DISPATCH_CONCURRENCY": "4",
        "NO_PROXY": "127.0.0.1,localhost",
        # Twilio may hold hundreds of connections open at once (the default, 200, sheds the rest).
        "NOTIFIER_HTTP_MAX_CONNECTIONS": "1024",
    }
    env |= EXTRA_ENV
    if source is not None:
        env["PYTHONPATH"] = str(source)
    started: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(processes):
            port = free_port()
            command = [sys.executable, "-m", "notifier.cli", "serve"]
            process = subprocess.Popen(  # away from any checkout: PYTHONPATH picks the code
                command, env=env | {"NOTIFIER_HTTP_PORT": str(port)}, cwd=tempfile.gettempdir()
            )
            started.append((port, process))
        for port, process in started:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError("notifier serve exited at start")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("notifier serve did not answer in 60 s")
                time.sleep(0.2)
        yield [(port, process.pid) for port, process in started]
    finally:
        for _, process in started:
            process.send_signal(signal.SIGTERM)
        for _, process in started:
            process.wait(timeout=60)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def applied(engine: Engine, sids: Sequence[str]) -> int:
    with engine.connect() as connection:
        query = select(func.count()).where(
            Delivery.provider_id.in_(sids), Delivery.state == "delivered"
        )
        return int(connection.scalar(query) or 0)


def measure(
    url: str, processes: int, source: Path | None, sids: list[str], levels: list[int], per: int
) -> list[dict[str, float]]:
    rows = []
    engine = create_engine(url)  # not an App: a baseline's database is stamped at its own head
    try:
        with serving(url, processes, source) as servers:
            for n, senders in enumerate(levels):
                mine = sids[n * per : (n + 1) * per]
                plan: list[tuple[int, list[bytes]]] = []
                for i in range(senders):
                    port = servers[i % len(servers)][0]
                    plan.append((port, [request(sid, port) for sid in mine[i::senders]]))
                latencies: list[float] = []
                pids = [pid for _, pid in servers]
                ours, gen = cpu_seconds(pids), resource.getrusage(resource.RUSAGE_SELF)
                started = time.perf_counter()
                failed = asyncio.run(_burst(plan, latencies))
                took = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_SELF)
                ours = cpu_seconds(pids) - ours
                generator = (after.ru_utime + after.ru_stime) - (gen.ru_utime + gen.ru_stime)
                deadline = time.monotonic() + 120
                wanted = len(mine) - failed  # a callback not answered 200 may not be applied
                while (done := applied(engine, mine)) < wanted and time.monotonic() < deadline:
                    time.sleep(0.05)
                settled = time.perf_counter() - started
                rows.append(
                    {
                        "senders": senders,
                        "callbacks": len(mine),
                        "failed": failed,
                        "per_s": len(mine) / took,
                        "p50_ms": pct(latencies, 50) * 1000,
                        "p99_ms": pct(latencies, 99) * 1000,
                        "applied": done,
                        "applied_per_s": done / settled,
                        "ours_cpu_ms_per_callback": ours / len(mine) * 1000,
                        "generator_cpu_ms_per_callback": generator / len(mine) * 1000,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        engine.dispose()
    return rows


@contextmanager
def database(kind: str, pg_url: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        path = tmp / f"receipts-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield sa_url + ("&" if "?" in sa_url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def stamp(url: str, source: Path) -> None:
    """Mark the database as at ``source``'s newest migration, so older code runs on today's
    schema instead of refusing it (the tables the status path uses are unchanged since)."""
    versions = sorted((source / "notifier/storage/migrations/versions").glob("[0-9]*.py"))
    head = re.search(r'^revision: str = "([^"]+)"', versions[-1].read_text(), re.M)
    assert head is not None, versions[-1]
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head[1]})
    finally:
        engine.dispose()


def unpack(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "notifier"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--callbacks", type=int, default=1500, help="per concurrency level")
    parser.add_argument("--senders", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--baseline", nargs="*", default=["9e840e8", "9c01250"], help="git revisions (none: none)"
    )
    parser.add_argument("--only", nargs="+", default=["sqlite-1", "pg-3"])
    parser.add_argument("--repeat", type=int, default=3, help="rounds, codes taking turns")
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    per_round = args.callbacks * len(args.senders)
    with tempfile.TemporaryDirectory(prefix="notifier-receipts-") as scratch, ExitStack() as stack:
        tmp = Path(scratch)
        codes: list[tuple[str, Path | None]] = [("this tree", None)]
        for revision in args.baseline:
            name = BASELINES.get(revision, "at")
            codes.append((f"{name} {revision}", unpack(revision, tmp / revision)))
        prepared: dict[tuple[str, str], tuple[str, list[str]]] = {}
        for target in args.only:
            kind = "sqlite" if target.startswith("sqlite") else "pg"
            for code, source in codes:
                url = stack.enter_context(database(kind, args.url, tmp))
                prepared[target, code] = url, prepare(url, per_round * args.repeat)
                if source is not None:
                    stamp(url, source)
        for round_ in range(args.repeat):  # the codes take turns: the machine's drift is shared
            for target in args.only:
                for code, source in codes:
                    url, sids = prepared[target, code]
                    mine = sids[round_ * per_round : (round_ + 1) * per_round]
                    print(f"# round {round_ + 1}: {target} {code}", flush=True)
                    processes = int(target.split("-")[1])
                    rows = measure(url, processes, source, mine, args.senders, args.callbacks)
                    results += [{"target": target, "code": code} | row for row in rows]
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "receipts.json").write_text(json.dumps(results, indent=2))


def print_table(results: list[dict[str, Any]]) -> None:
    """Per target, code and level: the median of the rounds (callbacks/s also min-max)."""
    cells: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in results:
        cells.setdefault((r["target"], r["code"], r["senders"]), []).append(r)
    print(
        f"{'target':<8} {'code':<16} {'senders':>7} {'callbacks/s':>11} {'(min-max)':>11} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'applied/s':>9} {'ours ms/cb':>10} {'gen ms/cb':>9} "
        f"{'failed':>6}"
    )
    for (target, code, senders), runs in cells.items():

        def mid(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r[key] for r in runs))

        rates = [r["per_s"] for r in runs]
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        print(
            f"{target:<8} {code:<16} {senders:>7} {mid('per_s'):>11.0f} {spread:>11} "
            f"{mid('p50_ms'):>7.1f} {mid('p99_ms'):>7.1f} {mid('applied_per_s'):>9.0f} "
            f"{mid('ours_cpu_ms_per_callback'):>10.2f} "
            f"{mid('generator_cpu_ms_per_callback'):>9.2f} {sum(r['failed'] for r in runs):>6}"
        )


if __name__ == "__main__":
    main()
