from __future__ import annotations

import bisect
import itertools
import random
import threading
from collections.abc import Callable

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
    """The database's side of ``SharedTimeline``: one timeline, grants that never overlap. A
    grant takes ``trip`` seconds of the manual clock, half before the statement, half after."""

    def __init__(self, time: ManualTime, trip: float = 0.0) -> None:
        self.time = time
        self.trip = trip
        self.tat = 0.0
        self.grants: list[tuple[float, float]] = []

    def grant(self, sender: str, span: float, burst: float) -> tuple[float, float]:
        self.time.now += self.trip / 2
        start = max(self.tat, self.time.now - burst)
        self.tat = start + span
        self.grants.append((start, self.tat))
        shared_now = self.time.now
        self.time.now += self.trip / 2
        return self.tat, shared_now


class Later:
    """Runs the timeline's fetches ahead when the test says (the round trip off the sender)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def __call__(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> int:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()
        return len(jobs)


def inline(job: Callable[[], None]) -> None:
    job()


def flat(grants: list[tuple[float, float]]) -> list[float]:
    return [x for grant in grants for x in grant]


def test_workers_sharing_a_timeline_send_at_the_rate_together_not_each() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0  # busy until now: no saved-up burst
    workers = [
        SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t, run_ahead=inline)
        for _ in range(3)
    ]
    slots = []
    for i in range(60):  # three workers taking turns, 60 one-segment messages
        slots.append(t.now + workers[i % 3].reserve(1))
    slots.sort()
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(slots))
    assert slots[-1] - slots[0] == pytest.approx(5.9)  # 60 segments at 10/s, whoever sends
    # The database asked once per 5 segments, not per message, and nothing fetched ahead:
    # every worker holds slots seconds ahead of the clock, more than it can use sooner.
    assert len(db.grants) == 12


def test_multi_segment_messages_take_their_segments_slots_and_grants_hold_whole_messages() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0
    timeline = SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t, run_ahead=inline)
    waits = [timeline.reserve(2) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])  # 5-segment batch → 2 messages of 2
    assert [x for grant in db.grants for x in grant] == pytest.approx([100, 100.4, 100.4, 100.8])


def test_an_idle_fleet_may_burst_one_seconds_worth_and_never_catches_up_more() -> None:
    t = ManualTime()
    db = SharedClock(t)
    a, b = (
        SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t, run_ahead=inline)
        for _ in range(2)
    )
    assert a.reserve(1) == 0.0  # holds slots up to 0.5 s after the start
    for _ in range(4):
        t.now += a.reserve(1)  # each message as the last one's slot comes
    # Its span's end came near: the next was fetched ahead, and goes unused.
    assert flat(db.grants) == pytest.approx([0, 0.5, 0.5, 1.0])
    t.now = 60.0  # idle (or dead) for a minute: those slots passed long ago
    waits = [w.reserve(1) for _ in range(15) for w in (a, b)]
    slots = sorted(t.now + wait for wait in waits)
    # One second's worth at once (10 slots: 0.9 s ago up to now), not a minute's, nor the span
    # fetched ahead; then the rate: 30 segments take the slots from -0.9 s to +2.0 s.
    assert sum(slot - t.now < 1e-9 for slot in slots) == 10
    assert slots[-1] - t.now == pytest.approx(2.0)


def test_a_worker_with_few_messages_in_hand_takes_only_the_slots_it_can_use() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0
    in_hand = [2]
    timeline = SharedTimeline(
        "sms", 10, db.grant, batch_seconds=0.5, clock=t, demand=lambda: in_hand[0], run_ahead=inline
    )
    assert [timeline.reserve(1) for _ in range(2)] == pytest.approx([0.0, 0.1])
    assert flat(db.grants) == pytest.approx([100, 100.2])  # two slots, not five
    # A third message although two are in hand (a stale count): one slot, for it alone.
    assert timeline.reserve(1) == pytest.approx(0.2)
    assert db.grants[-1] == pytest.approx((100.2, 100.3))
    in_hand[0] = 50  # of which two hold slots still to come
    assert [timeline.reserve(1) for _ in range(2)] == pytest.approx([0.3, 0.4])
    assert db.grants[-1] == pytest.approx((100.3, 100.8))  # never more than one batch


def test_a_sender_keeping_up_finds_the_next_span_fetched_ahead_near_the_spans_end() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t, trip=0.03)  # 30 ms a grant
    db.tat = 100.0
    ahead = Later()
    timeline = SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t, run_ahead=ahead)
    asked_ahead: list[float] = []  # when each fetch ahead was asked for (the manual clock)
    slots = []
    for _ in range(20):  # one sender: each message as soon as the last one's slot came
        grants = len(db.grants)
        wait = timeline.reserve(1)
        if slots:
            assert len(db.grants) == grants  # never waited for the database itself
        slots.append(t.now + wait)
        t.now += wait
        if ahead.jobs:
            asked_ahead.append(t.now)
            ahead.run()  # the round trip, on another thread, before the next slot
    assert slots == pytest.approx([100.03] + [100 + i / 10 for i in range(1, 20)])
    assert len(db.grants) == 5  # 5 slots a grant, one asked by the first send
    # Lookahead: twice the 30 ms round trip, and the slot taken and the next: asked as the
    # sender took each span's third slot (0.2 s of it left), not as the span was granted.
    assert asked_ahead == pytest.approx([100.2, 100.7, 101.2, 101.7])
    assert timeline.lookahead() == pytest.approx(0.06)


def test_a_worker_with_more_senders_than_slots_fetches_nothing_ahead_and_never_overlaps() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t, trip=0.03)
    db.tat = 103.0  # the rest of the fleet holds the next three seconds
    ahead = Later()
    timeline = SharedTimeline("sms", 10, db.grant, batch_seconds=0.5, clock=t, run_ahead=ahead)
    waits = [timeline.reserve(1) for _ in range(8)]  # eight senders at once
    assert not ahead.jobs  # its slots are seconds away: it asks when a sender needs them
    assert flat(db.grants) == pytest.approx([103.0, 103.5, 103.5, 104.0])
    slots = [t.now - 0.03 + w for w in waits[5:]] + [t.now + w for w in waits[:5]]
    assert len({round(s, 6) for s in slots}) == 8


def test_a_failed_fetch_ahead_is_asked_again_by_the_sender_that_needs_it() -> None:
    t = ManualTime()
    t.now = 100.0
    db = SharedClock(t)
    db.tat = 100.0
    fail = [False]

    def grant(sender: str, span: float, burst: float) -> tuple[float, float]:
        if fail[0]:
            fail[0] = False
            raise ConnectionError("database gone for a moment")
        return db.grant(sender, span, burst)

    ahead = Later()
    timeline = SharedTimeline("sms", 10, grant, batch_seconds=0.5, clock=t, run_ahead=ahead)
    for _ in range(4):
        t.now += timeline.reserve(1)
    assert len(ahead.jobs) == 1
    fail[0] = True
    ahead.run()  # logged, not raised on the fetch-ahead thread
    t.now += timeline.reserve(1)  # the span's last slot: asked ahead again
    fail[0] = True
    assert ahead.run() == 1
    assert timeline.reserve(1) == pytest.approx(0.1)  # asked itself: slot 100.5
    assert flat(db.grants) == pytest.approx([100, 100.5, 100.5, 101.0])


def test_senders_wait_for_a_fetch_under_way_and_close_leaves_no_thread() -> None:
    t = ManualTime()
    db = SharedClock(t)
    entered, release, ahead = threading.Event(), threading.Event(), threading.Event()

    def slow_grant(sender: str, span: float, burst: float) -> tuple[float, float]:
        entered.set()
        assert release.wait(10)
        if db.grants:
            ahead.set()
        return db.grant(sender, span, burst)

    before = set(threading.enumerate())
    timeline = SharedTimeline("sms", 10, slow_grant, batch_seconds=0.5, clock=t)
    waits: list[float] = []
    senders = [threading.Thread(target=lambda: waits.append(timeline.reserve(1))) for _ in range(3)]
    for sender in senders:
        sender.start()
    assert entered.wait(10)
    # One grant under way, asked without the lock: the timeline still answers.
    assert timeline.lookahead() == pytest.approx(0.01)
    release.set()
    for sender in senders:
        sender.join(10)
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2])  # one grant for the three
    assert len(db.grants) == 1
    t.now = 0.3
    assert timeline.reserve(1) == pytest.approx(
        0.0
    )  # near the span's end: the next is asked on its thread
    assert ahead.wait(10)
    timeline.close()
    assert set(threading.enumerate()) == before
    assert flat(db.grants) == pytest.approx([0, 0.5, 0.5, 1.0])


def test_whatever_the_arrivals_no_second_sees_more_than_the_rate_and_one_seconds_burst() -> None:
    rng = random.Random(25)
    t = ManualTime()
    db = SharedClock(t, trip=0.02)
    rate = 10
    workers = []
    for _ in range(3):
        ahead = Later()  # a worker's fetch ahead lands at the latest before its next message
        timeline = SharedTimeline(
            "sms", rate, db.grant, batch_seconds=0.5, clock=t, run_ahead=ahead
        )
        workers.append((timeline, ahead))
    sends = []  # when each segment goes out (a message's segments in one request)
    for _ in range(600):
        # Bursts, lulls long enough for spans (fetched ahead or not) to expire, steady runs.
        t.now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.1, 0.3, 2.0])
        timeline, ahead = rng.choice(workers)
        ahead.run()
        cost = rng.choice([1, 1, 1, 2, 3])
        wait = timeline.reserve(cost)
        sends.extend([t.now + wait] * cost)
    assert len(db.grants) > 100
    sends.sort()
    busiest = max(bisect.bisect_left(sends, start + 1.0) - i for i, start in enumerate(sends))
    assert rate < busiest <= rate + max(1, rate)  # the burst is used, never more


EPOCH = 1_796_684_547.25  # December 2026 in epoch seconds: the database's clock (send_rates)


def at_most(
    grants: int, grant: Callable[[str, float, float], tuple[float, float]]
) -> Callable[[str, float, float], tuple[float, float]]:
    """A grant that fails the test past ``grants`` calls (instead of a sender asking forever)."""
    calls = [0]

    def limited(sender: str, span: float, burst: float) -> tuple[float, float]:
        calls[0] += 1
        assert calls[0] <= grants, f"grant #{calls[0]}: the timeline asks again and again"
        return grant(sender, span, burst)

    return limited


def test_at_the_databases_epoch_seconds_a_span_asked_for_one_message_is_that_messages() -> None:
    # A double steps by 2.4e-7 s at 1.8e9: end - (end - 0.1) is 0.0999999 s, a hair short of
    # the slot the span was asked for. The sender took that as used up and asked again, for
    # ever (a PostgreSQL drain of one message hung in a loop of grants).
    t = ManualTime()
    t.now = EPOCH
    db = SharedClock(t)
    db.tat = EPOCH  # busy until now: slots from now on
    timeline = SharedTimeline(
        "sms",
        10,
        at_most(4, db.grant),
        batch_seconds=0.5,
        clock=t,
        demand=lambda: 1,
        run_ahead=inline,
    )
    assert [timeline.reserve(1) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    # A message of more segments than a batch (the hang's: a 6-segment notice) has a span
    # of exactly its own slots too.
    assert timeline.reserve(6) == pytest.approx(0.3)
    assert [end - start for start, end in db.grants] == pytest.approx([0.1] * 3 + [0.6])


def test_at_the_databases_epoch_seconds_a_span_of_several_messages_loses_no_slot() -> None:
    t = ManualTime()
    t.now = EPOCH
    db = SharedClock(t)
    db.tat = EPOCH
    timeline = SharedTimeline(
        "sms", 13, at_most(6, db.grant), batch_seconds=0.5, clock=t, run_ahead=inline
    )
    slots = [t.now + timeline.reserve(1) for _ in range(36)]
    # Spans of six slots (6/13 s), every slot of each one used, though their ends and starts
    # are a step or two of a double off (the last slot of each looked short of a whole one).
    assert len(db.grants) == 6
    assert [b - a for a, b in itertools.pairwise(slots)] == pytest.approx([1 / 13] * 35, abs=1e-6)


class Ticking(ManualTime):
    """A clock that moves on by a microsecond at each reading, as a real one does."""

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


def test_the_sender_that_asked_takes_its_span_though_the_clock_moved_on_since() -> None:
    # Idle: the span starts a second's burst ago (less one slot), at the oldest slot still
    # allowed when the statement ran; microseconds later it looked expired, and was lost.
    t = Ticking()
    t.now = 100.0
    db = SharedClock(t)
    ahead = Later()
    timeline = SharedTimeline(
        "sms",
        10,
        at_most(3, db.grant),
        batch_seconds=0.5,
        clock=t,
        demand=lambda: 1,
        run_ahead=ahead,
    )
    assert timeline.reserve(1) == 0.0
    assert len(db.grants) == 1  # the message's own span, not a second one after it
