"""The dispatcher's decisions, with a scripted channel at our own seam and a real database."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from notifier.bootstrap import App
from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.clock import FrozenClock
from notifier.delivery.dispatcher import Dispatcher
from notifier.storage import deliveries as delivery_rows
from notifier.storage import reports
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import PATIENTS_CSV

Script = Callable[[OutgoingMessage, int], SendResult | ChannelError]


@pytest.fixture
def queued(app: App, cova: str) -> int:
    """The reference notice fanned out: two SMS deliveries pending (email not dispatched here)."""
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
    ).notice
    app.fanout.fire_due()
    return notice.id


def dispatcher(app: App, channel: FakeChannel, worker: str = "w1") -> Dispatcher:
    return app.dispatcher({"sms": channel}, worker)


def states(app: App, notice_id: int) -> list[str]:
    return sorted(d.state for d in app.deliveries.log(OPERATOR, notice_id) if d.state != "skipped")


def test_every_pending_delivery_is_sent_once_with_its_provider_id(app: App, queued: int) -> None:
    channel = FakeChannel()
    assert dispatcher(app, channel).drain() == 2
    assert states(app, queued) == ["sent", "sent"]
    assert sorted(m.to for m in channel.sent) == ["+15405550111", "+15405550112"]
    assert all("closing early Wednesday, 2/19/2025 at 12:30 PM" in m.text for m in channel.sent)
    log = app.deliveries.log(OPERATOR, queued, "sent")
    assert {d.provider_id for d in log} == {r.provider_id for r in channel.accepted.values()}
    assert all(d.attempts == 1 and d.segments == 2 for d in log)
    assert dispatcher(app, channel).drain() == 0  # nothing is sent twice


def test_permanent_failures_are_failed_with_the_providers_reason_and_not_retried(
    app: App, queued: int, clock: FrozenClock
) -> None:
    channel = FakeChannel(
        lambda m, n: ChannelError(
            "Twilio refused (21211): invalid To", code="21211", permanent=True
        )
    )
    dispatcher(app, channel).drain()
    clock.advance(3600)
    dispatcher(app, channel).drain()
    assert len(channel.sent) == 2
    failed = app.deliveries.log(OPERATOR, queued, "failed")
    assert [(d.error_code, d.attempts) for d in failed] == [("21211", 1), ("21211", 1)]
    assert all("invalid To" in (d.error or "") for d in failed)


def test_transient_failures_retry_with_backoff_and_every_attempt_is_logged(
    app: App, queued: int, clock: FrozenClock
) -> None:
    channel = FakeChannel(
        lambda m, n: (
            ChannelError("Twilio HTTP 429", code="20429", retry_after=30)
            if n <= 2
            else SendResult(f"SM{n:032d}")
        )
    )
    d = dispatcher(app, channel)
    d.drain()
    assert states(app, queued) == ["pending", "pending"]
    d.drain()
    assert len(channel.sent) == 2  # not retried before its time (Retry-After: 30 s)
    clock.advance(31)
    d.drain()
    assert states(app, queued) == ["sent", "sent"]
    with app.db.session() as s:
        ids = [x.id for x in reports.delivery_log(s, reports.LogQuery(queued, "sent"))]
        kinds = [(e.kind, e.code) for e in reports.events_for(s, ids[:1])]
    assert kinds == [("queued", None), ("retry_scheduled", "20429"), ("sent", None)]


def test_retries_stop_at_the_configured_ceiling(app: App, queued: int, clock: FrozenClock) -> None:
    app.settings.max_attempts = 5
    channel = FakeChannel(lambda m, n: ChannelError("SMTP 451 try later", code="451"))
    d = dispatcher(app, channel)
    for _ in range(5 + 2):
        d.drain()
        clock.advance(app.settings.retry_max_seconds)
    failed = app.deliveries.log(OPERATOR, queued, "failed")
    assert len(failed) == 2
    assert all(f.attempts == 5 for f in failed)
    assert all("gave up after 5 attempts" in (f.error or "") for f in failed)


def test_without_a_ceiling_a_transient_failure_is_retried_while_the_message_is_useful(
    app: App, queued: int, clock: FrozenClock
) -> None:
    app.settings.breaker_failures = 0  # this provider is not down, just unlucky
    channel = FakeChannel(
        lambda m, n: ChannelError("HTTP 503", code="503") if n <= 24 else SendResult(f"SM{n:032d}")
    )
    d = dispatcher(app, channel)
    for _ in range(14):  # 12 failed attempts each, far past the old fixed limit of 5
        d.drain()
        clock.advance(app.settings.retry_max_seconds)
    sent = app.deliveries.log(OPERATOR, queued, "sent")
    assert [d.attempts for d in sent] == [13, 13]
    assert app.deliveries.log(OPERATOR, queued, "failed") == []


def test_no_retry_is_scheduled_after_the_closure_has_ended(
    app: App, queued: int, clock: FrozenClock
) -> None:
    clock.set(datetime.fromisoformat("2025-02-20T23:59:59.600-05:00"))
    channel = FakeChannel(lambda m, n: ChannelError("HTTP 503", code="503"))
    dispatcher(app, channel).drain()
    expired = app.deliveries.log(OPERATOR, queued, "expired")
    assert len(expired) == 2
    assert all("closure ends before the next retry" in (e.error or "") for e in expired)


def test_a_closure_that_ended_while_queued_expires_instead_of_sending(
    app: App, queued: int, clock: FrozenClock
) -> None:
    clock.advance(4 * 24 * 3600)
    channel = FakeChannel()
    dispatcher(app, channel).drain()
    assert channel.sent == []
    assert states(app, queued) == ["expired", "expired"]


def test_a_worker_that_died_mid_send_is_reconciled_not_resent(
    app: App, queued: int, clock: FrozenClock
) -> None:
    channel = FakeChannel()
    # Worker "dead" claims both, hands one to the provider, then dies before recording anything.
    now = clock.now()
    with app.db.session() as s:
        ids = delivery_rows.claim(s, "dead", ["sms"], now, now + timedelta(seconds=60), 10)
    with app.db.session() as s:
        first = delivery_rows.deliveries_with_context(s, ids)[0]
        channel.send(OutgoingMessage(first.id, first.address, "text"))
    clock.advance(61)
    app.workers("survivor", "worker").tick()  # beats, then takes over what the dead one held
    dispatcher(app, channel, "survivor").drain()
    assert sorted(channel.reconcile_checks) == sorted(ids)
    assert len(channel.sent) == 2  # one by the dead worker, one resend of the one it never sent
    assert states(app, queued) == ["sent", "sent"]
    with app.db.session() as s:
        events = [e.kind for e in reports.events_for(s, [first.id])]
    assert events == ["queued", "lease_expired", "reconciled"]


def test_an_ambiguous_failure_is_checked_with_the_provider_before_resending(
    app: App, queued: int, clock: FrozenClock
) -> None:
    accepted_then_timed_out: list[int] = []

    def script(m: OutgoingMessage, n: int) -> SendResult | ChannelError:
        if m.delivery_id not in accepted_then_timed_out:
            accepted_then_timed_out.append(m.delivery_id)
            channel.accepted[m.delivery_id] = SendResult(f"SM{m.delivery_id:032d}")
            return ChannelError("Twilio did not answer in time", code="timeout", ambiguous=True)
        return SendResult("SHOULD-NOT-HAPPEN")

    channel = FakeChannel(script)
    d = dispatcher(app, channel)
    d.drain()
    clock.advance(app.settings.retry_max_seconds)
    d.drain()
    assert len(channel.sent) == 2
    sent = app.deliveries.log(OPERATOR, queued, "sent")
    assert all(x.provider_id and x.provider_id.startswith("SM0") for x in sent)


def test_a_cancelled_notice_sends_nothing_more(app: App, queued: int) -> None:
    app.notices.cancel(OPERATOR, queued)
    channel = FakeChannel()
    dispatcher(app, channel).drain()
    assert channel.sent == []
    assert states(app, queued) == ["cancelled", "cancelled"]


def test_two_dispatchers_never_send_the_same_delivery(app: App, queued: int) -> None:
    channel = FakeChannel()
    first, second = dispatcher(app, channel, "a"), dispatcher(app, channel, "b")
    first.drain()
    second.drain()
    assert len(channel.sent) == len({m.delivery_id for m in channel.sent}) == 2
