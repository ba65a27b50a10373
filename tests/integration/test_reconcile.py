"""Reconciliation: the final status callbacks are lost on the way (the sandbox drops them), so
the texts stay "sent"; once they are older than NOTIFIER_RECEIPTS_RECONCILE_AFTER_MINUTES the
provider is asked through the real twilio SDK (Messages API) and the answers are applied like
callbacks: delivered, undelivered with the carrier's code, and a late callback changes nothing.
"""

from __future__ import annotations

import io
from collections import Counter

from notifier.channels.sms import SmsChannel
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import patients_csv
from tests.support.records import events
from tests.support.web import Web

MARIA = "+15405550111"


def texts(web: Web) -> dict[str, str]:
    """State of each text by its provider id."""
    return {
        d.provider_id or "": d.state
        for d in web.app.deliveries.log(OPERATOR, channel="sms", state=None)
        if d.provider_id
    }


def test_deliveries_whose_callbacks_were_lost_are_brought_up_to_date_from_the_provider(
    web: Web, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    fake_twilio.lose_callbacks("delivered", "undelivered")
    fake_twilio.fault({"to": MARIA}, response={"fate": "undelivered", "error_code": 30003})
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    )
    run_once(web.app)
    fake_twilio.flush(timeout=20)
    web.settle()  # the "sent" callbacks did arrive
    before = texts(web)
    assert set(before.values()) == {"sent"} and len(before) == 2
    lost = [c for c in fake_twilio.callbacks if c["error"]]
    assert sorted(c["message_status"] for c in lost) == ["delivered", "undelivered"]

    reconciler = web.app.reconciler()
    try:
        clock.advance(seconds=29 * 60)
        assert reconciler.run() == 0  # not stale yet: a callback may still come
        clock.advance(seconds=2 * 60)
        assert reconciler.run() == 2
        fetched = [r["path"] for r in fake_twilio.requests if r["method"] == "GET"]
        assert sorted(p.rsplit("/", 1)[1] for p in fetched) == sorted(f"{s}.json" for s in before)
        assert web.settle() == {"applied": 2}
        assert reconciler.run() == 0  # asked just now: not again before another period
    finally:
        for channel in reconciler.channels.values():
            channel.close()

    after = {
        d.provider_id: d for d in web.app.deliveries.log(OPERATOR, channel="sms") if d.provider_id
    }
    assert Counter(d.state for d in after.values()) == {"delivered": 1, "undelivered": 1}
    undelivered = next(d for d in after.values() if d.state == "undelivered")
    assert undelivered.error_code == "30003"
    assert events(web.app, undelivered.id)[-1] == ("status_undelivered", "undelivered", "30003")

    # The lost callback turns up after all: the same report, stored once, changes nothing.
    sid = undelivered.provider_id or ""
    late = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert web.signed_post("/webhooks/twilio/status", late).status_code == 200
    assert web.settle() == {}
    assert len([e for e in events(web.app, undelivered.id) if e[0].startswith("status_")]) == 1


def test_many_lost_callbacks_are_learned_by_listing_the_days_they_were_sent_on(
    web: Web, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    """Past ``PAGE_WORTH`` stale texts the provider is asked by listing their days (1,000 a
    page) instead of one fetch per text; one it does not list is still fetched on its own."""
    fake_twilio.advance(clock.now().timestamp() - fake_twilio.now())  # Twilio's day is ours
    fake_twilio.lose_callbacks("delivered", "undelivered")
    web.app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(30, with_email=False)))
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms",),
        ),
    )
    while run_once(web.app):
        pass
    fake_twilio.flush(timeout=30)
    web.settle()
    before = texts(web)
    assert set(before.values()) == {"sent"} and len(before) == 32
    reconciler = web.app.reconciler()
    sms = reconciler.channels["sms"]
    assert isinstance(sms, SmsChannel)
    gone = sorted(before)[0]
    sms.client.messages(gone).delete()  # Twilio no longer has it: neither listed nor fetched
    try:
        clock.advance(seconds=31 * 60)
        assert reconciler.run() == 31
    finally:
        for channel in reconciler.channels.values():
            channel.close()
    asked = [r for r in fake_twilio.requests if r["method"] == "GET"]
    listed = [r for r in asked if r["path"].endswith("/Messages.json")]
    fetched = [r["path"].rsplit("/", 1)[1] for r in asked if r not in listed]
    assert len(listed) == 1 and fetched == [f"{gone}.json"]
    assert web.settle() == {"applied": 31}
    after = texts(web)
    assert after.pop(gone) == "sent"  # asked again a period later, until the window closes
    assert set(after.values()) == {"delivered"}
