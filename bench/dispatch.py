"""Sending: the dispatcher at configured rates, without a limit, and two baselines (a plain loop
of ``client.messages.create``; "send N, then sleep 1 s"), all against one Twilio-compatible
server in its own process. Rates and windows are measured from the server's request log."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from twilio.rest import Client

from bench.common import (
    add_patients,
    bench_app,
    create_times,
    drain_timed,
    max_in_window,
    queue_notice,
    require_sent,
)
from notifier.channels.sms import SmsChannel
from notifier_sandbox.twilio_control import FakeTwilioProcess


def _count_since(twilio: FakeTwilioProcess) -> int:
    return int(twilio.control.request_count()["count"])


def dispatch_at_rate(
    twilio: FakeTwilioProcess, rate: float, seconds: float, concurrency: int = 64
) -> dict[str, Any]:
    """One broadcast of rate × (seconds + 1) one-segment texts, sent at ``rate`` segments/s."""
    count = int(rate * (seconds + 1))
    since = _count_since(twilio)
    with bench_app(
        twilio,
        sms_rate_per_second=rate,
        dispatch_concurrency=concurrency,
        dispatch_batch_size=500,
    ) as app:
        add_patients(app, count)
        queue_notice(app)
        app.fanout.fire_due()
        dispatcher = app.dispatcher()
        started = time.monotonic()
        try:
            dispatcher.drain()
        finally:
            dispatcher.close()
        wall = time.monotonic() - started
    times = create_times(twilio, since)
    require_sent(f"dispatch at {rate:g}/s", len(times), count)
    return _rate_figures(times, rate, count, wall)


def _rate_figures(times: list[float], rate: float, count: int, wall: float) -> dict[str, Any]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    # Steady state: after the bucket's initial burst (one second's worth) is spent.
    steady = [t for t in times if t >= times[0] + 1.0]
    steady_rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0
    allowed = rate + max(1.0, rate)
    busiest = max_in_window(times)
    return {
        "rate": rate,
        "messages": len(times),
        "expected": count,
        "seconds": round(span, 2),
        "achieved_per_s": round(steady_rate, 2),
        "achieved_ratio": round(steady_rate / rate, 3),
        "max_in_1s_window": busiest,
        "allowed_in_1s_window": allowed,
        "window_ok": busiest <= allowed,
        "wall_seconds": round(wall, 2),
    }


def unlimited(twilio: FakeTwilioProcess, count: int, concurrency: int) -> dict[str, Any]:
    """As fast as one process can go: no rate limit, ``concurrency`` requests in flight."""
    since = _count_since(twilio)
    with bench_app(
        twilio,
        sms_rate_per_second=1_000_000,
        dispatch_concurrency=concurrency,
        dispatch_batch_size=1000,
    ) as app:
        add_patients(app, count)
        queue_notice(app)
        wall, cpu = drain_timed(app)
    times = create_times(twilio, since)
    require_sent(f"unlimited, {concurrency} threads", len(times), count)
    return {
        "concurrency": concurrency,
        "messages": len(times),
        "wall_seconds": round(wall, 2),
        "per_s": round(len(times) / wall, 1),
        # This process only (claim, prepare, render, send, record); the server runs apart.
        "cpu_s_per_1000": round(cpu / len(times) * 1000, 3),
    }


def _client(twilio: FakeTwilioProcess, pool: int = 10) -> tuple[Client, str]:
    info = twilio.info
    with bench_app(
        twilio, dispatch_concurrency=pool
    ) as app:  # the same client setup as the channel
        channel = SmsChannel(app.settings)
    return channel.client, info["from_number"]


def naive_loop(twilio: FakeTwilioProcess, seconds: float) -> dict[str, Any]:
    """The baseline: one ``client.messages.create`` after another."""
    client, sender = _client(twilio)
    since = _count_since(twilio)
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        client.messages.create(to=f"+1540300{sent % 10000:04d}", from_=sender, body="naive")
        sent += 1
    wall = time.monotonic() - started
    times = create_times(twilio, since)
    return {"messages": len(times), "seconds": round(wall, 2), "per_s": round(sent / wall, 2)}


def send_then_sleep(twilio: FakeTwilioProcess, rate: int, seconds: float) -> dict[str, Any]:
    """listmonk's limiter: send ``rate`` messages (concurrently), then sleep one second."""
    client, sender = _client(twilio, pool=rate)
    since = _count_since(twilio)
    sent, started = 0, time.monotonic()
    with ThreadPoolExecutor(max_workers=rate) as pool:
        while time.monotonic() - started < seconds:
            batch = [
                pool.submit(
                    client.messages.create,
                    to=f"+1540400{(sent + i) % 10000:04d}",
                    from_=sender,
                    body="batch",
                )
                for i in range(rate)
            ]
            for future in batch:
                future.result()
            sent += rate
            time.sleep(1.0)
    wall = time.monotonic() - started
    times = create_times(twilio, since)
    figures = _rate_figures(times, rate, sent, wall)
    figures["achieved_ratio"] = round(len(times) / wall / rate, 3)
    figures["achieved_per_s"] = round(len(times) / wall, 2)
    return figures
