"""Provider faults through real boundaries: the twilio SDK over HTTP to FakeTwilio, smtplib to
FakeSmtp, SQLite and PostgreSQL. Every transient fault ends in exactly one message at the
server; every permanent one in ``failed`` with the provider's reason and a single attempt."""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.storage import deliveries as delivery_rows
from notifier.storage import reports
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import DROP, FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import email, patients_csv, phone
from tests.support.peers import peer_settings


@pytest.fixture
def fault_app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    settings = peer_settings(
        database_url,
        fake_twilio,
        fake_smtp,
        twilio_timeout_seconds=0.5,
        smtp_timeout_seconds=2.0,
        sms_rate_per_second=1000,
        email_rate_per_second=1000,
        max_attempts=6,
    )
    built = build_app(settings, clock=clock)
    built.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    yield built
    built.close()


def broadcast(app: App, patients: int, channels: str = "sms,email") -> int:
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(patients)))
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=tuple(channels.split(",")),
        ),
    ).notice
    app.fanout.fire_due()
    return notice.id


def settle(fake: FakeTwilio, timeout: float = 10.0) -> None:
    """Wait until the server has finished every request it received (a timed-out client does
    not wait for that), so a reconcile sees what the server really did."""
    deadline = time.monotonic() + timeout
    while any(r["outcome"] is None for r in fake.requests):
        assert time.monotonic() < deadline, "fake Twilio still busy"
        time.sleep(0.01)


def drain_until_final(app: App, fake: FakeTwilio, clock: FrozenClock, rounds: int = 12) -> int:
    """Tick the service, moving the frozen clock past every retry delay; return the ticks."""
    for tick in range(1, rounds + 1):
        run_once(app)
        settle(fake)
        with app.db.session() as s:
            if not delivery_rows.has_open_deliveries(s):
                return tick
        clock.advance(app.settings.retry_max_seconds)
    raise AssertionError("deliveries still open")


def by_address(app: App, notice_id: int) -> dict[str, object]:
    with app.db.session() as s:
        return {d.address: d for d in reports.delivery_log(s, reports.LogQuery(notice_id))}


