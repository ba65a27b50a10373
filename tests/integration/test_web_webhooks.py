"""Twilio webhooks over real HTTP: signatures, status ordering, keywords, 21610, end to end."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from notifier.clock import FrozenClock
from notifier.domain.deliveries import Report
from notifier.runtime import run_once
from notifier.storage.models import Delivery, Receipt
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.records import events, ledger, opted_out
from tests.support.web import Web, add_cova, broadcast_sms, new_message_sid, served

MARIA = "+15405550111"
SMITHS = "+15405550112"  # John and Jane share it


@pytest.fixture
def sent(web: Web) -> dict[str, int]:
    """The reference notice sent by SMS: MessageSid → delivery id."""
    channel = FakeChannel()
    notice_id = broadcast_sms(web.app, channel)
    log = web.app.deliveries.log(OPERATOR, notice_id, "sent")
    assert len(log) == 2
    return {d.provider_id: d.id for d in log if d.provider_id}


def status(sid: str, value: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": value, "SmsStatus": value} | extra


def state_of(web: Web, delivery_id: int) -> str:
    return next(d.state for d in web.app.deliveries.log(OPERATOR) if d.id == delivery_id)


def test_health_and_readiness(web: Web) -> None:
    assert web.client.get("/healthz").json() == {"status": "ok"}
    assert web.client.get("/readyz").json() == {"status": "ok"}


def test_a_genuine_status_callback_marks_the_delivery_delivered(
    web: Web, sent: dict[str, int]
) -> None:
    sid, delivery = next(iter(sent.items()))
    response = web.signed_post("/webhooks/twilio/status", status(sid, "delivered"))
    assert response.status_code == 200
    assert state_of(web, delivery) == "sent"  # stored, not applied yet
    assert web.settle() == {"applied": 1}
    assert state_of(web, delivery) == "delivered"
    assert events(web.app, delivery)[-1] == ("status_delivered", "delivered", None)


@pytest.mark.parametrize("signature", ["missing", "wrong token", "tampered"])
def test_an_unsigned_or_forged_callback_is_refused_and_changes_nothing(
    web: Web, sent: dict[str, int], signature: str
) -> None:
    sid, delivery = next(iter(sent.items()))
    before = events(web.app, delivery)
    params = status(sid, "undelivered", ErrorCode="30007")
    if signature == "missing":
        response = web.client.post("/webhooks/twilio/status", data=params)
    elif signature == "wrong token":
        response = web.signed_post("/webhooks/twilio/status", params, token="0" * 32)
    else:
        url = web.server.url + "/webhooks/twilio/status"
        good = RequestValidator(web.twilio.auth_token).compute_signature(
            url, status(sid, "delivered")
        )
        response = web.client.post(
            "/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": good}
        )
    assert response.status_code == 403
    assert web.settle() == {}
    assert state_of(web, delivery) == "sent"
    assert events(web.app, delivery) == before


def test_out_of_order_and_repeated_callbacks_never_move_a_state_backwards(
    web: Web, sent: dict[str, int]
) -> None:
    sid, delivery = next(iter(sent.items()))
    for value in ("delivered", "delivered", "sent", "queued", "sending", "undelivered"):
        assert web.signed_post("/webhooks/twilio/status", status(sid, value)).status_code == 200
        web.settle()
    assert state_of(web, delivery) == "delivered"
    kinds = [kind for kind, _, _ in events(web.app, delivery)]
    # one change, the duplicate is silent, the late "sent" and conflicting one are logged
    assert kinds[-3:] == ["status_delivered", "status_ignored", "status_ignored"]
    assert kinds.count("status_delivered") == 1


@pytest.mark.parametrize("shape", ["signed without the port", "a field twice", "query string"])
def test_a_genuine_callback_the_fast_lane_hands_on_is_still_taken(
    web: Web, sent: dict[str, int], shape: str
) -> None:
    """The fast lane (notifier.web.status_lane) takes only plain forms signed for the URL as
    configured; the routed endpoint takes the genuine rest, as the SDK's validator allows."""
    sid, delivery = next(iter(sent.items()))
    params: dict[str, Any] = status(sid, "delivered")
    if shape == "a field twice":
        params["Note"] = ["a", "b"]
    path = "/webhooks/twilio/status" + ("?attempt=2" if shape == "query string" else "")
    url = web.server.url + path
    if shape == "signed without the port":
        url = url.replace(f":{web.server.port}", "")
    pairs = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    signed = ImmutableMultiDict(pairs)  # the SDK reads repeated fields with getlist
    signature = RequestValidator(web.twilio.auth_token).compute_signature(url, signed)
    response = web.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    assert web.settle() == {"applied": 1}
    assert state_of(web, delivery) == "delivered"


