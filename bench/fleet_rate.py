"""One send rate for a fleet: N `notifier serve --role worker` processes on one PostgreSQL.

    python -m bench.fleet_rate [--quick] [--workers 1 2 4] [--rates 10 100] [--seconds 60]
                               [--no-server-limit]

For each rate R, worker count N and mode (``shared``: the fleet's one timeline per sender, the
default; ``per-process``: NOTIFIER_RATE_SHARED=false, each process applies R alone, as before
issue 25): a fresh schema, the Twilio-compatible server in its own process (50–200 ms), N
workers and a scheduler, one broadcast of R × seconds one-segment texts. Measured at the server:
the achieved rate after the first second, the busiest 1-s window (target ≤ R + max(1, R)), the
429s; and the workers' CPU time per 1,000 texts (from /proc, the server's own CPU apart). The
server's own limit is set at R (``--rate-limit R``, a burst of max(1, R)): a create beyond it is
answered 429/20429 and not processed, so overshoot shows as 429s (retried later by the workers,
a transient failure), and the busiest window at the server stays within R + max(1, R) whatever
the fleet does; ``--no-server-limit`` lets every create through, to see the overshoot itself.
``--quick``: 10 s of sending per run (the issue's 1, 2, 4 and 8 workers × R = 10 and 100, both
modes: about six minutes on 2 shared cores, more while per-process runs retry their 429s);
without it 60 s per run. Writes bench/results/fleet_rate.json.
The limiter's own cost per acquire is ``bench.limiter_overhead``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from bench.common import BENCH_GATES, SHORT, max_in_window, require_sent
from bench.postgres_scale import DEFAULT_URL, NOW, RESULTS
from bench.workers_pg import clinic, fresh_schema, service_env, stop
from notifier.bootstrap import build_app
from notifier.clock import FrozenClock
from notifier.domain.actors import Actor
from notifier.settings import load_settings
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_control import FakeTwilioProcess

OPERATOR = Actor.operator()  # benchmarks run the installation: every location

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(
    url: str, rate: float, workers: int, shared: bool, seconds: float, server_limit: bool = True
) -> dict[str, Any]:
    count = int(rate * seconds)
    processes: list[subprocess.Popen[bytes]] = []
    limit = ("--rate-limit", f"{rate:g}") if server_limit else ()
    with (
        fresh_schema(url) as sa_url,
        FakeTwilioProcess("--latency-ms", "50", "200", "--seed", "3", *limit) as twilio,
    ):
        try:
            clinic(sa_url, count)
            env = service_env(
                sa_url,
                twilio.info,
                SMS_RATE_PER_SECOND=str(rate),
                RATE_SHARED=str(shared).lower(),
                SMS_WEEKLY_CAP="0",
            )
            command = [sys.executable, "-m", "notifier.cli", "serve", "--no-http"]
            processes = [
                subprocess.Popen([*command, "--role", "worker"], env=env) for _ in range(workers)
            ]
            time.sleep(3)  # every worker up before the broadcast is queued
            before = [cpu_seconds(p.pid) for p in processes]
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
                    message=SHORT,
                    channels=("sms",),
                ),
            )
            app.close()
            processes.append(subprocess.Popen([*command, "--role", "scheduler"], env=env))
            control = twilio.control
            # 429s are retried with backoff (5 s, doubling) and may pause the circuit breaker:
            # an overshooting fleet takes longer to deliver everything.
            deadline = time.monotonic() + seconds * 3 + 60 + (240 if server_limit else 0)
            while control.request_count()["creates"] < count and time.monotonic() < deadline:
                time.sleep(0.25)
            cpu = [cpu_seconds(p.pid) - b for p, b in zip(processes, before, strict=False)]
            creates = control.received_creates()
            requests = control.requests()
            attempts = [r["time"] for r in requests if r["kind"] == "create"]
            refused = [r["time"] for r in requests if r["outcome"] == "rate_limited"]
        finally:
            stop(processes)
    require_sent(f"{workers} workers at {rate:g}/s", len(creates), count)
    times = sorted(r["time"] for r in creates)
    steady = [t for t in times if t >= times[0] + 1.0]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0
    per_number = Counter(r["form"]["To"][0] for r in creates)
    return {
        "rate": rate,
        "workers": workers,
        "mode": "shared" if shared else "per-process",
        "messages": len(times),
        "achieved_per_s": round(achieved, 2),
        "achieved_ratio": round(achieved / rate, 3),
        "max_in_1s_window": max_in_window(times),
        "allowed_in_1s_window": rate + max(1.0, rate),
        "server_limit": server_limit,
        "answered_429": len(refused),
        # after the opening second (429s of the first burst apart)
        "answered_429_later": sum(1 for t in refused if t >= attempts[0] + 1.0),
        "double_sends": sum(n - 1 for n in per_number.values()),
        "worker_cpu_s_per_1000": round(sum(cpu) / len(times) * 1000, 3),
    }


def refusals(row: dict[str, Any]) -> str:
    """'12 (9)': the 429s of a run, and how many came after its opening second."""
    if not row["server_limit"]:
        return "-"
    return f"{row['answered_429']} ({row['answered_429_later']})"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'R/s':>5} {'workers':>7} {'mode':>11} {'msgs':>6} {'achieved':>9} {'of R':>5} "
        f"{'busiest 1s':>10} {'allowed':>7} {'429s (after 1s)':>15} {'doubles':>7} "
        f"{'CPU s/1k':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['rate']:>5g} {r['workers']:>7} {r['mode']:>11} {r['messages']:>6} "
            f"{r['achieved_per_s']:>9} {r['achieved_ratio']:>5.0%} {r['max_in_1s_window']:>10} "
            f"{r['allowed_in_1s_window']:>7g} "
            f"{refusals(r):>15} {r['double_sends']:>7} "
            f"{r['worker_cpu_s_per_1000']:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--quick", action="store_true", help="10 s per run instead of 60 s")
    parser.add_argument("--workers", type=int, nargs="+")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--modes", nargs="+", choices=["shared", "per-process"])
    parser.add_argument(
        "--server-limit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the server answers 429/20429 beyond R segments/s (default: on)",
    )
    args = parser.parse_args(argv)
    workers = args.workers or [1, 2, 4, 8]
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    modes = args.modes or ["shared", "per-process"]
    rows = []
    for rate in args.rates:
        for n in workers:
            for mode in modes:
                if mode == "per-process" and n == 1:
                    continue  # the same as shared with one worker
                rows.append(run(args.url, rate, n, mode == "shared", seconds, args.server_limit))
                print(table(rows[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet_rate.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
