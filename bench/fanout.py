"""Fan-out of a large location into deliveries on SQLite, and the claim query's plan."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from bench.common import add_patients, bench_app, queue_notice
from notifier.storage import deliveries as delivery_rows


def fan_out(count: int) -> dict[str, Any]:
    with bench_app(None) as app:
        add_patients(app, count)
        queue_notice(app)
        started = time.perf_counter()
        fired = app.fanout.fire_due()
        seconds = time.perf_counter() - started
        with app.db.session() as s:
            rows = s.scalar(text("SELECT count(*) FROM deliveries"))
        assert fired == 1 and rows == count, (fired, rows)
        plan, claim_ms = _claim_plan_and_time(app)
    return {
        "recipients": count,
        "fan_out_seconds": round(seconds, 3),
        "claim_plan": plan,
        "claim_uses_index": any("USING INDEX" in line or "COVERING INDEX" in line for line in plan),
        "claim_100_ms": round(claim_ms, 2),
    }


def _claim_plan_and_time(app: Any) -> tuple[list[str], float]:
    """EXPLAIN QUERY PLAN of the claim's due-rows query, and one real claim of 100 rows.

    The channel SMS is disabled here (no Twilio), so its deliveries were fanned out as skipped;
    mark them pending first, as they would be with SMS enabled."""
    with app.db.session() as s:
        s.execute(text("UPDATE deliveries SET state = 'pending', error_message = NULL"))
    now = app.clock.now() + timedelta(seconds=1)
    query = (
        "SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= :now "
        "AND channel IN ('sms') ORDER BY next_attempt_at, id LIMIT 100"
    )
    with app.db.session() as s:
        s.execute(text("ANALYZE"))
        rows = s.execute(
            text(f"EXPLAIN QUERY PLAN {query}"), {"now": now.strftime("%Y-%m-%d %H:%M:%S.%f")}
        )
        plan = [str(r[-1]) for r in rows]
    started = time.perf_counter()
    with app.db.session() as s:
        ids = delivery_rows.claim(s, "bench", ["sms"], now, now + timedelta(seconds=60), 100)
    elapsed = (time.perf_counter() - started) * 1000
    assert len(ids) == 100
    return plan, elapsed
