"""A provider that fails every request for three minutes, then recovers (the frozen clock makes
the three minutes take seconds): every patient is texted exactly once, none is failed, and the
circuit breaker kept the engine from hammering the provider meanwhile."""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta

import pytest

from notifier.bootstrap import build_app
from notifier.clock import FrozenClock
from notifier.storage import deliveries as delivery_rows
from notifier.storage import reports
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.peers import peer_settings

PATIENTS = 20


@pytest.mark.parametrize("breaker_failures", [10, 0])
def test_a_three_minute_outage_delays_every_text_and_fails_none(
    database_url: str, fake_twilio: FakeTwilio, clock: FrozenClock, breaker_failures: int
) -> None:
    settings = peer_settings(
        database_url,
        fake_twilio,
        None,
        sms_rate_per_second=1000,
        retry_max_seconds=60,
        breaker_failures=breaker_failures,
        breaker_pause_seconds=15,
    )
    app = build_app(settings, clock=clock)
    app.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(PATIENTS, with_email=False)))
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    ).notice
    app.fanout.fire_due()
    fake_twilio.fault(
        {"path_regex": r"/Messages"},
        times=None,
        response={"status": 500, "code": 20500, "message": "Internal Server Error"},
    )
    dispatcher = app.dispatcher(None, "w1")
    try:
        recovery = clock.now() + timedelta(minutes=3)
        while clock.now() < recovery:
            dispatcher.drain()
            clock.advance(5)
        refused = len(fake_twilio.requests)
        fake_twilio.clear_faults()
        for _ in range(60):
            dispatcher.drain()
            with app.db.session() as s:
                if not delivery_rows.has_open_deliveries(s):
                    break
            clock.advance(5)
    finally:
        dispatcher.close()
        app.close()

    creates = Counter(r["form"]["To"][0] for r in fake_twilio.received_creates())
    assert len(creates) == PATIENTS and set(creates.values()) == {1}
    with app.db.session() as s:
        log = reports.delivery_log(s, reports.LogQuery(notice.id))
        kinds = Counter(e.kind for e in reports.events_for(s, [d.id for d in log]))
    assert Counter(d.state for d in log if d.state != "skipped") == {"sent": PATIENTS}
    assert kinds["retry_scheduled"] > 0  # every failed attempt is in the log
    if breaker_failures:
        # Without the breaker every delivery is tried on its own backoff (~5 tries each in three
        # minutes); with it, the first wave (in flight together) opens it, then one probe goes
        # out per pause (15, 30, 60, 60 s).
        assert refused <= PATIENTS + 8, f"{refused} requests during the outage"
        assert kinds["paused"] > 0
    else:
        assert refused >= PATIENTS * 3
