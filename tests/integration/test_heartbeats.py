"""Workers' heartbeats: a dead worker's claims are taken over seconds after its heartbeat goes
stale; a live worker's slow send is never taken over, however long it takes. Both databases,
a frozen clock moved by hand."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from notifier.bootstrap import App, build_app
from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.clock import FrozenClock
from notifier.runtime import run_until_idle
from notifier.storage import deliveries as delivery_rows
from notifier.storage.models import Worker
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel, accept
from tests.support.patients import PATIENTS_CSV
from tests.support.peers import peer_settings
from tests.support.records import event_kinds, events
from tests.support.web import save_cova


@pytest.fixture
def queued(app: App, cova: str) -> int:
    """The reference notice fanned out: two SMS deliveries pending."""
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    )
    app.fanout.fire_due()
    return notice.id


def claim_all(app: App, worker: str, lease_seconds: float = 120) -> list[int]:
    now = app.clock.now()
    with app.db.session() as s:
        return delivery_rows.claim(
            s, worker, ["sms"], now, now + timedelta(seconds=lease_seconds), 10
        )


def states(app: App, notice_id: int) -> list[str]:
    return sorted(d.state for d in app.deliveries.log(OPERATOR, notice_id) if d.state != "skipped")


def test_a_dead_workers_claims_are_taken_over_once_its_heartbeat_is_stale(
    app: App, queued: int, clock: FrozenClock
) -> None:
    dead = app.workers("host:1:dead", "worker")
    dead.beat()
    ids = claim_all(app, "host:1:dead")
    survivor = app.workers("host:2:alive", "worker")
    survivor.tick()
    assert states(app, queued) == ["sending", "sending"]  # a fresh heartbeat: alive
    clock.advance(app.settings.worker_timeout_seconds - 1)
    survivor.tick()
    assert states(app, queued) == ["sending", "sending"]
    clock.advance(2)  # past the timeout, long before the 120 s lease
    survivor.tick()
    assert states(app, queued) == ["pending", "pending"]
    for delivery_id in ids:
        kind, state, _ = events(app, delivery_id)[-1]
        assert (kind, state) == ("worker_lost", "pending")
    with app.db.session() as s:
        assert s.scalars(select(Worker.id)).all() == ["host:2:alive"]  # the dead one forgotten
    channel = FakeChannel()
    app.dispatcher({"sms": channel}, "host:2:alive").drain()
    assert sorted(channel.reconcile_checks) == sorted(ids)  # asked the provider first
    assert states(app, queued) == ["sent", "sent"]
    log = app.deliveries.log(OPERATOR, queued, "sent")
    assert all(d.attempts == 2 for d in log)  # the interrupted attempt counts


def test_a_live_worker_extends_its_leases_so_a_slow_send_is_never_taken_over(
    app: App, queued: int, clock: FrozenClock
) -> None:
    release = threading.Event()

    def slow(message: OutgoingMessage, call: int) -> SendResult | ChannelError:
        release.wait(30)
        return accept(message, call)

    channel = FakeChannel(slow)
    dispatcher = app.dispatcher({"sms": channel}, "host:1:slow")
    own = app.workers(dispatcher.worker_id, "worker", dispatcher.held)
    own.beat()
    sending = threading.Thread(target=dispatcher.drain)
    sending.start()
    try:
        deadline = time.monotonic() + 10
        while len(channel.sent) < 2:
            assert time.monotonic() < deadline, "the sends did not start"
            time.sleep(0.01)
        other = app.workers("host:2:other", "worker")
        for _ in range(5):  # 5 × 60 s: far past the 120 s lease the claim started with
            clock.advance(60)
            own.tick()
            other.tick()
        assert states(app, queued) == ["sending", "sending"]
    finally:
        release.set()
        sending.join(30)
    assert states(app, queued) == ["sent", "sent"]
    assert len(channel.sent) == 2
    for delivery in app.deliveries.log(OPERATOR, queued, "sent"):
        assert "worker_lost" not in event_kinds(app, delivery.id)
        assert "lease_expired" not in event_kinds(app, delivery.id)


def test_a_worker_never_takes_over_its_own_claims(
    app: App, queued: int, clock: FrozenClock
) -> None:
    worker = app.workers("host:1:me", "worker")
    worker.beat()
    claim_all(app, "host:1:me", lease_seconds=5)
    clock.advance(30)  # its own lease ran out (a missed extension), it is still working
    worker.tick()
    assert states(app, queued) == ["sending", "sending"]


def test_a_worker_that_could_not_beat_takes_nothing_over(
    app: App, queued: int, clock: FrozenClock
) -> None:
    """If this process could not beat either, the database was blocked, not the others dead."""
    app.workers("host:1:other", "worker").beat()
    claim_all(app, "host:1:other")
    blocked = app.workers("host:2:blocked", "worker")
    blocked.beat()
    clock.advance(60)
    assert blocked.take_over() == 0  # its own last beat is a minute old
    assert states(app, queued) == ["sending", "sending"]
    blocked.beat()
    assert blocked.take_over() == 2


def test_a_worker_beating_right_now_is_not_taken_for_dead_nor_deadlocked(
    postgres_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    """PostgreSQL, several processes: a worker whose heartbeat looks stale but whose beat is
    under way (its row locked) is alive. Taking it for dead would lock its deliveries, then
    wait for its row, while its beat holds the row and waits for those deliveries."""
    app = build_app(peer_settings(postgres_url, fake_twilio, fake_smtp), clock=clock)
    try:
        save_cova(app)
        app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
        queued = app.notices.create(
            OPERATOR, NoticeRequest("cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice")
        ).notice.id
        app.fanout.fire_due()
        app.workers("host:1:slow", "worker").beat()
        claim_all(app, "host:1:slow")
        survivor = app.workers("host:2:alive", "worker")
        clock.advance(app.settings.worker_timeout_seconds + 1)
        survivor.beat()
        taken: list[int] = []
        with app.db.session() as beating:  # the slow worker's beat, under way
            beating.execute(
                update(Worker)
                .where(Worker.id == "host:1:slow")
                .values(heartbeat_at=Worker.heartbeat_at)
            )
            other = threading.Thread(target=lambda: taken.append(survivor.take_over()))
            other.start()
            other.join(10)
            blocked = other.is_alive()
            beating.rollback()  # let a blocked take-over go on, so the thread ends
        other.join(30)
        assert not blocked, "the take-over waited for a worker that was beating"
        assert taken == [0]
        assert {d.state for d in app.deliveries.log(OPERATOR, queued, channel="sms")} <= {
            "sending",
            "skipped",
        }
    finally:
        app.close()


def test_a_claim_whose_lease_ran_out_is_taken_over_when_its_worker_has_no_heartbeat(
    app: App, queued: int, clock: FrozenClock
) -> None:
    """A worker from before heartbeats (or one already forgotten): its lease is the backstop."""
    ids = claim_all(app, "old-worker", lease_seconds=60)
    survivor = app.workers("host:2:alive", "worker")
    survivor.tick()
    assert states(app, queued) == ["sending", "sending"]
    clock.advance(61)
    survivor.tick()
    assert [event_kinds(app, i)[-1] for i in ids] == ["lease_expired", "lease_expired"]


def test_the_running_service_signs_its_worker_off_when_it_stops(app: App, queued: int) -> None:
    assert run_until_idle(app, {"sms": FakeChannel()}, timeout=30)
    assert states(app, queued) == ["sent", "sent"]
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Worker)) == 0
