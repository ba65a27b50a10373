"""Notifier's benchmarks: ``python -m bench [--quick]`` (or ``make bench``).

Runs every measurement against the Twilio-compatible server in its own process (answering in
50–200 ms unless ``--latency-ms`` says otherwise), prints a table and writes
``bench/results/latest.json``. Full run: 60 s of sending per rate (about 7 minutes in all);
``--quick``: 10 s per rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
RATES = (1, 10, 30, 100, 225)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s per rate instead of 60 s")
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(50.0, 200.0))
    parser.add_argument("--rates", type=float, nargs="+", default=RATES)
    parser.add_argument("--seconds", type=float, help="seconds of sending per rate (overrides)")
    parser.add_argument("--unlimited-messages", type=int, help="messages per unlimited run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["rates", "unlimited", "baselines", "fanout", "lag"],
        default=["rates", "unlimited", "baselines", "fanout", "lag"],
    )
    args = parser.parse_args(argv)
    # No developer settings leak into the measurements.
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            del os.environ[name]
    os.environ["NOTIFIER_CONFIG_FILE"] = os.devnull
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    os.environ.pop("TWILIO_REGION", None)
    os.environ.pop("TWILIO_EDGE", None)

    from bench import dispatch, fanout, lag
    from bench.common import twilio_server

    seconds = args.seconds or (10.0 if args.quick else 60.0)
    messages = args.unlimited_messages or (5_000 if args.quick else 10_000)
    latency = tuple(args.latency_ms)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server_latency_ms": latency,
        "seconds_per_rate": seconds,
        "command": "python -m bench" + (" --quick" if args.quick else ""),
    }
    started = time.monotonic()
    with twilio_server(latency) as twilio:  # type: ignore[arg-type]
        if "rates" in args.only:
            results["rates"] = []
            for rate in args.rates:
                row = dispatch.dispatch_at_rate(twilio, rate, seconds)
                results["rates"].append(row)
                _say(
                    f"rate {rate:g}/s: achieved {row['achieved_per_s']}/s "
                    f"({row['achieved_ratio']:.0%}), busiest second {row['max_in_1s_window']} "
                    f"(allowed {row['allowed_in_1s_window']:g})"
                )
        if "baselines" in args.only:
            naive = dispatch.naive_loop(twilio, min(seconds, 20.0))
            batch = dispatch.send_then_sleep(twilio, 30, seconds)
            ours = next((r for r in results.get("rates", []) if r["rate"] == 30), None)
            results["baselines"] = {"naive_loop": naive, "send_30_then_sleep_1s": batch}
            if ours:
                results["baselines"]["ours_at_30_vs_send_then_sleep"] = round(
                    ours["achieved_per_s"] / batch["achieved_per_s"], 2
                )
            _say(f"naive loop: {naive['per_s']}/s; send 30 then sleep: {batch['achieved_per_s']}/s")
        if "unlimited" in args.only:
            results["unlimited"] = []
            for concurrency in (64, 128, 256):
                row = dispatch.unlimited(twilio, messages, concurrency)
                results["unlimited"].append(row)
                _say(
                    f"unlimited, {concurrency} threads: {row['per_s']}/s, "
                    f"{row['cpu_s_per_1000']} CPU-s per 1,000"
                )
        if "lag" in args.only:
            results["lag"] = lag.scheduling_lag(twilio, 20, 0.37)
            _say(f"scheduling lag: p95 {results['lag']['p95_seconds']} s")
    with twilio_server(None) as fast:
        if "unlimited" in args.only:
            row = dispatch.unlimited(fast, messages, 64)
            results["unlimited_no_server_latency"] = row
            _say(f"unlimited, server without latency: {row['per_s']}/s")
    if "fanout" in args.only:
        results["fanout"] = fanout.fan_out(100_000)
        _say(f"fan-out 100k: {results['fanout']['fan_out_seconds']} s")
    results["total_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {args.out}")
    return 0


def table(r: dict[str, Any]) -> str:
    lines = [
        f"Notifier benchmarks — {r['when']}, {r['machine']['cpus']} CPUs, "
        f"server latency {r['server_latency_ms'][0]:g}–{r['server_latency_ms'][1]:g} ms",
        "",
        f"{'measurement':<44} {'result':>14} {'target':>22}",
    ]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"{name:<44} {value:>14} {target:>22}")

    for x in r.get("rates", []):
        row(
            f"dispatch at {x['rate']:g}/s ({x['messages']} msgs, {x['seconds']} s)",
            f"{x['achieved_per_s']}/s {x['achieved_ratio']:.0%}",
            "≥ 95%",
        )
        row(
            "  busiest 1-second window",
            str(x["max_in_1s_window"]),
            f"≤ {x['allowed_in_1s_window']:g}",
        )
    if b := r.get("baselines"):
        row("naive loop of messages.create", f"{b['naive_loop']['per_s']}/s", "~8/s")
        s = b["send_30_then_sleep_1s"]
        row("'send 30 then sleep 1 s'", f"{s['achieved_per_s']}/s {s['achieved_ratio']:.0%}")
        if "ours_at_30_vs_send_then_sleep" in b:
            row("  ours at 30/s ÷ send-then-sleep", f"{b['ours_at_30_vs_send_then_sleep']}×")
    for x in r.get("unlimited", []):
        row(f"no rate limit, {x['concurrency']} threads", f"{x['per_s']}/s", "≥ 1,000/s")
        row("  our CPU s per 1,000 texts", str(x["cpu_s_per_1000"]), "≤ 0.25")
    if x := r.get("unlimited_no_server_latency"):
        row("no rate limit, server without latency", f"{x['per_s']}/s", "≥ 1,000/s")
        row("  our CPU s per 1,000 texts", str(x["cpu_s_per_1000"]), "≤ 0.25")
    if f := r.get("fanout"):
        row(f"fan-out {f['recipients']:,} (SQLite)", f"{f['fan_out_seconds']} s", "≤ 1 s")
        row("claim query uses the index", str(f["claim_uses_index"]), "True")
        row("claim 100 of 100k pending", f"{f['claim_100_ms']} ms")
    if g := r.get("lag"):
        row("scheduling lag p50", f"{g['p50_seconds']} s")
        row("scheduling lag p95", f"{g['p95_seconds']} s", "≤ 1 s")
    return "\n".join(lines)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
