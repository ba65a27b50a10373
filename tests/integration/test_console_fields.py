"""Errors land next to the form field they are about: each carries its field, and the console
puts it there (no matching on message text)."""

from __future__ import annotations

from typing import Any

import pytest

from notifier.bootstrap import App
from notifier.errors import ValidationError
from notifier.usecases.notice_requests import NoticeRequest
from notifier.web.console.forms import errors_of
from tests.support.actors import OPERATOR

VALID: dict[str, Any] = {
    "location": "cova",
    "starts": "2025-02-19 12:30",
    "ends": "2025-02-21 00:00",
    "reason": "inclement weather",
    "send_at": "now",
}


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"starts": "2025-13-01"}, "starts", "is not a date and time"),
        ({"ends": "2025-03-09 02:30"}, "ends", "does not exist in America/New_York"),
        ({"ends": "2025-02-19 10:00"}, "ends", "before it starts"),
        ({"starts": "2025-02-17 08:00", "ends": "2025-02-17 10:00"}, "ends", "ended at"),
        ({"send_at": "2025-02-22 09:00"}, "send_at", "after the closure ends"),
        ({"send_at": "2025-02-17 09:00"}, "send_at", "in the past"),
        ({"reason": "  "}, "reason", "give a reason"),
        ({"message": "  "}, "message", "custom message is empty"),
        ({"channels": ("fax",)}, "channels", "fax not understood"),
        ({"location": "x"}, "location", "no location 'x'"),
        ({"kind": "closed-ish"}, "kind", "is not one of"),
        ({"reminder_at": "2025-02-18 17:00"}, "reminder_at", "must be after the send time"),
        ({"starts": "2025-02-22 10:00", "ends": "2025-02-22 11:00"}, "form", "does not touch"),
    ],
)
def test_an_error_is_shown_beside_the_field_it_is_about(
    app: App, cova: str, changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        app.notices.draft(OPERATOR, NoticeRequest(**VALID | changes))
    assert says in str(caught.value)
    assert errors_of(caught.value) == {field: str(caught.value)}
