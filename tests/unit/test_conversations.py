"""The pure rules of patients' replies: waiting counted in business hours, the auto-reply's
words, an answer's checks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from notifier.domain.closures import BusinessHours
from notifier.domain.conversations import auto_reply_text, business_minutes, checked_answer
from notifier.errors import ValidationError

NY = ZoneInfo("America/New_York")
HOURS = BusinessHours.parse("Mon-Fri 08:00-17:00")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 2, day, hour, minute, tzinfo=NY)


@pytest.mark.parametrize(
    ("since", "now", "minutes"),
    [
        (at(18, 10), at(18, 10, 30), 30),  # Tuesday, open all along
        (at(18, 18), at(19, 8, 0), 0),  # an evening text: nothing counts until the morning
        (at(18, 18), at(19, 8, 45), 45),
        (at(18, 16, 50), at(19, 8, 10), 20),  # 10 min before closing, 10 after opening
        (at(21, 16), at(24, 9), 120),  # Friday 16:00 to Monday 09:00: the weekend is closed
        (at(19, 9), at(19, 9), 0),
    ],
)
def test_waiting_counts_business_minutes(since: datetime, now: datetime, minutes: int) -> None:
    assert business_minutes(since, now, HOURS, NY) == minutes


def test_the_auto_reply_wraps_the_closure_in_the_patients_language() -> None:
    closure = "COVA is closed Thursday.\n  We reopen Friday at 8:00 AM."
    english = auto_reply_text("en", closure)
    assert english.startswith("Automatic reply: COVA is closed Thursday. We reopen Friday")
    assert auto_reply_text("es", "Cerrado.").startswith("Respuesta automática: Cerrado.")
    assert auto_reply_text("fr", "Closed.").startswith("Automatic reply: Closed.")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("   ", "empty"), ("a\x00b", "NUL"), ("x" * 1601, "1601 characters, at most 1600")],
)
def test_an_answer_that_cannot_go_is_refused_by_name(text: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        checked_answer(text)


def test_an_answer_is_trimmed() -> None:
    assert checked_answer("  We open at 8.  ") == "We open at 8."
