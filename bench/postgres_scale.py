"""PostgreSQL scale benchmark: fan-out of 100k and 1M recipients, and claim throughput.

    python -m bench.postgres_scale [--sizes 100000 1000000] [--url postgresql://...]

Each size runs in a fresh child process (so its peak RSS is its own) on a fresh schema:
patients are generated inside PostgreSQL (not measured), then a bare baseline is timed (one
``INSERT … SELECT … ON CONFLICT DO NOTHING`` of the same rows into a table with only a unique
key and a claim index), then the service's own fan-out (`Fanout.fire_due`: the consent,
opt-out, weekly-cap and audience decisions, the deliveries, and the estimate; their "queued"
events are derived, not written, and the first and last delivery's history is checked), then
claims at batch sizes 1 and 100 for a few seconds each. Prints a table (fan-out beside the
baseline, their ratio, peak RSS) and writes bench/results/postgres_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import event

from bench.common import BENCH_GATES
from notifier.domain.actors import Actor
from notifier.usecases.notice_requests import NoticeRequest

OPERATOR = Actor.operator()  # benchmarks run the installation: every location

DEFAULT_URL = os.environ.get(
    "NOTIFIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).parent / "results"
NOW = datetime(2025, 2, 18, 18, 0, tzinfo=ZoneInfo("America/New_York"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds each PostgreSQL backend has used (the server must run on this machine):
    on 2 shared cores CPU time varies far less than wall time with what else runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return cpu


BARE_TABLE = """
CREATE TABLE bare_deliveries (
    id serial PRIMARY KEY, broadcast_id integer NOT NULL, channel varchar(20) NOT NULL,
    address varchar(254) NOT NULL, patient_id integer NOT NULL, state varchar(20) NOT NULL,
    attempts integer NOT NULL, next_attempt_at timestamptz NOT NULL, needs_reconcile boolean,
    error_message text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    message_kind varchar(20), UNIQUE (broadcast_id, channel, address))
"""
BARE_INSERT = """
INSERT INTO bare_deliveries (broadcast_id, channel, address, patient_id, state, attempts,
    next_attempt_at, needs_reconcile, error_message, created_at, updated_at, message_kind)
