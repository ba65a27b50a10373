"""Nothing depends on the wall clock: the same story passes at 10 pm on New Year's Eve 2031."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine

from notifier.bootstrap import App
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import PATIENTS_CSV


def test_the_reference_story_passes_late_at_night_years_later(
    app: App, cova: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp
) -> None:
    late = datetime(2031, 12, 31, 22, 30, tzinfo=ZoneInfo("America/New_York"))
    with time_machine.travel(late, tick=True):
        assert datetime.now().year == 2031  # the wall clock really moved
        app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
        notice = app.notices.create(
            OPERATOR,
            NoticeRequest(
                location="cova",
                starts="2025-02-19 12:30",
                ends="2025-02-21 00:00",
                reason="inclement weather",
            ),
        ).notice
        run_once(app)
    states = sorted(d.state for d in app.deliveries.log(OPERATOR, notice.id))
    assert states == ["sent"] * 5 + ["skipped"] * 3
    assert len(fake_twilio.received_creates()) == 2
    assert len(fake_smtp.messages) == 3
