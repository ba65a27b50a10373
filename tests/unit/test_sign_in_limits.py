"""The sign-in limit and session lifetime rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.domain.sign_in import SessionTimes, SignInLimits

NOW = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)
LIMITS = SignInLimits(per_account=5, per_address=20, window=timedelta(minutes=15))


def minutes_ago(*minutes: int) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


def test_under_both_limits_there_is_no_wait() -> None:
    assert LIMITS.wait(minutes_ago(4, 3, 2, 1), minutes_ago(*range(19)), NOW) is None


def test_the_account_limit_waits_until_its_oldest_failure_is_a_window_old() -> None:
    assert LIMITS.wait(minutes_ago(10, 4, 3, 2, 1), [], NOW) == timedelta(minutes=5)


def test_the_address_limit_applies_whatever_the_account() -> None:
    failures = minutes_ago(*range(14, -6, -1))  # 20 failures, the oldest 14 minutes ago
    assert LIMITS.wait([], failures, NOW) == timedelta(minutes=1)


def test_the_longer_of_two_waits_is_the_wait() -> None:
    account = minutes_ago(3, 3, 3, 3, 3)
    address = minutes_ago(*[14] * 20)
    assert LIMITS.wait(account, address, NOW) == timedelta(minutes=12)


def test_failures_past_the_limit_wait_for_the_one_that_frees_a_slot() -> None:
    # Seven counted failures (more than the limit, e.g. from before the limit was lowered).
    failures = minutes_ago(14, 13, 12, 11, 10, 9, 8)
    assert LIMITS.wait(failures, [], NOW) == timedelta(minutes=3)


def test_a_session_lives_until_idle_or_old() -> None:
    times = SessionTimes(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    start = NOW - timedelta(hours=1)
    assert times.live(start, NOW - timedelta(minutes=29), NOW)
    assert not times.live(start, NOW - timedelta(minutes=30), NOW)
    assert not times.live(NOW - timedelta(hours=12), NOW, NOW)
