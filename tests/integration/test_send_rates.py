"""The fleet's send timeline on PostgreSQL: concurrent grants never overlap."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from notifier.storage import send_rates
from notifier.storage.engine import Database


@pytest.mark.postgres
def test_concurrent_grants_take_consecutive_spans_that_never_overlap(postgres_url: str) -> None:
    db = Database(postgres_url, pool_size=8)
    db.upgrade()

    def grant(_: int) -> tuple[float, float]:
        with db.session() as s:
            return send_rates.grant(s, "sms", 0.5)

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(grant, range(40)))
        with db.session() as s:
            other, _ = send_rates.grant(s, "sms:+15405550100", 0.5)  # another sender's own line
    finally:
        db.dispose()
    ends = sorted(end for end, _ in results)
    assert all(b - a >= 0.5 - 1e-6 for a, b in itertools.pairwise(ends))
    assert all(end - now <= 0.5 * 40 + 1 for end, now in results)  # slots start at the DB's now
    assert other < ends[-1]  # not queued behind the "sms" timeline
