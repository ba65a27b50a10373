"""Patients' replies end to end: signed inbound webhooks into the location's inbox, answers and
the closure auto-reply queued, then sent by the worker (``AnswerSender``) through the real
Twilio SDK against the sandbox, with retries, and shown in the delivery log; both databases."""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from notifier.bootstrap import App
from notifier.channels.base import OutgoingMessage
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.domain.actors import Actor
from notifier.domain.contacts import mask_address
from notifier.errors import ForbiddenError, NotFoundError, ValidationError
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.patients import HEADER
from tests.support.web import SECRET, Web, add_cova, new_message_sid, served, signed_in

MARIA = "+15405550111"
LUCIA = "+15405550116"  # speaks Spanish
STRANGER = "+15405550199"  # no patient, nothing sent to it
MAIN, SECOND = "+15005550006", "+15405550150"  # the account's two numbers


@pytest.fixture
def two_numbers() -> Iterator[FakeTwilio]:
    with FakeTwilio(senders=[MAIN, SECOND]) as server:
        yield server


@pytest.fixture
def web(
    database_url: str, two_numbers: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    with served(database_url, two_numbers, fake_smtp, clock) as w:
        add_cova(w.app)
        w.app.patients.import_patients(
            OPERATOR, io.StringIO(f"{HEADER}\np6,Lucia,Garcia,540-555-0116,,es,cova,yes,no\n")
        )
        w.app.locations.save(
            OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
        )
        yield w


def closure(app: App, **fields: object) -> int:
    """The reference closure by SMS, sent through the real SDK to the sandbox; its id."""
    values: dict[str, object] = {
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "inclement weather",
        "channels": ("sms",),
    } | fields
    created = app.notices.create(OPERATOR, NoticeRequest(location="cova", **values))  # type: ignore[arg-type]
    app.fanout.fire_due()
    dispatcher = app.dispatcher()
    try:
        dispatcher.drain()
    finally:
        dispatcher.close()
    return created.id


def text(web: Web, body: str, from_: str, to: str = MAIN, sid: str | None = None) -> str:
    params = {
        "MessageSid": sid or new_message_sid(),
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }
    response = web.signed_post("/webhooks/twilio/inbound", params)
    assert response.status_code == 200, response.text
    return response.text


def send_answers(web: Web) -> int:
    """One run of the worker's ``send_answers`` job; how many answers it handled."""
    answers = web.app.answers()
    try:
        return answers.drain()
    finally:
        answers.close()


def sent_to(twilio: FakeTwilio, number: str) -> list[dict[str, object]]:
    return [m for m in twilio.messages.values() if m["to"] == number]


def manager_of(web: Web, slug: str) -> Actor:
    email = f"{slug}@clinic.example"
    web.app.accounts.create_user(email, "manager", "correct horse battery", [slug])
    return web.app.accounts.actor_for_email(email)


def test_a_reply_lands_in_its_locations_inbox_linked_to_its_notice(web: Web) -> None:
    notice_id = closure(web.app)
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    before = len(web.twilio.messages)
    twiml = text(web, "I have an appointment Thursday, what do I do?", MARIA)
    assert "<Message>" not in twiml  # no TwiML answer: the front desk answers
    assert len(web.twilio.messages) == before  # auto-reply off: nothing sent
    cova = manager_of(web, "cova")
    [conversation] = web.app.replies.conversations(cova)
    assert conversation.location == "cova"
    assert conversation.patient == "p1"
    assert conversation.notice_id == notice_id
    assert conversation.unread == 1 and not conversation.done
    assert [m.body for m in conversation.messages] == [
        "I have an appointment Thursday, what do I do?"
    ]
    assert web.app.replies.unread(cova) == 1 and web.app.replies.unread(OPERATOR) == 1
    north = manager_of(web, "north")
    assert web.app.replies.conversations(north) == []
    assert web.app.replies.unread(north) == 0
    with pytest.raises(NotFoundError):
        web.app.replies.conversation(north, conversation.id)
    with pytest.raises(NotFoundError):
        web.app.replies.answer(north, conversation.id, "hello")


def test_a_replayed_webhook_adds_nothing(web: Web) -> None:
    closure(web.app)
    sid = new_message_sid()
    text(web, "Are you open Friday?", MARIA, sid=sid)
    text(web, "Are you open Friday?", MARIA, sid=sid)
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert [m.author for m in conversation.messages] == ["patient", "auto"]
    assert conversation.unread == 1


def test_the_answer_goes_through_the_sdk_from_the_number_the_patient_wrote_to(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    closure(web.app)
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    caplog.set_level(logging.INFO)
    text(web, "Are you open Friday? My number is private", MARIA, to=SECOND)
    [conversation] = web.app.replies.conversations(OPERATOR)
    cova = manager_of(web, "cova")
    answer = web.app.replies.answer(cova, conversation.id, "Yes, from 8 AM. See you then!")
    assert answer.state == "queued" and answer.sent_by == f"user:{cova.id}"
    assert not [m for m in sent_to(web.twilio, MARIA) if m["body"] == answer.body]  # not yet
    assert send_answers(web) == 1
    [sent] = [m for m in sent_to(web.twilio, MARIA) if m["body"] == "Yes, from 8 AM. See you then!"]
    assert sent["from"] == SECOND
    after = web.app.replies.conversation(cova, conversation.id)
    assert after.waiting_since is None and after.unread == 0
    assert [m.state for m in after.messages] == ["received", "sent"]
    # Twilio's signed status callbacks for the answer come through the receipts intake.
    web.twilio.flush(timeout=30)
    assert web.settle().get("applied", 0) >= 1
    reported = web.app.replies.conversation(cova, conversation.id)
    assert [m.state for m in reported.messages] == ["received", "delivered"]
    assert any(e.action == "reply_answer" for e in web.app.audit.events(OPERATOR))
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "My number is private" not in logged and MARIA not in logged
    assert "See you then" not in logged


def test_the_auto_reply_goes_once_per_version_in_the_patients_language(web: Web) -> None:
    notice_id = closure(web.app)
    text(web, "¿Abren el viernes?", LUCIA)
    text(web, "¿Y el lunes?", LUCIA)
    send_answers(web)
    replies = [m for m in sent_to(web.twilio, LUCIA) if "Respuesta automática" in str(m["body"])]
    assert len(replies) == 1
    body = str(replies[0]["body"])
    assert body.startswith("Respuesta automática: COVA Spine and Pain Center cerrará temprano")
    assert "Reabrimos el viernes 21 de febrero de 2025 a las 8:00 a. m." in body
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert [m.author for m in conversation.messages] == ["patient", "auto", "patient"]
    assert conversation.messages[1].state == "sent"

    # A new version of the notice: one more auto-reply, then none again.
    changed = web.app.notices.update(OPERATOR, notice_id, ends="2025-02-22 00:00")
    web.app.fanout.fire_due()
    dispatcher = web.app.dispatcher()
    dispatcher.drain()
    dispatcher.close()
    assert changed.id != notice_id
    text(web, "¿Entonces el sábado?", LUCIA)
    text(web, "¿Hola?", LUCIA)
    send_answers(web)
    replies = [m for m in sent_to(web.twilio, LUCIA) if "Respuesta automática" in str(m["body"])]
    assert len(replies) == 2


def test_english_auto_reply_names_the_reopening(web: Web) -> None:
    closure(web.app)
    text(web, "Are you open Friday?", MARIA)
    send_answers(web)
    [reply] = [m for m in sent_to(web.twilio, MARIA) if "Automatic reply" in str(m["body"])]
    assert "We reopen Friday, 2/21/2025 at 8:00 AM" in str(reply["body"])
    assert reply["from"] == MAIN


def test_stop_in_the_middle_of_a_conversation_stops_everything(web: Web) -> None:
    closure(web.app)
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)
    [conversation] = web.app.replies.conversations(OPERATOR)
    text(web, "STOP", MARIA)
    web.app.replies.set_auto_reply(OPERATOR, "cova", True)
    before = len(sent_to(web.twilio, MARIA))
    text(web, "one more question", MARIA)  # no auto-reply to an opted-out number
    with pytest.raises(ValidationError, match="opted out"):
        web.app.replies.answer(OPERATOR, conversation.id, "Yes we are")
    assert len(sent_to(web.twilio, MARIA)) == before
    after = web.app.replies.conversation(OPERATOR, conversation.id)
    assert after.opted_out
    assert [m.author for m in after.messages] == ["patient", "patient"]


def test_a_number_nothing_places_is_seen_by_staff_of_every_location_only(web: Web) -> None:
    text(web, "hello?", STRANGER)
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert conversation.location is None and conversation.patient is None
    assert web.app.replies.conversations(manager_of(web, "cova")) == []


def test_waiting_counts_business_minutes_only(web: Web, clock: FrozenClock) -> None:
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)  # Tuesday 18:00: after hours
    clock.advance(14 * 3600)  # Wednesday 08:00: still zero business minutes
    assert web.app.replies.waiting(OPERATOR) == []
    clock.advance(31 * 60)
    [late] = web.app.replies.waiting(OPERATOR)
    assert late.waiting_minutes == 31
    assert web.app.replies.waiting_counts() == {"cova": 1}
    samples = [
        sample
        for family in text_string_to_metric_families(web.client.get("/metrics").text)
        for sample in family.samples
        if sample.name == "notifier_replies_waiting"
    ]
    assert [(s.labels, s.value) for s in samples] == [({"location": "cova"}, 1.0)]
    web.app.replies.mark_done(OPERATOR, late.id)
    assert web.app.replies.waiting(OPERATOR) == []


