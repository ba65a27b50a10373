"""Scheduling lag: from a broadcast's due time to its first request at the provider, through the
real service (``notifier.runtime.Runtime``: the APScheduler jobs) with the default 1 s poll."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import add_patients, bench_app, queue_notice, require_sent
from notifier.domain.actors import Actor
from notifier.runtime import Runtime
from notifier_sandbox.twilio_control import FakeTwilioProcess

OPERATOR = Actor.operator()  # benchmarks run the installation: every location


def scheduling_lag(twilio: FakeTwilioProcess, broadcasts: int, spacing: float) -> dict[str, Any]:
    with bench_app(twilio, poll_interval_seconds=1.0) as app:
        shift = app.clock.now() - datetime.now(UTC)  # the pinned clock against the server's
        first = app.clock.now() + timedelta(seconds=3)
        due = {f"Bench lag {k}.": first + timedelta(seconds=k * spacing) for k in range(broadcasts)}
        # One location each: a second notice for the same closure would supersede the first.
        for k, (body, send_at) in enumerate(due.items()):
            slug = f"lag{k}"
            app.locations.save(
                OPERATOR, slug, f"Clinic {k}", "America/New_York", "Mon-Fri 08:00-17:00"
            )
            add_patients(app, 3, start=3 * k, location_id=k + 2)
            queue_notice(app, message=body, send_at=send_at, location=slug)
        with Runtime(app) as runtime:
            wait = max(due.values()) + timedelta(seconds=5) - app.clock.now()
            runtime.run(timeout=wait.total_seconds())
    firsts: dict[str, float] = {}
    for record in twilio.control.call("GET", "requests?kind=create"):
        body = record["form"].get("Body", [""])[0]
        for key in due:
            if key in body:
                firsts[key] = min(firsts.get(key, record["time"]), record["time"])
    lags = sorted(firsts[k] - (due[k] - shift).timestamp() for k in firsts)
    require_sent("scheduling lag", len(lags), broadcasts)
    p95 = lags[max(0, round(0.95 * len(lags)) - 1)]
    return {
        "broadcasts": broadcasts,
        "p50_seconds": round(statistics.median(lags), 3),
        "p95_seconds": round(p95, 3),
        "max_seconds": round(lags[-1], 3),
    }
