"""Senders through the real SDK and the Twilio-compatible server: a pool of From numbers, each
patient keeping theirs across notices; a Messaging Service sent as MessagingServiceSid."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator

import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.peers import peer_settings

POOL = {"+15405550100": 1000.0, "+18885550100": 1000.0, "+15405550101": 1000.0}
SERVICE = "MG" + "ab" * 16


@pytest.fixture
def pool_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(senders=POOL, messaging_services={SERVICE: {"senders": list(POOL)}}) as fake:
        yield fake


def app_with(database_url: str, fake: FakeTwilio, clock: FrozenClock, **settings: object) -> App:
    app = build_app(
        peer_settings(database_url, fake, None, sms_rate_per_second=1000, **settings),
        clock=clock,
    )
    app.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(30, with_email=False)))
    return app


def test_each_patient_hears_from_the_same_number_of_the_pool_across_notices(
    database_url: str, pool_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    numbers = ",".join(f"{n}=500" for n in POOL)
    app = app_with(database_url, pool_twilio, clock, twilio_from_numbers=numbers)
    try:
        for start, end in [("2025-02-19 12:30", "2025-02-20 00:00"), ("2025-02-24", "2025-02-25")]:
            app.notices.create(
                OPERATOR,
                NoticeRequest(
                    location="cova",
                    starts=start,
                    ends=end,
                    reason="inclement weather",
                    channels=("sms",),
                ),
            )
            run_once(app)
    finally:
        app.close()
    senders: dict[str, list[str]] = defaultdict(list)
    for record in pool_twilio.received_creates():
        senders[record["form"]["To"][0]].append(record["form"]["From"][0])
    assert len(senders) == 30 and all(len(got) == 2 for got in senders.values())
    assert all(got[0] == got[1] for got in senders.values())  # sticky
    assert {got[0] for got in senders.values()} == set(POOL)  # the pool is shared out


def test_a_messaging_service_is_sent_as_messaging_service_sid_without_from(
    database_url: str, pool_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    app = app_with(
        database_url,
        pool_twilio,
        clock,
        twilio_from_number=None,
        twilio_messaging_service_sid=SERVICE,
    )
    try:
        notice = app.notices.create(
            OPERATOR,
            NoticeRequest(
                location="cova",
                starts="2025-02-19 12:30",
                ends="2025-02-20 00:00",
                reason="inclement weather",
                channels=("sms",),
            ),
        ).notice
        run_once(app)
        states = {d.state for d in app.deliveries.log(OPERATOR, notice.id) if d.state != "skipped"}
    finally:
        app.close()
    forms = [record["form"] for record in pool_twilio.received_creates()]
    assert len(forms) == 30 and states == {"sent"}
    assert all(form["MessagingServiceSid"] == [SERVICE] and "From" not in form for form in forms)
