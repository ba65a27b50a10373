"""Quiet hours as a pure rule: table-driven, in the location's zone, across midnight."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from notifier.domain.quiet_hours import QuietHours, deferral, is_urgent
from notifier.errors import ValidationError

NY = ZoneInfo("America/New_York")
NIGHT = QuietHours.parse("21:00-08:00")
CLOSURE_STARTS = datetime(2025, 2, 19, 12, 30, tzinfo=NY)
CLOSURE_ENDS = datetime(2025, 2, 21, 0, 0, tzinfo=NY)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 2, day, hour, minute, tzinfo=NY)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        (ny(18, 22), ny(19, 8)),  # evening: held to the next morning
        (ny(18, 21), ny(19, 8)),  # the window's first minute
        (ny(19, 7, 59), ny(19, 8)),  # early morning: held to the same morning
        (ny(19, 8), None),  # the window's end is outside it
        (ny(18, 20, 59), None),
        (ny(18, 12), None),
    ],
)
def test_the_night_window_spans_midnight_in_the_local_zone(
    now: datetime, opens: datetime | None
) -> None:
    found = NIGHT.ends_after(now, NY)
    assert found == (opens.astimezone(UTC) if opens else None)


def test_a_window_within_one_day_and_off() -> None:
    nap = QuietHours.parse("12:00-14:00")
    assert nap is not None and nap.ends_after(ny(18, 13), NY) == ny(18, 14)
    assert nap.ends_after(ny(18, 14), NY) is None
    assert QuietHours.parse("off") is None


@pytest.mark.parametrize("text", ["21-08", "25:00-08:00", "08:00-08:00", "nine to five"])
def test_malformed_windows_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        QuietHours.parse(text)


def test_a_closure_starting_the_day_of_sending_is_urgent_by_default() -> None:
    assert is_urgent(None, CLOSURE_STARTS, ny(19, 6), NY)
    assert not is_urgent(None, CLOSURE_STARTS, ny(18, 22), NY)
    assert is_urgent(None, ny(18, 9), ny(18, 22), NY)  # already under way
    assert is_urgent(True, CLOSURE_STARTS, ny(18, 22), NY)
    assert not is_urgent(False, CLOSURE_STARTS, ny(19, 6), NY)


def test_deferral_waits_for_the_window_or_expires_when_the_closure_is_over() -> None:
    held = deferral(NIGHT, ny(18, 22), NY, None, CLOSURE_STARTS, CLOSURE_ENDS)
    assert held is not None and held.until == ny(19, 8) and not held.expired
    assert deferral(NIGHT, ny(18, 22), NY, True, CLOSURE_STARTS, CLOSURE_ENDS) is None
    assert deferral(None, ny(18, 22), NY, None, CLOSURE_STARTS, CLOSURE_ENDS) is None
    short = deferral(NIGHT, ny(18, 22), NY, False, ny(19, 0), ny(19, 7))
    assert short is not None and short.expired


def test_a_text_the_window_would_release_after_the_closure_began_goes_at_once() -> None:
    midnight = ny(19, 0)
    assert deferral(NIGHT, ny(18, 22, 30), NY, None, midnight, ny(20, 0)) is None
    held = deferral(NIGHT, ny(18, 22, 30), NY, False, midnight, ny(20, 0))  # the manager's call
    assert held is not None and held.until == ny(19, 8)
    nine = ny(19, 9)  # the window opens before the closure: held as usual
    later = deferral(NIGHT, ny(18, 22, 30), NY, None, nine, ny(20, 0))
    assert later is not None and later.until == ny(19, 8)