def test_retention_erases_bodies_and_numbers(web: Web, clock: FrozenClock) -> None:
    text(web, "Are you open Friday?", MARIA)
    clock.advance((web.app.settings.retention_days + 1) * 86400)
    web.app.retention.run()
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert [m.body for m in conversation.messages] == [None]
    assert conversation.number.startswith("erased:")


def test_the_api_lists_and_answers_for_tokens_of_the_location_only(web: Web) -> None:
    closure(web.app)
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)
    cova = web.app.accounts.create_token("cova desk", True, ["cova"], "send")
    north = web.app.accounts.create_token("north desk", True, ["north"], "send")
    blind = web.app.accounts.create_token("cova wall", False, ["cova"], "read")
    reader = web.app.accounts.create_token("cova reader", True, ["cova"], "read")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    listed = web.client.get("/api/v1/conversations", headers=auth(cova))
    assert listed.status_code == 200
    [conversation] = listed.json()
    assert conversation["patient"] == "p1" and conversation["location"] == "cova"
    assert conversation["messages"][0]["body"] == "Are you open Friday?"
    assert web.client.get("/api/v1/conversations", headers=auth(north)).json() == []
    assert web.client.get("/api/v1/conversations", headers=auth(blind)).status_code == 403
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    assert web.client.post(path, json={"message": "hi"}, headers=auth(north)).status_code == 404
    assert web.client.post(path, json={"message": "hi"}, headers=auth(reader)).status_code == 403
    assert web.client.post(path, json={"message": ""}, headers=auth(cova)).status_code == 422
    answered = web.client.post(path, json={"message": "Yes, 8 AM."}, headers=auth(cova))
    assert answered.status_code == 201 and answered.json()["state"] == "queued"
    send_answers(web)
    assert [m["from"] for m in sent_to(web.twilio, MARIA) if m["body"] == "Yes, 8 AM."] == [MAIN]