def test_undelivered_records_the_carrier_error_code(web: Web, sent: dict[str, int]) -> None:
    sid, delivery = next(iter(sent.items()))
    web.signed_post("/webhooks/twilio/status", status(sid, "sent"))  # a duplicate of our state
    web.signed_post(
        "/webhooks/twilio/status",
        status(sid, "undelivered", ErrorCode="30007", ErrorMessage="Carrier violation"),
    )
    assert web.settle() == {"duplicate": 1, "applied": 1}
    log = next(d for d in web.app.deliveries.log(OPERATOR) if d.id == delivery)
    assert (log.state, log.error_code, log.error) == ("undelivered", "30007", "Carrier violation")
    assert events(web.app, delivery)[-1] == ("status_undelivered", "undelivered", "30007")


def test_a_callback_for_an_unknown_message_is_acknowledged_and_given_up_on_later(
    web: Web, clock: FrozenClock
) -> None:
    response = web.signed_post("/webhooks/twilio/status", status("SM" + "f" * 32, "delivered"))
    assert response.status_code == 200
    assert web.settle() == {"waiting": 1}  # the send's own commit may not have landed yet
    clock.advance(seconds=61)
    assert web.settle() == {"unknown_sid": 1}
    assert web.app.deliveries.receipts_waiting() == 0


def test_a_callback_that_overtakes_the_send_is_applied_once_the_send_is_recorded(
    web: Web, sent: dict[str, int], clock: FrozenClock
) -> None:
    sid = "SM" + "e" * 32
    web.signed_post("/webhooks/twilio/status", status(sid, "delivered"))
    assert web.settle() == {"waiting": 1}
    delivery = next(iter(sent.values()))
    with web.app.db.session() as s:  # the dispatcher's commit of the send lands only now
        s.get(Delivery, delivery).provider_id = sid  # type: ignore[union-attr]
    clock.advance(seconds=2)
    assert web.settle() == {"applied": 1}
    assert state_of(web, delivery) == "delivered"


@pytest.mark.parametrize(
    ("body", "out"),
    [
        ("STOP", True),
        (" stop. ", True),
        ("Unsubscribe", True),
        ("quit!", True),
        ("OPTOUT", True),
        ("Stop please", False),
        ("see you friday", False),
        ("HELP", False),
    ],
)
def test_opt_out_keywords_opt_the_number_out(web: Web, body: str, out: bool) -> None:
    code, _ = web.inbound(body, SMITHS)
    assert code == 200
    assert opted_out(web.app, "sms", SMITHS) is out


def test_stop_opts_out_every_patient_with_that_phone_and_start_opts_back_in(
    web: Web, clock: FrozenClock
) -> None:
    web.inbound("STOP", SMITHS)
    entries = ledger(web.app, "sms", SMITHS)
    assert [(src, old, new) for src, old, new, _ in entries] == [
        ("keyword", "opted_in", "opted_out")
    ] * 2  # John and Jane: one ledger row each
    assert len({pid for *_, pid in entries}) == 2
    web.inbound("STOP", SMITHS)  # again: nothing changes, nothing is added
    assert len(ledger(web.app, "sms", SMITHS)) == 2

    channel = FakeChannel()
    notice_id = broadcast_sms(web.app, channel)
    assert [m.to for m in channel.sent] == [MARIA]
    skipped = [d for d in web.app.deliveries.log(OPERATOR, notice_id) if d.state == "skipped"]
    assert "opted out" in {d.error for d in skipped}

    web.inbound("start", SMITHS)
    assert not opted_out(web.app, "sms", SMITHS)
    assert ledger(web.app, "sms", SMITHS)[-1][:3] == ("keyword", "opted_out", "opted_in")


def test_help_answers_with_who_we_are_how_to_stop_and_a_phone(web: Web) -> None:
    code, twiml = web.inbound("help", SMITHS)
    assert code == 200
    assert twiml.startswith("<?xml") and "<Message>" in twiml
    for wanted in ("COVA Spine and Pain Center", "closure alerts", "STOP", "(540) 555-0100"):
        assert wanted in twiml
    assert not opted_out(web.app, "sms", SMITHS)


def test_an_unsigned_inbound_stop_is_refused(web: Web) -> None:
    response = web.client.post(
        "/webhooks/twilio/inbound", data={"From": SMITHS, "Body": "STOP", "To": "+15005550006"}
    )
    assert response.status_code == 403
    assert not opted_out(web.app, "sms", SMITHS)


