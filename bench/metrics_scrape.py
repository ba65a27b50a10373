"""What one `/metrics` scrape costs the database: the gauges' queries over 100,000 deliveries
(SQLite), half of them pending. ``python -m bench.metrics_scrape [count]``."""

from __future__ import annotations

import sys
import time

from sqlalchemy import text

from bench.common import add_patients, bench_app, queue_notice


def main(count: int = 100_000) -> None:
    with bench_app(None) as app:
        add_patients(app, count)
        queue_notice(app)
        app.fanout.fire_due()
        with app.db.session() as s:
            s.execute(text("UPDATE deliveries SET state = 'pending' WHERE id % 2 = 0"))
            s.execute(text("ANALYZE"))
        app.health.gauges()  # warm the page cache
        timings = []
        cpu_started = time.process_time()
        for _ in range(10):
            started = time.perf_counter()
            gauges = app.health.gauges()
            timings.append(time.perf_counter() - started)
        cpu = (time.process_time() - cpu_started) / 10
    timings.sort()
    print(
        f"deliveries={sum(gauges.deliveries.values())} due={gauges.due} "
        f"scrape gauges: median {timings[5] * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms, "
        f"CPU {cpu * 1000:.1f} ms per scrape"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