def test_the_console_front_page_lists_patients_waiting_too_long(web: Web) -> None:
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)
    web.app.deps.clock.advance(14 * 3600 + 45 * 60)  # Wednesday 08:45
    with signed_in(web, "manager") as client:
        front = client.get("/console/notices")
        assert "Patients waiting for an answer (1)" in front.text
        assert "waiting 45 min" in front.text
        inbox = client.get("/console/inbox")
        assert "1 unread" in inbox.text and "Maria Lopez" in inbox.text


def test_forgetting_a_patient_erases_their_texts_at_once(web: Web) -> None:
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)
    text(web, "Hola", LUCIA)
    web.app.retention.forget(OPERATOR, "p1")
    maria, lucia = sorted(web.app.replies.conversations(OPERATOR), key=lambda c: c.patient or "")
    assert [m.body for m in maria.messages] == [None] and maria.number.startswith("erased:")
    assert maria.patient_name is None
    assert [m.body for m in lucia.messages] == ["Hola"]  # nobody else's


def test_the_console_reads_marks_done_assigns_and_switches_the_auto_reply(web: Web) -> None:
    from tests.support.web import csrf_of, signed_in

    closure(web.app)
    text(web, "Are you open Friday?", MARIA)
    [conversation] = web.app.replies.conversations(OPERATOR)
    page = f"/console/inbox/{conversation.id}"
    with signed_in(web, "manager") as client:
        assert 'Inbox <span class="count">1 unread</span>' in client.get("/console/notices").text
        opened = client.get(page)
        assert "Are you open Friday?" in opened.text and "automatic" in opened.text
        assert "1 unread</span>" not in client.get("/console/notices").text  # opened: read
        assert web.app.replies.conversation(OPERATOR, conversation.id).unread == 0
        token = csrf_of(opened)
        done = client.post(f"{page}/done", data={"csrf": token, "done": "yes"})
        assert done.status_code == 303
        wrong = client.post(f"{page}/assign", data={"csrf": token, "email": "no@one.example"})
        assert wrong.status_code == 422 and "no user" in wrong.text
        given = client.post(f"{page}/assign", data={"csrf": token, "email": "manager@cova.example"})
        assert given.status_code == 303
        off = client.post(
            "/console/inbox/auto-reply", data={"csrf": token, "location": "cova", "on": "off"}
        )
        assert off.status_code == 303
        assert client.post(f"{page}/done", data={"done": "yes"}).status_code == 403  # no CSRF
    after = web.app.replies.conversation(OPERATOR, conversation.id)
    assert after.done and after.assigned_to == "manager@cova.example"
    assert [p.auto_reply for p in web.app.replies.locations(OPERATOR) if p.slug == "cova"] == [
        False
    ]