SELECT 1, 'sms', phone, id, 'pending', 0, now(), false, NULL, now(), now(), NULL
FROM patients WHERE phone IS NOT NULL
ON CONFLICT DO NOTHING
"""


def bare_baseline(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[float, float]:
    """Seconds, and the backend's CPU seconds, for the bare ``INSERT … SELECT`` of one row per
    patient (table dropped after)."""
    conn.execute(BARE_TABLE)
    conn.execute("CREATE INDEX ix_bare_claim ON bare_deliveries (state, next_attempt_at, id)")
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    pid = int(str(row[0]))
    cpu = backend_cpu_seconds([pid])[pid]
    started = time.perf_counter()
    conn.execute(BARE_INSERT)
    seconds = time.perf_counter() - started
    cpu = backend_cpu_seconds([pid])[pid] - cpu
    conn.execute("DROP TABLE bare_deliveries")
    return seconds, cpu


def run_one(url: str, size: int, claim_seconds: float) -> dict[str, float]:
    """Runs in the child process."""
    from notifier.bootstrap import build_app
    from notifier.clock import FrozenClock
    from notifier.settings import load_settings
    from notifier.storage import deliveries as delivery_rows

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    sa_url += ("&" if "?" in sa_url else "?") + f"options=-csearch_path%3D{schema}"
    result: dict[str, float] = {"recipients": size}
    try:
        clock = FrozenClock(NOW)
        # SMS must be enabled for fan-out to queue texts; nothing is sent in this benchmark.
        settings = load_settings(
            database_url=sa_url,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token="unused",
            twilio_from_number="+15005550006",
            twilio_api_base_url="http://127.0.0.1:9",
            **BENCH_GATES,
        )
        app = build_app(settings, clock=clock)
        app.locations.save(
            OPERATOR,
            "cova",
            "COVA Spine and Pain Center",
            "America/New_York",
            "Mon-Fri 08:00-17:00",
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(
                """
                INSERT INTO patients (external_id, first_name, last_name, phone, email,
                    language, location_id, sms_consent, email_consent, created_at, updated_at)
                SELECT 'p' || g, 'Pat', 'Ient', '+1540' || lpad(g::text, 7, '0'), NULL, 'en',
                    (SELECT id FROM locations WHERE slug = 'cova'), true, false, now(), now()
                FROM generate_series(1, %s) AS g
                """,
                (size,),
            )
            conn.execute("ANALYZE patients")
            conn.execute("SELECT count(*) FROM patients")  # both timings start warm
            result["bare_insert_seconds"], result["bare_cpu_seconds"] = bare_baseline(conn)
        rss_before = peak_rss_mib()
        backends: set[int] = set()

        @event.listens_for(app.db.engine, "checkout")
        def _backend(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            if "pid" not in record.info:
                record.info["pid"] = dbapi_connection.info.backend_pid
            backends.add(record.info["pid"])

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
        server_cpu, client_cpu = backend_cpu_seconds(backends), own_cpu_seconds()
        started = time.perf_counter()
        app.fanout.fire_due()
        result["fanout_seconds"] = time.perf_counter() - started
        result["fanout_client_cpu_seconds"] = own_cpu_seconds() - client_cpu
        after = backend_cpu_seconds(backends)  # a backend opened during the fan-out starts at 0
        result["fanout_server_cpu_seconds"] = sum(after.values()) - sum(server_cpu.values())
        result["ratio"] = result["fanout_seconds"] / result["bare_insert_seconds"]
        result["cpu_ratio"] = (
            result["fanout_server_cpu_seconds"] + result["fanout_client_cpu_seconds"]
        ) / result["bare_cpu_seconds"]
        result["rss_before_fanout_mib"] = rss_before
        result["peak_rss_mib"] = peak_rss_mib()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            row = conn.execute("SELECT count(*) FROM deliveries").fetchone()
            result["deliveries"] = float(row[0] if row else 0)
            row = conn.execute("SELECT count(*) FROM delivery_events").fetchone()
            result["events_written"] = float(row[0] if row else 0)
            ends = conn.execute("SELECT min(id), max(id) FROM deliveries").fetchone()
            conn.execute("ANALYZE deliveries")
        # The history derives each delivery's "queued" event from its row: check both ends.
        assert ends is not None
        for delivery_id in ends:
            _, events = app.deliveries.history(OPERATOR, delivery_id)
            assert [e.kind for e in events] == ["queued"], (delivery_id, events)
        for batch in (1, 100):
            claimed = 0
            started = time.perf_counter()
            while time.perf_counter() - started < claim_seconds:
                with app.db.session() as s:
                    now = clock.now()
                    claimed += len(
                        delivery_rows.claim(
                            s, "bench", ["sms"], now, now + timedelta(minutes=5), batch
                        )
                    )
            result[f"claim_batch_{batch}_rows_per_s"] = claimed / (time.perf_counter() - started)
        with app.db.engine.connect() as connection:
            plan = connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM deliveries WHERE state = 'pending' AND "
                "next_attempt_at <= now() AND channel IN ('sms') "
                "ORDER BY next_attempt_at, id LIMIT 100 FOR UPDATE SKIP LOCKED"
            ).all()
        result["claim_uses_index"] = float(any("ix_deliveries_claim" in r[0] for r in plan))
        app.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--claim-seconds", type=float, default=5.0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.url, args.child, args.claim_seconds)))
        return
    rows = []
    for size in args.sizes:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.postgres_scale",
                "--url",
                args.url,
                "--claim-seconds",
                str(args.claim_seconds),
                "--child",
                str(size),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{'recipients':>10} {'bare s':>7} {'fan-out s':>9} {'ratio':>5} "
        f"{'bare CPU s':>10} {'fan-out CPU s (db+ours)':>23} {'CPU ratio':>9} {'peak RSS MiB':>12} "
        f"{'claim b=1 /s':>12} {'claim b=100 /s':>14} {'index':>5}"
    )
    for r in rows:
        cpu = f"{r['fanout_server_cpu_seconds']:.2f}+{r['fanout_client_cpu_seconds']:.2f}"
        print(
            f"{int(r['recipients']):>10} {r['bare_insert_seconds']:>7.2f} "
            f"{r['fanout_seconds']:>9.2f} {r['ratio']:>5.2f} {r['bare_cpu_seconds']:>10.2f} "
            f"{cpu:>23} {r['cpu_ratio']:>9.2f} {r['peak_rss_mib']:>12.1f} "
            f"{r['claim_batch_1_rows_per_s']:>12.0f} {r['claim_batch_100_rows_per_s']:>14.0f} "
            f"{'yes' if r['claim_uses_index'] else 'NO':>5}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "postgres_scale.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
