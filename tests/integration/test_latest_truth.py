"""Every patient ends with the latest truth: an update that races with sending, and originals
held for quiet hours and then withdrawn. Both databases; the real fan-out and dispatcher; the
provider is a channel at our seam whose sends the test lets through one by one."""

from __future__ import annotations

import io
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import pytest

from notifier.bootstrap import App, build_app
from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.channels.email import EmailChannel
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel, accept
from tests.support.patients import HEADER, PATIENTS_CSV, phone
from tests.support.peers import NEW_YORK, peer_settings

TWELVE = "\n".join(
    [HEADER] + [f"t{i},Pat{i},Test,{phone(300 + i)},,en,cova,yes,no" for i in range(12)]
)


def by_address(channel: FakeChannel) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = defaultdict(list)
    for message in channel.accepted_messages():
        texts[message.to].append(message.text)
    return texts


class Gate:
    """Sends wait here until the test lets them through, one by one."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.passes = threading.Semaphore(0)

    def script(self, message: OutgoingMessage, call: int) -> SendResult | ChannelError:
        self.entered.release()
        assert self.passes.acquire(timeout=30), "the test never let this send through"
        return accept(message, call)

    def let_through(self, count: int) -> None:
        for _ in range(count):
            self.passes.release()

    def wait_for_sends(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=30), "the dispatcher did not send"


@pytest.fixture
def slow_app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = build_app(
        peer_settings(
            database_url, fake_twilio, fake_smtp, dispatch_concurrency=2, last_look_seconds=0
        ),
        clock=clock,
    )
    built.locations.save(OPERATOR, "cova", "COVA", "America/New_York", "Mon-Fri 08:00-17:00")
    yield built
    built.close()


def test_an_update_during_sending_leaves_every_patient_with_the_latest_version(
    slow_app: App,
) -> None:
    """The reported race: twelve texts going out, five through, the manager shortens the
    closure. Messages already at the provider are corrected; those not sent yet are withdrawn
    and replaced by the new version, plainly; nobody keeps the old reopening time."""
    app = slow_app
    app.patients.import_patients(OPERATOR, io.StringIO(TWELVE))
    original = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-20 08:00",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms",),
        ),
    ).id
    app.fanout.fire_due()
    gate = Gate()
    channel = FakeChannel(gate.script)
    dispatcher = app.dispatcher({"sms": channel}, "w1")
    sending = threading.Thread(target=dispatcher.drain)
    sending.start()
    try:
        gate.wait_for_sends(2)
        gate.let_through(5)
        gate.wait_for_sends(5)  # 5 went through; 2 more are at the provider right now
        update = app.notices.update(
            OPERATOR, original, ends="2025-02-20 12:00", reason="a shorter storm"
        )
        gate.let_through(100)
    finally:
        sending.join(30)
    run_once(app, {"sms": channel}, "w2")  # the new version (and anything it waited for)

    texts = by_address(channel)
    assert len(texts) == 12  # everyone heard of the closure
    for address, received in texts.items():
        last = received[-1]
        assert "Due to a shorter storm" in last, (address, received)
        assert "opening late Thursday, 2/20/2025 at 12:00 PM" in last
        told_the_original = any("Due to ice" in text for text in received)
        assert last.startswith("UPDATE:") is told_the_original
        assert len(received) == (2 if told_the_original else 1)
    originals = sum(1 for received in texts.values() if "Due to ice" in received[0])
    assert originals == 7  # 5 through, 2 at the provider during the update; 5 withdrawn
    withdrawn = [d for d in app.deliveries.log(OPERATOR, original) if d.state == "cancelled"]
    assert len(withdrawn) == 12 - originals
    assert app.notices.get(OPERATOR, update.id).status == "active"


def test_originals_held_for_quiet_hours_are_replaced_not_lost(
    app: App, cova: str, clock: FrozenClock
) -> None:
    """The reported silence: queued at 22:30 (not urgent: the closure is the day after next),
    texts held for quiet hours, emails sent; corrected at 23:00. At 08:00 every phone gets the
    latest version plainly (it never heard the first), every email address the correction."""
    clock.set(datetime(2025, 2, 18, 22, 30, tzinfo=NEW_YORK))
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    original = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-20 08:00",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms", "email"),
        ),
    ).id
    texts, emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    run_once(app, {"sms": texts, "email": emails})
    assert texts.sent == [] and len(emails.sent) == 3  # texts held, emails out
    clock.set(datetime(2025, 2, 18, 23, 0, tzinfo=NEW_YORK))
    update = app.notices.update(
        OPERATOR, original, ends="2025-02-20 12:00", reason="a shorter storm"
    )
    run_once(app, {"sms": texts, "email": emails})
    assert texts.sent == []  # still quiet hours
    clock.set(datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK))
    run_once(app, {"sms": texts, "email": emails})

    assert sorted(m.to for m in texts.sent) == ["+15405550111", "+15405550112"]
    assert all(m.text.startswith("Due to a shorter storm") for m in texts.sent)
    corrections = [m for m in emails.sent if m.subject and m.subject.startswith("Update:")]
    assert sorted(m.to for m in corrections) == [
        "ana@example.org",
        "jane@example.org",
        "maria@example.org",
    ]
    held = app.deliveries.log(OPERATOR, original, channel="sms", state="cancelled")
    assert len(held) == 2 and {d.error for d in held} == {f"superseded by notice {update.id}"}
