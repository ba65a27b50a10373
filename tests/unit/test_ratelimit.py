from __future__ import annotations

import itertools

import pytest

from notifier.delivery.ratelimit import SharedTimeline, TokenBucket


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


class SharedClock:
    """The database's side of ``SharedTimeline``: one timeline, grants that never overlap."""

    def __init__(self, time: ManualTime) -> None:
        self.time = time
        self.tat = 0.0
        self.grants: list[tuple[float, float]] = []

    def grant(self, sender: str, span: float, burst: float) -> tuple[float, float]:
        start = max(self.tat, self.time.now - burst)
        self.tat = start + span
        self.grants.append((start, self.tat))
        return self.tat, self.time.now


def test_workers_sharing_a_timeline_send_at_the_rate_together_not_each() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0  # busy until now: no saved-up burst
    workers = [SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t) for _ in range(3)]
    slots = []
    for i in range(60):  # three workers taking turns, 60 one-segment messages
        slots.append(t.now + workers[i % 3].reserve(1))
    slots.sort()
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(slots))
    assert slots[-1] - slots[0] == pytest.approx(5.9)  # 60 segments at 10/s, whoever sends
    assert len(db.grants) == 12  # the database asked once per 5 segments, not per message


def test_multi_segment_messages_take_their_segments_slots_and_grants_hold_whole_messages() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0
    timeline = SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t)
    waits = [timeline.reserve(2) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])  # 5-segment batch → 2 messages of 2
    assert [x for grant in db.grants for x in grant] == pytest.approx([100, 100.4, 100.4, 100.8])


def test_an_idle_fleet_may_burst_one_seconds_worth_and_never_catches_up_more() -> None:
    t = ManualTime()
    db = SharedClock(t)
    a, b = (SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t) for _ in range(2))
    assert a.reserve(1) == 0.0  # holds slots up to 0.5 s after the start
    t.now = 60.0  # idle (or dead) for a minute: those slots passed long ago
    waits = [w.reserve(1) for _ in range(15) for w in (a, b)]
    slots = sorted(t.now + wait for wait in waits)
    # One second's worth at once (10 slots: 0.9 s ago up to now), not a minute's; then the
    # rate: 30 segments take the slots from -0.9 s to +2.0 s.
    assert sum(slot - t.now < 1e-9 for slot in slots) == 10
    assert slots[-1] - t.now == pytest.approx(2.0)


def test_a_worker_with_few_messages_in_hand_takes_only_the_slots_it_can_use() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0
    in_hand = [2]
    timeline = SharedTimeline(
        "sms", 10, db.grant, batch_seconds=0.5, clock=t, demand=lambda: in_hand[0]
    )
    assert [timeline.reserve(1) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    # Two slots per grant, not five: the third message asked again; nothing left unused.
    assert [x for grant in db.grants for x in grant] == pytest.approx([100, 100.2, 100.2, 100.4])
    in_hand[0] = 50
    assert [timeline.reserve(1) for _ in range(2)] == pytest.approx([0.3, 0.4])
    assert db.grants[-1] == pytest.approx((100.4, 100.9))  # never more than one batch