def test_texts_at_once_make_one_conversation_and_one_auto_reply(web: Web) -> None:
    from concurrent.futures import ThreadPoolExecutor

    closure(web.app)
    bodies = [f"question {i}" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        ids = list(
            pool.map(
                lambda body: web.app.replies.receive("sms", MARIA, MAIN, body, new_message_sid()),
                bodies,
            )
        )
    assert len(set(ids)) == 1
    [conversation] = web.app.replies.conversations(OPERATOR)
    authors = [m.author for m in conversation.messages]
    assert authors.count("patient") == 6 and authors.count("auto") == 1
    assert conversation.unread == 6
    send_answers(web)
    replies = [m for m in sent_to(web.twilio, MARIA) if "Automatic reply" in str(m["body"])]
    assert len(replies) == 1


def test_the_webhook_queues_the_auto_reply_and_the_worker_sends_it(web: Web) -> None:
    closure(web.app)
    creates = len(web.twilio.received_creates())
    text(web, "Are you open Friday?", MARIA)
    assert len(web.twilio.received_creates()) == creates  # no provider call in the request
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert [m.state for m in conversation.messages] == ["received", "queued"]
    assert send_answers(web) == 1
    assert send_answers(web) == 0  # sent once
    assert len(web.twilio.received_creates()) == creates + 1
    after = web.app.replies.conversation(OPERATOR, conversation.id)
    assert [m.state for m in after.messages] == ["received", "sent"]


def answered(web: Web, message: str) -> tuple[int, int]:
    """Maria's question (auto-reply off) and a queued answer: the conversation's and the
    answer's ids."""
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)
    [conversation] = web.app.replies.conversations(OPERATOR)
    return conversation.id, web.app.replies.answer(OPERATOR, conversation.id, message).id


def answer_of(web: Web, conversation_id: int) -> tuple[str, str | None]:
    last = web.app.replies.conversation(OPERATOR, conversation_id).messages[-1]
    return last.state, last.error


def test_a_transient_provider_error_is_retried(web: Web, clock: FrozenClock) -> None:
    closure(web.app)
    web.twilio.fault({"body_regex": "Yes, 8 AM"}, times=1, response={"status": 500})
    conversation_id, _ = answered(web, "Yes, 8 AM.")
    assert send_answers(web) == 1
    state, error = answer_of(web, conversation_id)
    assert state == "queued" and error is not None and "retry in" in error
    assert send_answers(web) == 0  # not due yet
    clock.advance(web.app.settings.retry_base_seconds + 1)
    assert send_answers(web) == 1
    assert answer_of(web, conversation_id) == ("sent", None)
    assert [m["body"] for m in sent_to(web.twilio, MARIA)].count("Yes, 8 AM.") == 1
    [line] = [d for d in web.app.deliveries.log(OPERATOR) if d.kind == "answer"]
    assert line.attempts == 2 and line.state == "sent"


