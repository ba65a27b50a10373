"""What the fleet limiter costs each send: N worker processes × T sending threads share one
sender's timeline on PostgreSQL (``SharedTimeline`` over ``storage.send_rates.grant``, as the
dispatcher builds it, fetching ahead) at R segments/s for S seconds. Every process connects
first (a dispatcher's pool is warm) and all start together.

    python -m bench.limiter_overhead [--workers 1 2 4 8] [--rate 100] [--threads 32] [--seconds 10]

Per acquire: ``p50``/``p99``, the time ``reserve`` takes, which includes waiting for a grant
of capacity that was not there yet (with more threads than slots, a slot seconds ahead: the rate
itself); ``late``, the time a send was made late by the limiter (``reserve`` returned a slot
already due: without the database round trip it would have gone earlier), the overhead the
target (p99 ≤ 5 ms with 8 workers) speaks of; ``1s+``: both p99s without the first second (the
idle fleet's first grants, every thread waiting for them, and its saved-up second of slots due
at once); and the grant statements (per second, p99 round trip). With ``--threads 1`` to 4 each
worker keeps up with its slots, the case the fetch ahead is for. Only the monotonic clock and
the database's are read.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.postgres_scale import DEFAULT_URL, RESULTS
from bench.workers_pg import fresh_schema
from notifier.delivery.ratelimit import SharedTimeline
from notifier.storage import send_rates
from notifier.storage.models import SendRate

WARMUP = 1.0  # seconds: "1s+" leaves out the idle fleet's first grants (and its saved-up burst)


def _worker(sa_url: str, rate: float, threads: int, seconds: float, sync: Any, out: Any) -> None:
    ready, go, begin = sync
    engine = create_engine(sa_url, pool_size=2)
    with engine.connect() as c:  # a worker's pool is warm (it claimed its messages)
        c.execute(text("SELECT 1"))
    ready.put(True)
    grants: list[float] = []

    def grant(sender: str, span: float, burst: float) -> tuple[float, float]:
        before = time.perf_counter()
        with Session(engine) as s, s.begin():
            got = send_rates.grant(s, sender, span, burst)
        grants.append(time.perf_counter() - before)
        return got

    timeline = SharedTimeline("sms", rate, grant)
    costs: list[float] = []
    delays: list[float] = []
    steady: list[float] = []
    steady_costs: list[float] = []
    lock = threading.Lock()
    go.wait()
    start = begin.value
    stop_at = start + seconds

    def send() -> None:
        mine, late, later, later_costs = [], [], [], []
        while (before := time.monotonic()) < stop_at:
            wait = timeline.reserve(1.0)
            spent = time.monotonic() - before
            mine.append(spent)
            # Only a slot already due when reserve returned was made late by the limiter; a
            # later slot would have been waited for anyway.
            late.append(0.0 if wait > 0 else spent)
            if before >= start + WARMUP:
                later.append(late[-1])
                later_costs.append(spent)
            time.sleep(wait)
        with lock:
            costs.extend(mine)
            delays.extend(late)
            steady.extend(later)
            steady_costs.extend(later_costs)

    while time.monotonic() < start:
        time.sleep(0.001)
    pool = [threading.Thread(target=send) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    timeline.close()
    engine.dispose()
    out.put(
        {
            "costs": costs,
            "delays": delays,
            "steady": steady,
            "steady_costs": steady_costs,
            "grants": grants,
        }
    )


def run(url: str, workers: int, rate: float, threads: int, seconds: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with fresh_schema(url) as sa_url:
        engine = create_engine(sa_url)
        SendRate.__table__.create(engine)
        engine.dispose()
        out, ready, go, begin = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
        processes = [
            ctx.Process(
                target=_worker, args=(sa_url, rate, threads, seconds, (ready, go, begin), out)
            )
            for _ in range(workers)
        ]
        for p in processes:
            p.start()
        for _ in processes:  # every process up and connected before the first acquire
            ready.get(timeout=300)
        begin.value = time.monotonic() + 0.2
        go.set()
        results = [out.get(timeout=seconds + 120) for _ in processes]
        for p in processes:
            p.join()
    costs = sorted(c for r in results for c in r["costs"])
    delays = sorted(c for r in results for c in r["delays"])
    steady = sorted(c for r in results for c in r["steady"])
    steady_costs = sorted(c for r in results for c in r["steady_costs"])
    grants = sorted(g for r in results for g in r["grants"])
    return {
        "workers": workers,
        "threads": threads,
        "rate": rate,
        "acquires": len(costs),
        "p50_ms": round(_quantile(costs, 0.50) * 1000, 3),
        "p99_ms": round(_quantile(costs, 0.99) * 1000, 3),
        "late_p99_ms": round(_quantile(delays, 0.99) * 1000, 3),
        "late_max_ms": round(delays[-1] * 1000, 1),
        "steady_p99_ms": round(_quantile(steady_costs, 0.99) * 1000, 3),
        "steady_late_p99_ms": round(_quantile(steady, 0.99) * 1000, 3),
        "grants_per_s": round(len(grants) / seconds, 1),
        "grant_p99_ms": round(_quantile(grants, 0.99) * 1000, 1),
    }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'workers':>7} {'threads':>7} {'R/s':>5} {'acquires':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'late p99':>8} {'late max':>8} {'1s+ p99':>7} {'1s+ late':>8} {'grants/s':>8} "
        f"{'grant p99':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r['workers']:>7} {r['threads']:>7} {r['rate']:>5g} {r['acquires']:>8} "
            f"{r['p50_ms']:>7} {r['p99_ms']:>7} {r['late_p99_ms']:>8} {r['late_max_ms']:>8} "
            f"{r['steady_p99_ms']:>7} {r['steady_late_p99_ms']:>8} {r['grants_per_s']:>8} "
            f"{r['grant_p99_ms']:>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    rows = []
    for n in args.workers:
        rows.append(run(args.url, n, args.rate, args.threads, args.seconds))
        print(table(rows[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "limiter_overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
