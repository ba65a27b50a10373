"""Service errors land next to the form field they are about."""

from __future__ import annotations

import pytest

from notifier.web.console import field_of


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("start '2025-13-01' is not a date and time: use 'YYYY-MM-DD HH:MM'", "starts"),
        ("end 2025-03-09 02:30 does not exist in America/New_York (clocks skip it)", "ends"),
        ("the closure ends (2025-02-19 10:00) before it starts (2025-02-19 12:30)", "ends"),
        ("the closure ended at 2025-02-17 10:00; there is nothing left to tell", "ends"),
        ("the send time 2025-02-22 09:00 is after the closure ends", "send_at"),
        ("give a reason (e.g. 'inclement weather')", "reason"),
        ("the custom message is empty: leave it out or write it", "message"),
        ("channels fax not understood: use one or more of sms, email", "channels"),
        ("no location 'x': add it first", "location"),
        ("the closure from 2025-02-22 10:00 to 2025-02-22 11:00 does not touch", "form"),
    ],
)
def test_service_errors_map_to_the_field_they_are_about(message: str, field: str) -> None:
    assert field_of(message) == field