def test_a_lost_provider_answer_is_asked_about_not_sent_twice(web: Web, clock: FrozenClock) -> None:
    closure(web.app)
    web.twilio.fault({"body_regex": "Yes, 8 AM"}, times=1, response={"drop_after_create": True})
    conversation_id, _ = answered(web, "Yes, 8 AM.")
    send_answers(web)
    assert answer_of(web, conversation_id)[0] == "queued"  # the provider may have it
    clock.advance(web.app.settings.retry_max_seconds + 1)
    send_answers(web)
    assert answer_of(web, conversation_id) == ("sent", None)
    assert [m["body"] for m in sent_to(web.twilio, MARIA)].count("Yes, 8 AM.") == 1


def test_a_crash_between_claim_and_record_neither_loses_nor_doubles_an_answer(
    web: Web, clock: FrozenClock
) -> None:
    closure(web.app)
    conversation_id, answer_id = answered(web, "Yes, 8 AM.")
    crashed = web.app.answers()
    assert crashed.claim(10) == [answer_id]
    # The provider took it, then the worker died before writing the outcome down.
    crashed.channels["sms"].send(OutgoingMessage(0, MARIA, "Yes, 8 AM.", sender=MAIN))
    crashed.close()
    assert send_answers(web) == 0  # its lease still holds it: nobody else sends it
    assert answer_of(web, conversation_id)[0] == "sending"
    clock.advance(web.app.settings.lease_seconds + 1)
    assert send_answers(web) == 1  # handed back, the provider asked first
    assert answer_of(web, conversation_id) == ("sent", None)
    assert [m["body"] for m in sent_to(web.twilio, MARIA)].count("Yes, 8 AM.") == 1

    # Claimed and never sent (died before the call): sent once, after the lease.
    second = web.app.replies.answer(OPERATOR, conversation_id, "Bring your card.").id
    crashed = web.app.answers()
    assert crashed.claim(10) == [second]
    crashed.close()
    clock.advance(web.app.settings.lease_seconds + 1)
    assert send_answers(web) == 1
    assert [m["body"] for m in sent_to(web.twilio, MARIA)].count("Bring your card.") == 1


def test_stop_while_an_answer_waits_refuses_it(web: Web) -> None:
    closure(web.app)
    conversation_id, _ = answered(web, "Yes, 8 AM.")
    text(web, "STOP", MARIA)
    before = len(sent_to(web.twilio, MARIA))
    assert send_answers(web) == 1
    state, error = answer_of(web, conversation_id)
    assert state == "refused" and error is not None and "opted out" in error
    assert len(sent_to(web.twilio, MARIA)) == before


def cli(web: Web, *args: str) -> str:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    env = {
        "NOTIFIER_DATABASE_URL": web.app.settings.database_url,
        "NOTIFIER_NOW": "2025-02-18T18:00:00-05:00",
        "NOTIFIER_SECRET_KEY": SECRET,
    }
    try:
        result = CliRunner().invoke(main, list(args), env=env)
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    return result.output


