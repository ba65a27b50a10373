"""A provider's error text is masked when its ``ChannelError`` is made: whatever stores or logs
it afterwards never sees the patient's phone or email."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException

from notifier.channels.base import ChannelError
from notifier.channels.email import _reply_error
from notifier.channels.sms import classify_rest_error


@pytest.mark.parametrize(
    "error",
    [
        ChannelError("Invalid 'To' Phone Number: +15405550131", code="21211", permanent=True),
        ChannelError("to (540) 555-0131 or %2B15405550131 / patient.one@example.org"),
        classify_rest_error(
            TwilioRestException(
                400, "/Messages.json", "Invalid 'To' Phone Number: +15405550131", 21211
            )
        ),
        _reply_error("recipient refused", 550, b"5.1.1 <patient.one@example.org>: rejected"),
    ],
)
def test_the_message_is_masked_as_it_is_made(error: ChannelError) -> None:
    for text in (error.message, str(error), repr(error.args)):
        assert "5405550131" not in text and "555-0131" not in text
        assert "patient.one" not in text


def test_codes_and_the_rest_of_the_text_stay_readable() -> None:
    error = _reply_error("recipient refused", 550, b"5.1.1 <patient.one@example.org>: rejected")
    assert error.message == "recipient refused: 550 5.1.1 <p***@example.org>: rejected"
    assert (error.code, error.permanent) == ("550", True)
    sms = ChannelError("Invalid 'To' Phone Number: +15405550131", code="21211")
    assert sms.message == "Invalid 'To' Phone Number: +1******0131"
