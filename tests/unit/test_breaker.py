from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.clock import FrozenClock
from notifier.delivery.breaker import Breaker

T0 = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)


def test_it_opens_after_failures_in_a_row_probes_once_and_doubles_the_pause() -> None:
    clock = FrozenClock(T0)
    breaker = Breaker("sms", threshold=3, pause=10, max_pause=25, clock=clock)
    for _ in range(3):
        assert breaker.admit() is None
        breaker.failed(transient=True)
    assert breaker.admit() == T0 + timedelta(seconds=10)
    clock.advance(10)
    assert breaker.admit() is None  # the probe
    assert breaker.admit() == clock.now() + timedelta(seconds=10)  # the others wait for it
    breaker.failed(transient=True)
    assert breaker.admit() == clock.now() + timedelta(seconds=20)
    clock.advance(20)
    assert breaker.admit() is None
    breaker.failed(transient=True)
    assert breaker.admit() == clock.now() + timedelta(seconds=25)  # capped
    clock.advance(25)
    assert breaker.admit() is None
    breaker.succeeded()
    assert breaker.admit() is None and breaker.admit() is None


def test_permanent_refusals_and_scattered_failures_never_open_it() -> None:
    breaker = Breaker("sms", threshold=3, pause=10, max_pause=60, clock=FrozenClock(T0))
    for _ in range(10):
        breaker.failed(transient=True)
        breaker.failed(transient=True)
        breaker.failed(transient=False)  # the provider answered: it is up
        breaker.succeeded()
    assert breaker.admit() is None
    off = Breaker("sms", threshold=0, pause=10, max_pause=60, clock=FrozenClock(T0))
    for _ in range(100):
        off.failed(transient=True)
    assert off.admit() is None