def test_a_send_refused_with_21610_records_the_opt_out(web: Web) -> None:
    web.twilio.opt_out(MARIA)  # Maria texted STOP to Twilio before we heard of it
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
    failed = web.app.deliveries.log(OPERATOR, state="failed")
    assert [d.error_code for d in failed] == ["21610"]
    assert opted_out(web.app, "sms", MARIA)
    assert [e[:3] for e in ledger(web.app, "sms", MARIA)] == [("21610", "opted_in", "opted_out")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_end_to_end_twilios_own_callbacks_and_replies_reach_the_running_server(
    database_url: str, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with (
        FakeTwilio(callback_delay=0.05, reorder=True, duplicate=True) as twilio,
        served(database_url, twilio, fake_smtp, clock) as web,
    ):
        add_cova(web.app)
        notice = web.app.notices.create(
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
        twilio.flush(timeout=20)
        callbacks = twilio.callbacks
        assert callbacks and all(c["status"] == 200 for c in callbacks)
        assert all(c["url"] == web.server.url + "/webhooks/twilio/status" for c in callbacks)
        web.settle()
        states = sorted(d.state for d in web.app.deliveries.log(OPERATOR, notice.id, channel="sms"))
        assert states == ["delivered", "delivered", "skipped", "skipped"]

        reply = twilio.inbound(
            SMITHS, twilio.from_number, "Stop", url=web.server.url + "/webhooks/twilio/inbound"
        )
        assert reply["status"] == 200
        assert opted_out(web.app, "sms", SMITHS)
        help_reply = twilio.inbound(
            MARIA, twilio.from_number, "INFO", url=web.server.url + "/webhooks/twilio/inbound"
        )
        assert "COVA Spine and Pain Center" in help_reply["response_body"]


def test_callbacks_arriving_together_are_stored_in_one_commit(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's group commit: while one commit is under way, the callbacks that arrive
    wait for the next one and share it (one transaction for all of them, not one each)."""
    deliveries = web.app.deliveries
    intake = web.server.web.state.intake
    real_take_in = deliveries.take_in
    commits: list[int] = []
    first_commit_may_finish = threading.Event()

    def counting_take_in(reports: Sequence[Report], source: str = "callback") -> int:
        commits.append(len(reports))
        if len(commits) == 1:
            assert first_commit_may_finish.wait(30)
        return real_take_in(reports, source)

    monkeypatch.setattr(deliveries, "take_in", counting_take_in)
    sids = [new_message_sid() for _ in range(20)]  # not sent yet: stored, applied later

    def callback(sid: str) -> httpx.Response:
        return web.signed_post("/webhooks/twilio/status", status(sid, "delivered"))

    with ThreadPoolExecutor(len(sids)) as pool:
        answers = [pool.submit(callback, sids[0])]
        deadline = time.monotonic() + 30
        while commits != [1]:
            assert time.monotonic() < deadline, commits
            time.sleep(0.01)
        answers += [pool.submit(callback, sid) for sid in sids[1:]]
        while intake._waiting.qsize() < len(sids) - 1:  # every other one waits for its commit
            assert time.monotonic() < deadline, intake._waiting.qsize()
            time.sleep(0.01)
        first_commit_may_finish.set()
        assert [a.result().status_code for a in answers] == [200] * len(sids)
    assert commits == [1, len(sids) - 1]
    with web.app.db.session() as s:
        stored = s.scalars(select(Receipt.provider_id).where(Receipt.provider_id.in_(sids)))
        assert sorted(stored) == sorted(sids)


def test_a_callback_the_database_cannot_store_is_answered_503_and_taken_when_retried(
    web: Web, sent: dict[str, int]
) -> None:
    """Twilio retries a callback answered 5xx: until it is stored, it is never answered 200."""
    sid, delivery = next(iter(sent.items()))
    with web.app.db.session() as s:
        s.execute(text("ALTER TABLE receipts RENAME TO receipts_away"))
    try:
        refused = web.signed_post("/webhooks/twilio/status", status(sid, "delivered"))
        assert refused.status_code == 503
    finally:
        with web.app.db.session() as s:
            s.execute(text("ALTER TABLE receipts_away RENAME TO receipts"))
    assert state_of(web, delivery) == "sent"
    retried = web.signed_post("/webhooks/twilio/status", status(sid, "delivered"))
    assert retried.status_code == 200
    assert web.settle() == {"applied": 1}
    assert state_of(web, delivery) == "delivered"
