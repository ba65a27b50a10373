from __future__ import annotations

from notifier.delivery.ratelimit import TokenBucket


class ManualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_allows_one_second_burst_then_paces_at_the_rate() -> None:
    t = ManualTime()
    bucket = TokenBucket(10, clock=t, sleep=t.sleep)
    for _ in range(10):
        assert bucket.reserve() == 0
    assert bucket.reserve() == 0.1
    assert bucket.reserve() == 0.2  # waiting callers queue up in order


def test_multi_segment_messages_cost_their_segments() -> None:
    t = ManualTime()
    bucket = TokenBucket(1, clock=t, sleep=t.sleep)
    assert bucket.acquire(1)
    bucket.acquire(3)
    assert t.now == 3.0


def test_sustained_rate_matches_configuration() -> None:
    t = ManualTime()
    bucket = TokenBucket(30, clock=t, sleep=t.sleep)
    for _ in range(30 * 60):
        bucket.acquire()
    # 30 burst tokens, then 1770 more at 30/s.
    assert abs(t.now - (30 * 60 - 30) / 30) < 1e-6