def test_transient_twilio_faults_end_in_exactly_one_message_each(
    fault_app: App, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    fake_twilio.latency = (0.005, 0.02)
    faults = {
        1: {"status": 503, "code": 20503, "message": "Service Unavailable"},
        2: {"status": 500, "raw_body": "<html>oops</html>"},
        3: {"status": 429, "code": 20429, "message": "Too Many Requests", "retry_after": 45},
        4: {"delay_s": 1.0},  # answers after the client's 0.5 s timeout, but creates it
        5: {"drop": True},  # connection closed, nothing created
        6: {"drop_after_create": True},  # created, then the answer is lost
        7: {"delay_after_create_s": 1.0},  # created, answer too late
    }
    for i, response in faults.items():
        fake_twilio.fault(match={"to": phone(i)}, times=2 if i == 1 else 1, response=response)
    notice_id = broadcast(fault_app, 10, channels="sms")

    drain_until_final(fault_app, fake_twilio, clock)

    created = Counter(r["form"]["To"][0] for r in fake_twilio.received_creates())
    assert created == Counter(phone(i) for i in range(10))  # none lost, none twice
    log = by_address(fault_app, notice_id)
    assert {d.state for d in log.values()} == {"sent"}  # type: ignore[attr-defined]
    sids = set(fake_twilio.messages)
    assert {d.provider_id for d in log.values()} <= sids  # type: ignore[attr-defined]
    with fault_app.db.session() as s:
        ids = {d.address: d.id for d in reports.delivery_log(s, reports.LogQuery(notice_id))}
        events = {a: [(e.kind, e.code) for e in reports.events_for(s, [i])] for a, i in ids.items()}
    masked = {i: a for i in range(10) for a in ids if a.endswith(phone(i)[-4:])}
    assert events[masked[1]][1:] == [
        ("retry_scheduled", "20503"),
        ("retry_scheduled", "20503"),
        ("sent", None),
    ]
    assert events[masked[6]][1:] == [("retry_scheduled", "connection"), ("reconciled", None)]
    assert events[masked[4]][-1] == ("reconciled", None)
    assert events[masked[7]][-1] == ("reconciled", None)
    assert events[masked[5]][-1] == ("sent", None)


def test_retry_after_from_a_real_429_sets_the_next_attempt(
    fault_app: App, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    fake_twilio.fault(
        match={"to": phone(0)},
        times=1,
        response={"status": 429, "code": 20429, "message": "Too Many Requests", "retry_after": 45},
    )
    notice_id = broadcast(fault_app, 1, channels="sms")
    dispatcher = fault_app.dispatcher()
    dispatcher.drain()
    clock.advance(44)
    dispatcher.drain()  # not yet: Retry-After is a floor
    dispatcher.close()
    (delivery,) = by_address(fault_app, notice_id).values()
    assert (delivery.state, delivery.error_code) == ("pending", "20429")  # type: ignore[attr-defined]
    assert delivery.next_attempt_at >= clock.now() - timedelta(seconds=44) + timedelta(seconds=45)  # type: ignore[attr-defined]
    assert len([r for r in fake_twilio.requests if r["kind"] == "create"]) == 1
    clock.advance(2)
    drain_until_final(fault_app, fake_twilio, clock)
    assert len(fake_twilio.received_creates()) == 1


def test_permanent_failures_fail_with_the_providers_reason_and_are_not_retried(
    fault_app: App, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    fake_twilio.fault(
        match={"to": phone(0)},
        times=None,
        response={"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"},
    )
    fake_twilio.opt_out(phone(1))  # the real 21610 path
    fake_smtp.fault(
        match={"rcpt_regex": "patient2@"}, stage="rcpt", reply="550 5.1.1 User unknown", times=None
    )
    notice_id = broadcast(fault_app, 4)
    drain_until_final(fault_app, fake_twilio, clock)
    clock.advance(3600)
    drain_until_final(fault_app, fake_twilio, clock)

    attempts = Counter(r["form"]["To"][0] for r in fake_twilio.requests if r["kind"] == "create")
    assert attempts[phone(0)] == 1 and attempts[phone(1)] == 1
    with fault_app.db.session() as s:
        failed = {
            (d.channel, d.error_code, d.attempts): d.error_message
            for d in reports.delivery_log(s, reports.LogQuery(notice_id, "failed"))
        }
    assert set(failed) == {("sms", "21211", 1), ("sms", "21610", 1), ("email", "550", 1)}
    assert "Invalid 'To' Phone Number" in (failed[("sms", "21211", 1)] or "")
    assert "User unknown" in (failed[("email", "550", 1)] or "")
    assert len(fake_smtp.received_for(email(2))) == 0
    assert sorted(r for m in fake_smtp.messages for r in m.rcpt_tos) == [
        email(0),
        email(1),
        email(3),
    ]


def test_transient_smtp_replies_end_in_exactly_one_email_each(
    fault_app: App, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    fake_smtp.fault(match={"rcpt_regex": "patient0@"}, stage="rcpt", reply="451 4.3.0 Later")
    fake_smtp.fault(match={"rcpt_regex": "patient1@"}, stage="data", reply="421 4.7.0 Closing")
    fake_smtp.fault(match={"mail_from_regex": "."}, stage="mail", reply="451 4.4.5 Busy")
    fake_smtp.fault(match={"rcpt_regex": "patient3@"}, stage="data", reply=DROP)
    fake_smtp.fault(stage="connect", reply=None, delay_s=0.2)  # latency on one connection
    notice_id = broadcast(fault_app, 5, channels="email")
    drain_until_final(fault_app, fake_twilio, clock)

    received = Counter(r for m in fake_smtp.messages for r in m.rcpt_tos)
    assert received == Counter(email(i) for i in range(5))
    ids = {m.message["Message-ID"] for m in fake_smtp.messages}
    assert len(ids) == 5  # one stable Message-ID per delivery
    log = by_address(fault_app, notice_id)
    assert {d.state for d in log.values()} == {"sent"}  # type: ignore[attr-defined]
    assert sorted(d.attempts for d in log.values())[-1] >= 2  # type: ignore[attr-defined]


def test_the_sms_rate_limit_holds_at_the_server(
    database_url: str, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    rate = 40.0  # segments per second; each message is 2 segments, so 20 messages a second
    app = build_app(
        peer_settings(database_url, fake_twilio, None, sms_rate_per_second=rate), clock=clock
    )
    try:
        app.locations.save(OPERATOR, "cova", "COVA", "America/New_York", "Mon-Fri 08:00-17:00")
        broadcast(app, 60, channels="sms")
        dispatcher = app.dispatcher()
        dispatcher.drain()
        dispatcher.close()
    finally:
        app.close()
    times = sorted(r["time"] for r in fake_twilio.requests if r["kind"] == "create")
    assert len(times) == 60
    per_second = rate / 2
    burst = per_second  # the bucket holds one second's worth
    # 120 segments, 40 of them from the initial burst: at least 2 s of sending (without the
    # limit, 60 requests over these connections take a fraction of a second). Measured where
    # they arrive: a loaded machine delays a request between its slot and the server by up to
    # a few hundred milliseconds (the first of the burst most, as its connection opens), so
    # the span may look that much shorter, and one paced text may share a second with the
    # whole burst.
    jitter = 0.5
    assert times[-1] - times[0] >= (60 - burst) / per_second - jitter
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= per_second + burst + 1