def test_answers_and_auto_replies_are_in_the_delivery_log(web: Web) -> None:
    notice_id = closure(web.app)
    text(web, "Are you open Friday?", MARIA)
    [conversation] = web.app.replies.conversations(OPERATOR)
    web.app.replies.answer(OPERATOR, conversation.id, "Yes, 8 AM.")
    queued = list(csv.DictReader(io.StringIO(cli(web, "deliveries", "--format", "csv"))))
    mine = [r for r in queued if r["kind"] != "notice"]
    assert [(r["kind"], r["state"]) for r in mine] == [
        ("auto_reply", "queued"),
        ("answer", "queued"),
    ]
    send_answers(web)

    rows = list(csv.DictReader(io.StringIO(cli(web, "deliveries", "--format", "csv"))))
    notices = [r for r in rows if r["kind"] == "notice"]
    auto, answer = [r for r in rows if r["kind"] != "notice"]
    assert notices and all(r["notice_id"] == str(notice_id) for r in notices)
    assert (auto["kind"], answer["kind"]) == ("auto_reply", "answer")
    for row in (auto, answer):
        assert row["conversation_id"] == str(conversation.id)
        assert row["notice_id"] == str(notice_id)
        assert row["channel"] == "sms" and row["state"] == "sent" and row["attempts"] == "1"
        assert row["address"] == mask_address(MARIA) != MARIA
        assert row["provider_id"].startswith("SM") and row["sent_at"]
    assert MARIA not in cli(web, "deliveries", "--format", "csv")
    assert {r["kind"] for r in queued} == {"notice", "auto_reply", "answer"}
    pending = cli(web, "deliveries", "--status", "sent", "--format", "json")
    assert '"kind": "answer"' in pending

    # The status callbacks move them to delivered, in the log too.
    web.twilio.flush(timeout=30)
    web.settle()
    log = web.app.deliveries.log(OPERATOR, notice_id)
    assert [(d.kind, d.state) for d in log if d.kind != "notice"] == [
        ("auto_reply", "delivered"),
        ("answer", "delivered"),
    ]

    # The API's log and the console's (the notice page, and its CSV export).
    token = web.app.accounts.create_token("cova log", False, ["cova"], "read")
    api = web.client.get("/api/v1/deliveries", headers={"Authorization": f"Bearer {token}"})
    assert [d["kind"] for d in api.json() if d["kind"] != "notice"] == ["auto_reply", "answer"]
    with signed_in(web, "manager") as client:
        page = client.get(f"/console/notices/{notice_id}").text
        assert f'href="/console/inbox/{conversation.id}"' in page
        assert "(staff answer)" in page and "(auto-reply)" in page
        exported = client.get(f"/console/notices/{notice_id}/deliveries.csv").text
        assert {r["kind"] for r in csv.DictReader(io.StringIO(exported))} == {
            "notice",
            "auto_reply",
            "answer",
        }


def test_conversations_are_listed_newest_first(web: Web, clock: FrozenClock) -> None:
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "first", MARIA)
    clock.advance(60)
    text(web, "second", LUCIA)
    clock.advance(60)
    text(web, "third", STRANGER)
    listed = web.app.replies.conversations(OPERATOR)
    assert [c.messages[-1].body for c in listed] == ["third", "second", "first"]
    clock.advance(60)
    text(web, "again", MARIA)  # a new text moves Maria's conversation to the top
    listed = web.app.replies.conversations(OPERATOR)
    assert [c.messages[-1].body for c in listed] == ["again", "third", "second"]


def test_the_serving_worker_sends_a_queued_auto_reply_by_itself(web: Web) -> None:
    from notifier.runtime import Runtime

    closure(web.app)
    with Runtime(web.app, "worker"):  # its send_answers job, woken by the queued auto-reply
        text(web, "Are you open Friday?", MARIA)
        deadline = time.monotonic() + 30
        while not [m for m in sent_to(web.twilio, MARIA) if "Automatic reply" in str(m["body"])]:
            assert time.monotonic() < deadline, "the worker did not send the auto-reply"
            time.sleep(0.05)
    [conversation] = web.app.replies.conversations(OPERATOR)
    assert conversation.messages[-1].state == "sent"


def test_a_viewer_reads_no_patients_texts(web: Web, clock: FrozenClock) -> None:
    """Patients' words and numbers are patient data: a viewer of the location (who sees no
    patient list either) is refused the inbox everywhere, and the front page lists nobody."""
    web.app.replies.set_auto_reply(OPERATOR, "cova", False)
    text(web, "Are you open Friday?", MARIA)  # Tuesday 18:00
    clock.advance(15 * 3600)  # Wednesday 09:00: an hour of business waiting
    [conversation] = web.app.replies.waiting(OPERATOR)
    with signed_in(web, "viewer") as client:
        eve = web.app.accounts.actor_for_email("viewer@cova.example")
        with pytest.raises(ForbiddenError):
            web.app.replies.conversations(eve)
        with pytest.raises(ForbiddenError):
            web.app.replies.conversation(eve, conversation.id)
        assert web.app.replies.waiting(eve) == []
        assert client.get("/console/inbox").status_code == 403
        assert client.get(f"/console/inbox/{conversation.id}").status_code == 403
        front = client.get("/console/notices")
        assert front.status_code == 200 and "/console/inbox" not in front.text
        assert "Maria" not in front.text
    assert web.app.replies.conversation(OPERATOR, conversation.id).unread == 1  # not read
