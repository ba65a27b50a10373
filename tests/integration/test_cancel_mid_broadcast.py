"""A cancel while a broadcast is going out stops every provider request not yet made: the texts
still waiting are withdrawn by the cancel's own transaction, the ones a sender already holds
behind the rate limit by the last look just before the request. Through the real twilio SDK to
the Twilio-compatible sandbox; the verdict is what the sandbox received after the cancel was
committed (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from notifier.clock import FrozenClock
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.web import Web, add_cova, served

SENDERS = 4


TEXTS_PER_SECOND = 2  # two segments each at 4 segments a second


@pytest.fixture(params=[0.0, 0.25], ids=["look-every-time", "look-default"])
def last_look(request: pytest.FixtureRequest) -> float:
    return float(request.param)


@pytest.fixture
def slow_web(
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
    last_look: float,
) -> Iterator[Web]:
    """Texts at 2 a second through four senders: a broadcast of 30 lasts about fifteen
    seconds. With NOTIFIER_LAST_LOOK_SECONDS=0 the last look asks the database before every
    request, so what may still go after the cancel is only what a sender had already looked
    at: at most one request per sender. With the default 0.25 s, a look may be that stale:
    add what the rate lets out in 0.25 s."""
    with served(
        database_url,
        fake_twilio,
        fake_smtp,
        clock,
        sms_rate_per_second=4.0,
        dispatch_concurrency=SENDERS,
        last_look_seconds=last_look,
    ) as web:
        add_cova(web.app)
        web.app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(27, with_email=False)))
        yield web


def test_a_cancel_mid_broadcast_stops_every_request_not_yet_made(
    slow_web: Web, fake_twilio: FakeTwilio, last_look: float
) -> None:
    web = slow_web
    notice = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    ).notice
    web.app.fanout.fire_due()
    dispatcher = web.app.dispatcher()
    sending = threading.Thread(target=dispatcher.drain)
    sending.start()
    try:
        deadline = time.monotonic() + 20
        while len(fake_twilio.received_creates()) < 3:
            assert time.monotonic() < deadline, "the broadcast did not start"
            time.sleep(0.02)
        web.app.notices.cancel(OPERATOR, notice.id)  # returns once its transaction is committed
        at_commit = len(fake_twilio.received_creates())
    finally:
        sending.join(timeout=60)
        dispatcher.close()
    time.sleep(0.5)  # anything still on the wire lands
    total = len(fake_twilio.received_creates())
    after_commit = total - at_commit
    print(f"\nlast look {last_look} s: at the cancel commit {at_commit}, after it {after_commit}")
    # Only requests already past their last look (and, with a stale look, what the rate let
    # out meanwhile).
    assert after_commit <= SENDERS + math.ceil(last_look * TEXTS_PER_SECOND)
    states = Counter(d.state for d in web.app.deliveries.log(OPERATOR, notice.id))
    assert states["sent"] == total  # every request the sandbox got is recorded as sent
    assert states["cancelled"] >= 1 and states["pending"] == states["sending"] == 0
    assert total < sum(states.values()) - states["skipped"]  # the cancel stopped the rest
