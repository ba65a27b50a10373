"""Closure rules: business hours, the wording segments, and the errors people see."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from notifier.domain.channels import parse_channels
from notifier.domain.closures import (
    BusinessHours,
    Closure,
    SegmentKind,
    localize,
    parse_local,
    zone,
)
from notifier.domain.deliveries import retry_delay
from notifier.domain.estimates import duration, too_long
from notifier.domain.notices import NoticeKind, check_send_time, infer_kind
from notifier.errors import ValidationError

NY = zone("America/New_York")
WEEKDAYS = BusinessHours.parse("Mon-Fri 08:00-17:00")
CHANNELS = ("sms", "email")


def closure(starts: str, ends: str, hours: BusinessHours = WEEKDAYS) -> Closure:
    interval = (parse_local(starts, NY, "start"), parse_local(ends, NY, "end"))
    return Closure.checked([interval], NY, hours)


def test_the_reference_closure_is_an_early_close_then_a_full_day() -> None:
    c = closure("2025-02-19 12:30", "2025-02-21 00:00")
    segments = c.segments()
    assert [(s.kind, s.day) for s in segments] == [
        (SegmentKind.EARLY_CLOSE, date(2025, 2, 19)),
        (SegmentKind.FULL_DAY, date(2025, 2, 20)),
    ]
    assert segments[0].starts.strftime("%H:%M") == "12:30"
    assert c.reopens() == datetime(2025, 2, 21, 8, 0, tzinfo=NY)
    assert infer_kind(c) is NoticeKind.CLOSURE


@pytest.mark.parametrize(
    ("starts", "ends", "kinds", "inferred"),
    [
        ("2025-02-19 12:30", "2025-02-19 23:59", [SegmentKind.EARLY_CLOSE], NoticeKind.EARLY_CLOSE),
        ("2025-02-19 00:00", "2025-02-19 10:00", [SegmentKind.LATE_OPEN], NoticeKind.DELAYED_OPEN),
        ("2025-02-19 11:00", "2025-02-19 13:00", [SegmentKind.PARTIAL], NoticeKind.CLOSURE),
        ("2025-02-20 00:00", "2025-02-21 00:00", [SegmentKind.FULL_DAY], NoticeKind.CLOSURE),
        # Friday to Monday: the weekend is closed anyway and is not mentioned.
        ("2025-02-21 00:00", "2025-02-25 00:00", [SegmentKind.FULL_DAY] * 2, NoticeKind.CLOSURE),
    ],
)
def test_segments_follow_business_hours(
    starts: str, ends: str, kinds: list[SegmentKind], inferred: NoticeKind
) -> None:
    c = closure(starts, ends)
    assert [s.kind for s in c.segments()] == kinds
    assert infer_kind(c) is inferred


def test_weekend_only_closure_is_refused_because_nobody_would_notice() -> None:
    with pytest.raises(ValidationError, match="does not touch the business hours"):
        closure("2025-02-22 00:00", "2025-02-24 00:00")


def test_a_closure_that_ends_before_it_starts_is_refused_with_both_times() -> None:
    with pytest.raises(ValidationError, match=r"ends \(2025-02-19 10:00\) before it starts"):
        closure("2025-02-19 12:30", "2025-02-19 10:00")


def test_unknown_time_zone_names_the_zone() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_a_wall_clock_time_skipped_by_dst_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not exist in America/New_York"):
        localize(datetime(2025, 3, 9, 2, 30), NY)


def test_local_times_parse_in_the_location_zone() -> None:
    instant = parse_local("2025-02-19 12:30", NY, "start")
    assert instant.utcoffset() == timedelta(hours=-5)
    with pytest.raises(ValidationError, match="'19/02/2025' is not a date and time"):
        parse_local("19/02/2025", NY, "start")


def test_send_time_after_the_closure_ended_is_refused() -> None:
    c = closure("2025-02-19 12:30", "2025-02-21 00:00")
    now = datetime(2025, 2, 18, 18, 0, tzinfo=NY)
    with pytest.raises(ValidationError, match="after the closure ends"):
        check_send_time(c.ends + timedelta(minutes=1), c, now)
    with pytest.raises(ValidationError, match="in the past"):
        check_send_time(now - timedelta(hours=1), c, now)
    check_send_time(now, c, now)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Mon-Fri 17:00-08:00", "closes before it opens"),
        ("Mon-Fri 8-5", "is not like"),
        ("Fri-Mon 08:00-17:00", "runs backwards"),
        ("", "empty"),
    ],
)
def test_bad_business_hours_say_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        BusinessHours.parse(text)


def test_business_hours_round_trip_through_json() -> None:
    hours = BusinessHours.parse("Mon-Fri 08:00-17:00; Sat 09:00-12:00")
    assert BusinessHours.from_json(hours.to_json()) == hours
    assert hours.window(date(2025, 2, 23), NY) is None  # Sunday


def test_channels_are_checked() -> None:
    assert parse_channels(["sms", " email", "sms"], CHANNELS) == ("sms", "email")
    with pytest.raises(ValidationError, match="fax"):
        parse_channels(["sms", "fax"], CHANNELS)


def test_retry_delay_grows_exponentially_is_capped_and_honours_retry_after() -> None:
    assert retry_delay(1, 5, 600, jitter=0.0) == 2.5
    assert retry_delay(3, 5, 600, jitter=0.999) == pytest.approx(19.99, abs=0.01)
    assert retry_delay(20, 5, 600, jitter=0.999) <= 600
    assert retry_delay(1, 5, 600, jitter=0.0, retry_after=30) == 30


def test_unknown_or_unsupported_languages_fall_back_to_the_location_default() -> None:
    from notifier.rendering.messages import resolve_language

    assert resolve_language("es", "en", ["en", "es"]) == "es"
    assert resolve_language("ES", "en", ["en", "es"]) == "es"
    assert resolve_language("fr", "en", ["en", "es"]) == "en"
    assert resolve_language(None, "es", ["en", "es"]) == "es"


def test_business_hours_print_in_the_form_they_are_parsed() -> None:
    text = "Mon-Wed 08:00-17:00; Thu 08:00-12:00; Fri 08:00-17:00; Sat 09:00-12:00"
    assert str(BusinessHours.parse(text)) == text
    assert BusinessHours.parse(str(BusinessHours.parse(text))) == BusinessHours.parse(text)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.4, "0 s"), (45, "45 s"), (60, "1 min"), (725, "12 min 5 s"), (20160, "5.6 h")],
)
def test_durations_are_said_as_precisely_as_a_person_needs(seconds: float, said: str) -> None:
    assert duration(seconds) == said


def test_a_broadcast_longer_than_a_short_queue_window_is_warned_in_minutes() -> None:
    [warning] = too_long({"sms": 1500.0}, 1200.0, {"sms": "NOTIFIER_SMS_RATE_PER_SECOND"})
    assert "takes about 25 min at the configured rate (NOTIFIER_SMS_RATE_PER_SECOND)" in warning
    assert "longer than the 20 min the provider queues" in warning
    assert too_long({"sms": 1200.0}, 1200.0, {"sms": "X"}) == []
