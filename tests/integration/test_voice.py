"""Calls end to end: the real app served on loopback, calls placed through the real twilio SDK
at the sandbox's Twilio-compatible server, which fetches our signed TwiML, speaks it, presses
the scripted keys, detects voicemails and posts signed status callbacks back to us."""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.errors import ValidationError
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.web import Web, save_cova, served, signed_in

HEADER = (
    "external_id,first_name,last_name,phone,email,language,location,sms_consent,"
    "email_consent,voice_consent,phone_type"
)
RUTH, ROSA, OMAR = "+15405550121", "+15405550122", "+15405550123"
PATIENTS = f"""\
{HEADER}
v1,Ruth,Baker,540-555-0121,,en,cova,no,no,yes,landline
v2,Rosa,Diaz,540-555-0122,,es,cova,no,no,yes,landline
v3,Omar,Haddad,540-555-0123,,en,cova,no,no,yes,
"""
CLOSURE_EN = (
    "Due to inclement weather, COVA Spine and Pain Center will be closing early Wednesday, "
    "February nineteenth, at twelve thirty p.m., and will be closed all day Thursday, "
    "February twentieth."
)
CLOSURE_ES = (
    "COVA Spine and Pain Center cerrará temprano el miércoles diecinueve de febrero, a las "
    "doce y media del mediodía, y cerrará todo el día el jueves veinte de febrero."
)


def voice_web(
    database_url: str,
    twilio: FakeTwilio,
    smtp: FakeSmtp,
    clock: FrozenClock,
    **settings: object,
) -> Iterator[Web]:
    values = {
        "voice_from_number": twilio.from_number,
        "voice_calls_per_second": 50.0,
        "public_base_url": "http://127.0.0.1:9",  # replaced by the served address
    } | settings
    with served(database_url, twilio, smtp, clock, **values) as web:
        save_cova(web.app)
        report = web.app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS))
        assert not report.errors, report.errors
        yield web


