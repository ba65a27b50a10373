"""Closure intervals → the words patients read, and which appointments a closure hits."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from notifier.domain.closures import (
    BusinessHours,
    Closure,
    affects,
    intervals_from_json,
    intervals_to_json,
    parse_interval,
    parse_local,
    zone,
)
from notifier.errors import ValidationError
from notifier.rendering.renderer import AppointmentInfo, MessageContext, Renderer

NY = zone("America/New_York")
HOURS = BusinessHours.parse("Mon-Fri 08:00-17:00")


def closure(*intervals: str) -> Closure:
    return Closure.checked([parse_interval(text, NY) for text in intervals], NY, HOURS)


def sentence(c: Closure, language: str = "en") -> str:
    ctx = MessageContext(
        language=language,
        location_name="COVA",
        location_phone=None,
        reason="",
        segments=c.wording(),
        reopens=c.reopening_to_say(),
    )
    text = Renderer().render_sms(ctx).text
    return text.split(" Please be safe.")[0] if language == "en" else text.split(" Cuídese.")[0]


@pytest.mark.parametrize(
    ("intervals", "words"),
    [
        pytest.param(
            ["2025-02-19 12:30/2025-02-19 17:00"],
            "COVA will be closing early Wednesday, 2/19/2025 at 12:30 PM. "
            "We reopen Thursday, 2/20/2025 at 8:00 AM.",
            id="early close",
        ),
        pytest.param(
            ["2025-02-20 00:00/2025-02-21 00:00"],
            "COVA will be closed all day Thursday, 2/20/2025. "
            "We reopen Friday, 2/21/2025 at 8:00 AM.",
            id="full day",
        ),
        pytest.param(
            ["2025-02-20 00:00/2025-02-25 00:00"],
            "COVA will be closed from Thursday, 2/20/2025 through Monday, 2/24/2025. "
            "We reopen Tuesday, 2/25/2025 at 8:00 AM.",
            id="multi-day run over a weekend",
        ),
        pytest.param(
            ["2025-02-20 08:00/2025-02-20 10:00"],
            "COVA will be opening late Thursday, 2/20/2025 at 10:00 AM.",
            id="delayed open: its time is said once",
        ),
        pytest.param(
            ["2025-02-19 20:00/2025-02-20 10:00"],
            "COVA will be opening late Thursday, 2/20/2025 at 10:00 AM.",
            id="overnight: only the morning after is affected",
        ),
        pytest.param(
            ["2025-02-19 12:30/2025-02-19 17:00", "2025-02-20 08:00/2025-02-20 10:00"],
            "COVA will be closing early Wednesday, 2/19/2025 at 12:30 PM and will be opening "
            "late Thursday, 2/20/2025 at 10:00 AM.",
            id="two intervals",
        ),
        pytest.param(
            ["2025-03-07 12:00/2025-03-10 10:00"],
            "COVA will be closing early Friday, 3/7/2025 at 12:00 PM and will be opening late "
            "Monday, 3/10/2025 at 10:00 AM.",
            id="DST change week: wall-clock times stay as written",
        ),
        pytest.param(
            ["2025-02-17 00:00/2025-02-18 00:00", "2025-02-19 00:00/2025-02-20 00:00"],
            "COVA will be closed all day Monday, 2/17/2025 and will be open Tuesday, 2/18/2025 "
            "at 8:00 AM and will be closed all day Wednesday, 2/19/2025. We reopen Thursday, "
            "2/20/2025 at 8:00 AM.",
            id="an open day between two closed days is said, not merged",
        ),
        pytest.param(
            ["2025-02-20 00:00/2025-02-21 00:00", "2025-02-24 00:00/2025-02-25 00:00"],
            "COVA will be closed all day Thursday, 2/20/2025 and will be open Friday, 2/21/2025 "
            "at 8:00 AM and will be closed all day Monday, 2/24/2025. We reopen Tuesday, "
            "2/25/2025 at 8:00 AM.",
            id="closed Thursday and Monday: Friday is open, the weekend is not",
        ),
        pytest.param(
            ["2025-02-19 12:30/2025-02-19 17:00", "2025-02-21 08:00/2025-02-21 10:00"],
            "COVA will be closing early Wednesday, 2/19/2025 at 12:30 PM and will be open "
            "Thursday, 2/20/2025 at 8:00 AM and will be opening late Friday, 2/21/2025 at "
            "10:00 AM.",
            id="an early close, an open day, a late opening",
        ),
    ],
)
def test_intervals_give_the_words(intervals: list[str], words: str) -> None:
    assert sentence(closure(*intervals)) == words


@pytest.mark.parametrize(
    ("intervals", "words"),
    [
        pytest.param(
            ["2025-02-20 08:00/2025-02-20 10:00"],
            "COVA abrirá tarde el jueves 20 de febrero de 2025 a las 10:00 a. m.",
            id="delayed open: its time is said once",
        ),
        pytest.param(
            ["2025-02-20 00:00/2025-02-21 00:00", "2025-02-24 00:00/2025-02-25 00:00"],
            "COVA cerrará todo el día el jueves 20 de febrero de 2025 y abrirá el viernes 21 de "
            "febrero de 2025 a las 8:00 a. m. y cerrará todo el día el lunes 24 de febrero de "
            "2025. Reabrimos el martes 25 de febrero de 2025 a las 8:00 a. m.",
            id="closed Thursday and Monday: Friday is open",
        ),
    ],
)
def test_intervals_give_the_spanish_words(intervals: list[str], words: str) -> None:
    assert sentence(closure(*intervals), "es") == words


def test_the_open_after_all_message_names_only_the_closed_days() -> None:
    c = closure("2025-02-20 00:00/2025-02-21 00:00", "2025-02-24 00:00/2025-02-25 00:00")
    ctx = MessageContext(
        language="en",
        location_name="COVA",
        location_phone=None,
        reason="",
        segments=c.wording(),
        reopens=c.reopening_to_say(),
        change="cancellation",
    )
    text = Renderer().render_sms(ctx, "open").text
    assert "announced for Thursday, 2/20/2025 and Monday, 2/24/2025 is cancelled" in text


def test_spanish_wording_of_a_multi_day_run() -> None:
    text = sentence(closure("2025-02-20 00:00/2025-02-25 00:00"), "es")
    assert "estará cerrado desde el jueves 20 de febrero de 2025 hasta el lunes 24 de" in text


def test_the_dst_week_closure_lasts_the_real_number_of_hours() -> None:
    c = closure("2025-03-07 12:00/2025-03-10 10:00")
    elapsed = c.ends.astimezone(UTC) - c.starts.astimezone(UTC)
    assert elapsed == timedelta(days=2, hours=21)  # one hour lost on Sunday 3/9
    assert [s.ends.utcoffset() for s in c.segments()] == [timedelta(hours=-5), timedelta(hours=-4)]


def test_overlapping_intervals_are_refused() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        closure("2025-02-19 09:00/2025-02-19 12:00", "2025-02-19 11:00/2025-02-19 14:00")


def test_every_interval_must_touch_business_hours() -> None:
    with pytest.raises(ValidationError, match="does not touch the business hours"):
        closure("2025-02-19 12:30/2025-02-19 17:00", "2025-02-22 09:00/2025-02-22 12:00")


def test_an_interval_needs_a_slash() -> None:
    with pytest.raises(ValidationError, match=r"\(start/end\)"):
        parse_interval("2025-02-19 12:30", NY)


def test_the_envelope_spans_all_intervals_and_survives_json() -> None:
    c = closure("2025-02-20 08:00/2025-02-20 10:00", "2025-02-19 12:30/2025-02-19 17:00")
    assert c.local(c.starts).hour == 12 and c.local(c.ends).hour == 10
    again = Closure.checked(intervals_from_json(intervals_to_json(c.intervals)), NY, HOURS)
    assert again.intervals == c.intervals


CLOSED = [
    (parse_local("2025-02-19 12:30", NY, "s"), parse_local("2025-02-21 00:00", NY, "e")),
]


@pytest.mark.parametrize(
    ("starts", "minutes", "affected"),
    [
        ("2025-02-19 12:00", 30, False),  # ends exactly when the closure starts
        ("2025-02-19 12:00", 31, True),  # runs one minute into it
        ("2025-02-19 12:30", 15, True),  # starts exactly when it starts
        ("2025-02-20 10:30", 30, True),
        ("2025-02-21 00:00", 30, False),  # starts exactly when it ends
        ("2025-02-20 23:45", 30, True),
    ],
)
def test_appointments_match_by_strict_overlap(starts: str, minutes: int, affected: bool) -> None:
    begin = parse_local(starts, NY, "appointment")
    assert affects(begin, begin + timedelta(minutes=minutes), CLOSED) is affected


@pytest.mark.parametrize("language", Renderer().languages())
@pytest.mark.parametrize("template", ["appointment", "open"])
def test_every_language_has_the_appointment_and_open_after_all_messages(
    language: str, template: str
) -> None:
    c = closure("2025-02-19 12:30/2025-02-21 00:00")
    ctx = MessageContext(
        language=language,
        location_name="COVA",
        location_phone="(540) 555-0100",
        reason="ice",
        segments=c.wording(),
        reopens=c.reopens(),
        appointments=[AppointmentInfo(parse_local("2025-02-20 10:30", NY, "a"), "Dr. Patel")],
    )
    renderer = Renderer()
    sms = renderer.render_sms(ctx, template)
    email = renderer.render_email(ctx, template)
    if template == "appointment":
        assert "Dr. Patel" in sms.text and "Dr. Patel" in email.html
        assert ("10:30 AM" if language == "en" else "10:30 a. m.") in sms.text
    else:
        assert "2/19/2025" in sms.text or "19 de febrero de 2025" in sms.text