@pytest.fixture
def web(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    yield from voice_web(database_url, fake_twilio, fake_smtp, clock)


def call_out(web: Web, reason: str = "inclement weather") -> int:
    notice = web.app.notices.create(
        OPERATOR,
        NoticeRequest("cova", "2025-02-19 12:30", "2025-02-21 00:00", reason, channels=("voice",)),
    )
    run_once(web.app)
    web.twilio.flush(timeout=30)
    web.settle()
    return notice.id


PATIENT_PHONES = {"v1": RUTH, "v2": ROSA, "v3": OMAR}


def deliveries(web: Web, notice_id: int) -> dict[str, tuple[str, str | None]]:
    """Each patient's call (by phone): its state and error."""
    rows = web.app.deliveries.log(
        OPERATOR, notice_id=notice_id, channel="voice", show_patients=True
    )
    return {PATIENT_PHONES[str(row.patient)]: (row.state, row.error) for row in rows}


def said(call: dict, where: str = "heard") -> str:
    return " ".join(part["text"] for part in call[where])


def test_a_landline_patient_hears_the_closure_in_english_and_in_spanish(web: Web) -> None:
    call_out(web)
    (ruth,) = web.twilio.calls_to(RUTH)
    (rosa,) = web.twilio.calls_to(ROSA)
    assert CLOSURE_EN in said(ruth)
    assert said(ruth).startswith("Hello Ruth. This is COVA Spine and Pain Center")
    assert "five four zero, five five five, zero one zero zero" in said(ruth)
    assert {(p["language"], p["voice"]) for p in ruth["heard"]} == {("en-US", "Polly.Joanna")}
    assert CLOSURE_ES in said(rosa)
    assert {(p["language"], p["voice"]) for p in rosa["heard"]} == {("es-US", "Polly.Lupe")}
    # Async answering-machine detection: the TwiML was fetched at once, no waiting on the verdict.
    assert ruth["amd"] == ["human"] and ruth["status"] == "completed"
    assert all("Ruth" not in url and "0121" not in url for url in ruth["fetched"])
    assert all(cb["status"] == 200 for cb in ruth["callbacks"]), ruth["callbacks"]


def test_a_voicemail_gets_the_whole_message_after_the_greeting(web: Web) -> None:
    web.twilio.script_call(RUTH, "machine")
    call_out(web)
    (call,) = web.twilio.calls_to(RUTH)
    assert call["amd"] == ["machine_end_beep"]
    recorded = said(call, "voicemail")
    assert recorded.startswith("Hello Ruth. This is COVA Spine and Pain Center")
    assert CLOSURE_EN in recorded and recorded.endswith("Thank you. Goodbye.")
    assert "press one" not in recorded  # a machine is not offered the menu
    assert said(call, "greeting")  # what played over the greeting was lost, and said again


def test_our_log_says_whether_a_voicemail_or_a_person_took_the_call(web: Web) -> None:
    web.twilio.script_call(RUTH, "machine")
    notice_id = call_out(web)
    rows = web.app.deliveries.log(
        OPERATOR, notice_id=notice_id, channel="voice", show_patients=True
    )
    answered = {}
    for row in rows:
        _, events = web.app.deliveries.history(OPERATOR, row.id)
        (answer,) = [e.detail or "" for e in events if e.kind == "status_delivered"]
        answered[PATIENT_PHONES[str(row.patient)]] = answer
    assert answered[RUTH].startswith("answered by a voicemail")
    assert answered[ROSA].startswith("answered by a person")
    assert answered[OMAR].startswith("answered by a person")
    (ruth,) = [row for row in rows if row.patient == "v1"]
    with signed_in(web, "manager") as console:
        assert "answered by a voicemail" in console.get(f"/console/deliveries/{ruth.id}").text


def test_call_callbacks_without_twilios_signature_are_refused(web: Web) -> None:
    web.twilio.script_call(RUTH, "busy")  # Ruth's call stays open to a redial
    notice_id = call_out(web)
    (url,) = [
        r["form"]["Url"][0]
        for r in web.twilio.requests
        if r["path"].endswith("/Calls.json") and r["form"]["To"] == [RUTH]
    ]
    path = urlsplit(url).path  # a genuine, unexpired link: only the signature is missing
    sid = web.twilio.calls_to(RUTH)[0]["sid"]
    forged = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    attempts = [
        ("/webhooks/twilio/calls/status", {"CallSid": sid, "CallStatus": "completed"}),
        (f"{path}/keys", {"CallSid": sid, "Digits": "9"}),
        (f"{path}/machine", {"CallSid": sid, "AnsweredBy": "human"}),
    ]
    for where, form in attempts:
        assert web.client.post(where, data=form).status_code == 403, where
        assert web.client.post(where, data=form, headers=forged).status_code == 403, where
        wrong_key = web.signed_post(where, form, token="not-the-accounts-auth-token")
        assert wrong_key.status_code == 403, where
    web.settle()
    assert deliveries(web, notice_id)[RUTH][0] == "pending"  # no forged completion, no answer
    assert not web.app.consent.is_opted_out("voice", RUTH)  # no forged 9
    assert web.signed_post(f"{path}/keys", {"CallSid": sid, "Digits": "9"}).status_code == 200
    assert web.app.consent.is_opted_out("voice", RUTH)  # the same request, signed, is taken


def test_pressing_1_repeats_the_message(web: Web) -> None:
    web.twilio.script_call(RUTH, {"answer": "human", "keys": ["1"]})
    call_out(web)
    (call,) = web.twilio.calls_to(RUTH)
    assert call["pressed"] == ["1"]
    assert said(call).count(CLOSURE_EN) == 2


def test_pressing_9_opts_out_and_no_further_call_is_made(web: Web, clock: FrozenClock) -> None:
    web.twilio.script_call(RUTH, {"answer": "human", "keys": ["9"]})
    call_out(web)
    (call,) = web.twilio.calls_to(RUTH)
    assert "You will get no more calls from us." in said(call)
    assert web.app.consent.is_opted_out("voice", RUTH)
    assert not web.app.consent.is_opted_out("sms", RUTH)  # only calls
    clock.advance(3600)
    call_out(web, "a power outage")  # a second notice: Ruth is not called again
    assert len(web.twilio.calls_to(RUTH)) == 1
    assert len(web.twilio.calls_to(OMAR)) == 2


def test_busy_then_answered_on_the_retry(web: Web, clock: FrozenClock) -> None:
    web.twilio.script_call(RUTH, "busy", "human")
    notice_id = call_out(web)
    assert deliveries(web, notice_id)[RUTH][0] == "pending"
    clock.advance(14 * 60)
    run_once(web.app)
    assert len(web.twilio.calls_to(RUTH)) == 1  # 15 minutes apart, not sooner
    clock.advance(60)
    run_once(web.app)
    web.twilio.flush(timeout=30)
    web.settle()
    first, second = sorted(web.twilio.calls_to(RUTH), key=lambda c: c["started"])
    assert first["status"] == "busy" and second["status"] == "completed"
    assert CLOSURE_EN in said(second)
    assert deliveries(web, notice_id)[RUTH][0] == "delivered"


def test_no_answer_is_tried_twice_more_then_left_undelivered(web: Web, clock: FrozenClock) -> None:
    web.twilio.script_call(RUTH, "no-answer")
    notice_id = call_out(web)
    for _ in range(3):
        clock.advance(15 * 60)
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
    assert len(web.twilio.calls_to(RUTH)) == 3  # the first and the two retries
    assert deliveries(web, notice_id)[RUTH][0] == "undelivered"


def test_quiet_hours_defer_calls(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    clock.advance(4 * 3600)  # 22:00 in New York, the evening before: quiet hours
    for web in voice_web(database_url, fake_twilio, fake_smtp, clock):
        notice = web.app.notices.create(
            OPERATOR,
            NoticeRequest(
                "cova",
                "2025-02-19 12:30",
                "2025-02-21 00:00",
                "ice",
                channels=("voice",),
                urgent=False,
            ),
        )
        run_once(web.app)
        fake_twilio.flush(timeout=30)
        assert fake_twilio.calls == {}
        states = deliveries(web, notice.id)
        assert {state for state, _ in states.values()} == {"pending"}
        clock.advance(10 * 3600)  # 08:00: quiet hours are over
        run_once(web.app)
        fake_twilio.flush(timeout=30)
        assert len(fake_twilio.calls) == 3


def test_urgency_sends_texts_at_five_but_holds_calls_until_quiet_hours_end(
    web: Web, clock: FrozenClock
) -> None:
    web.app.patients.import_patients(OPERATOR, io.StringIO(LANDLINES))
    clock.advance(11 * 3600)  # 05:00 in New York on the closure's day: urgent by default
    created = web.app.notices.create(OPERATOR, NoticeRequest(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice", channels=("sms", "voice"),
    ))  # fmt: skip
    assert any("voice calls wait until 2025-02-19 08:00" in w for w in created.preview.warnings)
    plan = {p.channel: p for p in web.app.plans.of_notice(OPERATOR, created.notice.id).channels}
    assert (plan["voice"].deferred_until or "").startswith("2025-02-19T08:00")
    assert plan["sms"].deferred_until is None
    run_once(web.app)
    web.twilio.flush(timeout=30)
    web.settle()
    assert web.twilio.calls == {}  # no phone rings at 05:00
    texted = [m["to"] for m in web.twilio.messages.values()]
    assert RUTH in texted and ROSA in texted  # the texts go at once: urgent by rule
    log = by_channel(web, created.notice.id)
    assert log[(RUTH, "voice")].state == "pending"  # type: ignore[attr-defined]
    clock.advance(3 * 3600 - 60)  # 07:59
    run_once(web.app)
    web.twilio.flush(timeout=30)
    assert web.twilio.calls == {}
    clock.advance(60)  # 08:00
    run_once(web.app)
    web.twilio.flush(timeout=30)
    web.settle()
    assert len(web.twilio.calls_to(RUTH)) == 1 and len(web.twilio.calls_to(ROSA)) == 1


def test_the_call_rate_holds_at_the_test_server(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    for web in voice_web(database_url, fake_twilio, fake_smtp, clock, voice_calls_per_second=1.0):
        web.app.notices.create(
            OPERATOR,
            NoticeRequest(
                "cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice", channels=("voice",)
            ),
        )
        run_once(web.app)
        creates = sorted(
            r["time"]
            for r in fake_twilio.requests
            if r["method"] == "POST" and r["path"].endswith("/Calls.json")
        )
        assert len(creates) == 3
        # 1 call per second (a burst of one): three calls span two seconds, less the jitter of
        # the requests' own timing (PostgreSQL's shared timeline hands out one-second slots).
        assert creates[2] - creates[0] >= 1.5
        assert all(b - a >= 0.5 for a, b in itertools.pairwise(creates))
        fake_twilio.flush(timeout=30)


def test_a_forged_or_expired_twiml_link_hangs_up_politely(web: Web) -> None:
    answer = web.signed_post("/webhooks/twilio/voice/not-a-token", {"CallSid": "CA" + "0" * 32})
    assert answer.status_code == 200
    assert "<Hangup />" in answer.text and "<Say" not in answer.text
    unsigned = web.client.post("/webhooks/twilio/voice/not-a-token", data={"CallSid": "x"})
    assert unsigned.status_code == 403


def test_a_call_link_expires_by_the_service_clock(web: Web, clock: FrozenClock) -> None:
    call_out(web)
    (url,) = [
        r["form"]["Url"][0]
        for r in web.twilio.requests
        if r["path"].endswith("/Calls.json") and r["form"]["To"] == [RUTH]
    ]
    path = urlsplit(url).path
    params = {"CallSid": web.twilio.calls_to(RUTH)[0]["sid"], "AnsweredBy": "human"}
    clock.advance(59 * 60)  # within NOTIFIER_VOICE_LINK_MINUTES (60) of the service's time
    assert CLOSURE_EN in web.signed_post(path, params).text
    clock.advance(2 * 60)  # past it: the link no longer plays the message
    expired = web.signed_post(path, params)
    assert "<Hangup />" in expired.text and CLOSURE_EN not in expired.text


LANDLINES = f"""\
{HEADER}
f1,Ruth,Baker,540-555-0121,,en,cova,yes,no,yes,landline
f2,Rosa,Diaz,540-555-0122,,es,cova,yes,no,yes,landline
f3,Omar,Haddad,540-555-0123,,en,cova,yes,no,no,
"""


def fallback_web(web: Web) -> None:
    web.app.patients.import_patients(OPERATOR, io.StringIO(LANDLINES))
    for landline in (RUTH, ROSA, OMAR):  # Twilio refuses a text to a landline
        web.twilio.fault(
            match={"to": landline, "path_regex": "Messages"},
            times=None,
            response={"status": 400, "code": 21614},
        )


def by_channel(web: Web, notice_id: int) -> dict[tuple[str, str], object]:
    rows = web.app.deliveries.log(OPERATOR, notice_id=notice_id, show_patients=True)
    return {(PATIENT_PHONES["v" + str(row.patient)[1:]], row.channel): row for row in rows}


@pytest.mark.parametrize("through", ["use case", "API"])
def test_sms_21614_falls_back_to_a_call_once(web: Web, clock: FrozenClock, through: str) -> None:
    fallback_web(web)
    if through == "API":  # the same notice as a token's JSON body gives it
        auth = {"Authorization": f"Bearer {web.app.accounts.create_token('front desk')}"}
        answer = web.client.post("/api/v1/notices", headers=auth, json={
            "location": "cova", "starts": "2025-02-19 12:30", "ends": "2025-02-21 00:00",
            "reason": "inclement weather", "channels": ["sms"],
            "fallback": ["sms", "voice", "email"],
        })  # fmt: skip
        assert answer.status_code == 201, answer.text
        assert answer.json()["broadcasts"][0]["fallback"] == ["sms", "voice", "email"]
        notice = web.app.notices.get(OPERATOR, answer.json()["id"])
    else:
        notice = web.app.notices.create(OPERATOR, NoticeRequest(
            "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
            channels=("sms",), fallback="sms>voice>email",
        )).notice  # fmt: skip
    for _ in range(3):  # the text fails, the call is queued, placed; nothing more after that
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
        clock.advance(60)
    log = by_channel(web, notice.id)
    text, call = log[(RUTH, "sms")], log[(RUTH, "voice")]
    assert (text.state, text.error_code) == ("failed", "21614")  # type: ignore[attr-defined]
    assert call.state == "delivered" and call.fallback_of == text.id  # type: ignore[attr-defined]
    assert len(web.twilio.calls_to(RUTH)) == 1 and len(web.twilio.calls_to(ROSA)) == 1
    assert CLOSURE_ES in said(web.twilio.calls_to(ROSA)[0])
    # Omar did not agree to calls: his text failed and nothing stands in for it.
    assert (OMAR, "voice") not in log and web.twilio.calls_to(OMAR) == []
    _, events = web.app.deliveries.history(OPERATOR, text.id)  # type: ignore[attr-defined]
    assert any(e.kind == "fallback" and "trying voice call" in (e.detail or "") for e in events)


def cli(web: Web, *args: str) -> str:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI configures logging for its process
    try:
        env = {"NOTIFIER_DATABASE_URL": web.app.settings.database_url}
        result = CliRunner().invoke(main, list(args), env=env)
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    return result.output


def test_the_delivery_log_shows_which_text_a_call_stands_in_for(
    web: Web, clock: FrozenClock
) -> None:
    fallback_web(web)
    notice = web.app.notices.create(OPERATOR, NoticeRequest(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
        channels=("sms",), fallback="sms>voice",
    )).notice  # fmt: skip
    for _ in range(3):
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
        clock.advance(60)
    log = by_channel(web, notice.id)
    text_id, call_id = log[(RUTH, "sms")].id, log[(RUTH, "voice")].id  # type: ignore[attr-defined]
    exported = list(csv.DictReader(io.StringIO(cli(web, "deliveries", "--format", "csv"))))
    rows = {row["id"]: row for row in exported}
    assert rows[str(call_id)]["fallback_of"] == str(text_id)
    assert rows[str(text_id)]["fallback_of"] == ""
    table = cli(web, "deliveries", "--notice", str(notice.id)).splitlines()
    assert "fallback_of" in table[0].split()
    (call_line,) = [line for line in table if line.split()[:1] == [str(call_id)]]
    assert call_line.split()[-1] == str(text_id)
    with signed_in(web, "manager") as console:
        page = console.get(f"/console/notices/{notice.id}").text
        link = f'fallback of <a href="/console/deliveries/{text_id}">#{text_id}</a>'
        assert link in page
        assert page.count("fallback of <a") == 2  # Ruth's and Rosa's calls; Omar has none
        delivery = console.get(f"/console/deliveries/{call_id}").text
        assert f'href="/console/deliveries/{text_id}" id="fallback-of-link"' in delivery
        assert 'id="fallback-of-link"' not in console.get(f"/console/deliveries/{text_id}").text


def test_a_patient_already_called_is_not_called_again_by_the_fallback(web: Web) -> None:
    fallback_web(web)
    notice = web.app.notices.create(OPERATOR, NoticeRequest(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
        channels=("sms", "voice"), fallback="sms>voice",
    ))  # fmt: skip
    for _ in range(2):
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
    assert len(web.twilio.calls_to(RUTH)) == 1
    assert by_channel(web, notice.id)[(RUTH, "voice")].fallback_of is None  # type: ignore[attr-defined]


def test_an_undelivered_30006_report_falls_back_too(web: Web, clock: FrozenClock) -> None:
    web.app.patients.import_patients(OPERATOR, io.StringIO(LANDLINES))
    web.twilio.fault(
        match={"to": RUTH}, times=None, response={"fate": "undelivered", "error_code": 30006}
    )
    notice = web.app.notices.create(OPERATOR, NoticeRequest(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
        channels=("sms",), fallback="sms>voice",
    ))  # fmt: skip
    for _ in range(3):
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
        clock.advance(60)
    log = by_channel(web, notice.id)
    assert log[(RUTH, "sms")].state == "undelivered"  # type: ignore[attr-defined]
    assert log[(RUTH, "voice")].state == "delivered"  # type: ignore[attr-defined]
    assert len(web.twilio.calls_to(RUTH)) == 1
    assert web.twilio.calls_to(ROSA) == []  # her text was delivered: no call


def test_the_import_page_names_the_voice_columns(web: Web) -> None:
    with signed_in(web, "manager") as console:
        page = console.get("/console/patients/import").text
    hint = page[page.index('id="file-hint"') :].split("</p>")[0]
    assert f"<code>{HEADER.removesuffix(',voice_consent,phone_type')}</code>" in hint
    assert "optional: <code>voice_consent</code>, <code>phone_type</code>" in hint


def test_a_fallback_order_names_known_channels_each_once(web: Web) -> None:
    for bad in ("sms", "sms>fax", "sms>voice>sms"):
        with pytest.raises(ValidationError, match="fallback"):
            web.app.notices.create(
                OPERATOR,
                NoticeRequest("cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice", fallback=bad),
            )


def test_the_preview_speaks_the_call_and_estimates_the_calls_at_the_call_rate(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    for web in voice_web(database_url, fake_twilio, fake_smtp, clock, voice_calls_per_second=0.5):
        preview = web.app.notices.create(OPERATOR, NoticeRequest(
            "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
            channels=("sms", "voice"), send_at=None,
        )).preview  # fmt: skip
        assert preview.channels["voice"] == "enabled"
        assert preview.estimated_seconds["voice"] == pytest.approx(3 / 0.5)  # 3 calls, 0.5/s
        spoken = {m.language: m.text for m in preview.messages["voice"]}
        assert CLOSURE_EN in spoken["en"] and CLOSURE_ES in spoken["es"]


def test_a_redial_due_in_quiet_hours_waits_for_the_morning(web: Web, clock: FrozenClock) -> None:
    clock.advance(2 * 3600 + 50 * 60)  # 20:50 in New York
    web.twilio.script_call(RUTH, "busy", "human")
    notice_id = call_out(web)
    clock.advance(15 * 60)  # 21:05: the redial is due, but it is quiet hours
    run_once(web.app)
    web.twilio.flush(timeout=30)
    assert len(web.twilio.calls_to(RUTH)) == 1
    state, _ = deliveries(web, notice_id)[RUTH]
    assert state == "pending"
    clock.advance(11 * 3600)  # 08:05 the next morning
    run_once(web.app)
    web.twilio.flush(timeout=30)
    web.settle()
    assert len(web.twilio.calls_to(RUTH)) == 2
    assert deliveries(web, notice_id)[RUTH][0] == "delivered"


def test_a_text_retried_after_a_passing_error_is_not_also_a_call(
    web: Web, clock: FrozenClock
) -> None:
    web.app.patients.import_patients(OPERATOR, io.StringIO(LANDLINES))
    web.twilio.fault(
        match={"to": RUTH, "path_regex": "Messages"}, times=1, response={"status": 503}
    )
    notice = web.app.notices.create(OPERATOR, NoticeRequest(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather",
        channels=("sms",), fallback="sms>voice",
    ))  # fmt: skip
    for _ in range(3):  # the text fails once (503), is retried and goes out
        run_once(web.app)
        web.twilio.flush(timeout=30)
        web.settle()
        clock.advance(600)
    log = by_channel(web, notice.id)
    assert log[(RUTH, "sms")].state in ("sent", "delivered")  # type: ignore[attr-defined]
    assert log[(RUTH, "sms")].attempts == 2  # type: ignore[attr-defined]
    assert (RUTH, "voice") not in log and web.twilio.calls == {}


def test_lookup_finds_the_landlines_of_patients_imported_without_a_phone_type(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    fake_twilio.line_type(OMAR, "landline")
    fake_twilio.line_type(ROSA, "fixedVoip")
    for web in voice_web(database_url, fake_twilio, fake_smtp, clock, twilio_lookup=True):
        web.app.patients.import_patients(
            OPERATOR, io.StringIO(PATIENTS.replace("landline", "mobile", 1))
        )
        with web.app.db.session() as s:
            types = dict(s.execute(text("SELECT external_id, phone_type FROM patients")).all())
        # Given in the file: kept as given (v1, v2); looked up when empty (v3).
        assert types == {"v1": "mobile", "v2": "landline", "v3": "landline"}
        lookups = [r for r in fake_twilio.requests if r["path"].startswith("/v2/PhoneNumbers/")]
        assert len(lookups) == 2  # only Omar, on each of the two imports
        assert all(r["query"]["Fields"] == "line_type_intelligence" for r in lookups)
