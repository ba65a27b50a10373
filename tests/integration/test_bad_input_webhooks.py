"""Hostile and odd input to the Twilio webhooks and the unsubscribe links, over real HTTP with
real signatures, on SQLite and PostgreSQL: each input → status code, what was stored, the reply.

Nothing here may answer 500, store an opt-out that matches no patient, or undo a STOP by replay.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from dataclasses import dataclass, field

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from notifier.storage.models import ConsentEvent, Delivery, OptOut
from notifier.unsubscribe import Subscriber, UnsubscribeTokens
from notifier_sandbox.smtp_server import FakeSmtp
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER
from tests.support.records import ledger, opted_out
from tests.support.web import SECRET, Web, broadcast_email, broadcast_sms, new_message_sid

MARIA = "+15405550111"
SMITHS = "+15405550112"  # John and Jane share it
LUIS = "+15405550116"  # speaks Spanish
STRANGER = "+15405550199"  # no patient has it


@pytest.fixture
def web(web: Web) -> Web:
    """The shared served app (reference location and patients), plus this file's own setup."""
    web.app.patients.import_patients(
        OPERATOR, io.StringIO(f"{HEADER}\np6,Luis,Vega,540-555-0116,,es,cova,yes,no\n")
    )
    return web


def message_of(twiml: str) -> str | None:
    """The text of the TwiML reply, or None when we send nothing back."""
    found = re.search(r"<Message>(.*)</Message>", twiml, re.S)
    return found.group(1) if found else None


def stored(web: Web) -> tuple[list[tuple[str, str]], int]:
    """Every opt-out (channel, address) and the number of consent events other than imports."""
    with web.app.db.session() as s:
        outs = [(o.channel, o.address) for o in s.scalars(select(OptOut).order_by(OptOut.id))]
        count = s.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.source != "import")
        )
        return outs, int(count or 0)


@dataclass(frozen=True)
class Inbound:
    body: str
    from_: str = SMITHS
    opted_out: tuple[str, ...] = ()  # the numbers opted out afterwards (none: nothing stored)
    reply: tuple[str, ...] = ()  # fragments of our reply; () = no reply at all
    absent: tuple[str, ...] = field(default=())  # must not be in the reply


INBOUND = {
    "NUL after STOP": Inbound("STOP\x00", opted_out=(SMITHS,)),
    "NUL inside a plain reply": Inbound("see you\x00 friday"),
    "300-character From": Inbound("STOP", from_="+1" + "5" * 298),
    "From with NUL": Inbound("STOP", from_="+1540555\x000112", opted_out=(SMITHS,)),
    "From that is no phone number": Inbound("STOP", from_="not a number"),
    "national-format From": Inbound("STOP", from_="5405550112", opted_out=(SMITHS,)),
    "national-format From with punctuation": Inbound(
        "STOP", from_="(540) 555-0112", opted_out=(SMITHS,)
    ),
    "fullwidth STOP": Inbound(
        "ＳＴＯＰ", opted_out=(SMITHS,), reply=("unsubscribed", "START", "COVA Spine")
    ),
    "OPT OUT with a space": Inbound("OPT OUT", opted_out=(SMITHS,), reply=("unsubscribed",)),
    "opt-out with a hyphen": Inbound("opt-out", opted_out=(SMITHS,), reply=("unsubscribed",)),
    "stop all": Inbound("stop all", opted_out=(SMITHS,), reply=("unsubscribed",)),
    "exact STOP: Twilio confirms it, we do not": Inbound("STOP", opted_out=(SMITHS,)),
    "Spanish PARA": Inbound(
        "PARA", opted_out=(SMITHS,), reply=("se ha dado de baja", "COMENZAR"), absent=("Reply",)
    ),
    "Spanish alto": Inbound("alto", opted_out=(SMITHS,), reply=("se ha dado de baja",)),
    "Spanish Cancelar.": Inbound("Cancelar.", opted_out=(SMITHS,), reply=("se ha dado de baja",)),
    "Spanish BAJA": Inbound("BAJA", opted_out=(SMITHS,), reply=("se ha dado de baja",)),
    "Spanish sentence with PARA": Inbound("para mañana?"),
    "Spanish AYUDA": Inbound(
        "AYUDA", reply=("COVA Spine and Pain Center", "PARA", "(540) 555-0100", "Responda")
    ),
    "INFO from a Spanish-speaking patient": Inbound("INFO", from_=LUIS, reply=("Responda",)),
    "HELP from a patient": Inbound("help", reply=("COVA Spine and Pain Center", "STOP")),
    "a 5000-character body": Inbound("STOP" * 1250),
}


@pytest.mark.parametrize("case", INBOUND.values(), ids=INBOUND.keys())
def test_each_odd_inbound_message_has_its_outcome_and_never_a_500(
    web: Web, case: Inbound, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    code, twiml = web.inbound(case.body, case.from_)
    assert code == 200, twiml
    assert twiml.startswith("<?xml")
    outs, events = stored(web)
    assert sorted(outs) == sorted(("sms", number) for number in case.opted_out)
    assert (events > 0) is bool(case.opted_out)
    reply = message_of(twiml)
    if case.reply:
        assert reply is not None, twiml
        for fragment in case.reply:
            assert fragment in reply
        for fragment in case.absent:
            assert fragment not in reply
    else:
        assert reply is None, twiml
    digits = re.sub(r"\D", "", case.from_)[-10:]  # the number as a log line could spell it
    logged = [re.sub(r"\D", "", r.getMessage() + str(r.__dict__)) for r in caplog.records]
    assert len(digits) < 7 or not any(digits in line for line in logged)


def test_a_national_format_stop_opts_out_the_patients_who_have_that_number(web: Web) -> None:
    web.inbound("STOP", from_="5405550112")
    assert opted_out(web.app, "sms", SMITHS)
    assert len({pid for *_, pid in ledger(web.app, "sms", SMITHS)} - {None}) == 2  # John, Jane


def test_a_replayed_message_changes_nothing(web: Web) -> None:
    start_sid = new_message_sid()
    web.inbound("STOP", SMITHS)
    web.inbound("START", SMITHS, sid=start_sid)
    assert not opted_out(web.app, "sms", SMITHS)
    web.inbound("STOP", SMITHS)
    before = ledger(web.app, "sms", SMITHS)
    code, twiml = web.inbound("START", SMITHS, sid=start_sid)  # the old START, replayed
    assert code == 200 and message_of(twiml) is None
    assert opted_out(web.app, "sms", SMITHS)
    assert ledger(web.app, "sms", SMITHS) == before


def test_a_replayed_stop_is_not_confirmed_twice_and_a_new_one_is(web: Web) -> None:
    sid = new_message_sid()
    assert message_of(web.inbound("PARA", SMITHS, sid=sid)[1]) is not None
    assert message_of(web.inbound("PARA", SMITHS, sid=sid)[1]) is None
    assert message_of(web.inbound("PARA", SMITHS)[1]) is not None  # a new message: confirmed again
    assert len(ledger(web.app, "sms", SMITHS)) == 2  # one opt-out, John and Jane


def test_a_spanish_start_lifts_the_opt_out_with_a_spanish_confirmation(web: Web) -> None:
    web.inbound("BAJA", SMITHS)
    code, twiml = web.inbound("Comenzar", SMITHS)
    assert code == 200
    assert not opted_out(web.app, "sms", SMITHS)
    reply = message_of(twiml)
    assert reply is not None and "volverá a recibir" in reply


def test_a_message_without_a_sid_is_acknowledged_and_ignored(web: Web) -> None:
    params = {"From": SMITHS, "To": web.twilio.from_number, "Body": "STOP"}
    response = web.signed_post("/webhooks/twilio/inbound", params)
    assert response.status_code == 200
    assert stored(web) == ([], 0)


@pytest.mark.parametrize(
    ("sid", "acted"),
    [("SM" + "a" * 300, False), ("SM\x00" + "a" * 32, True), ("\x00\x01", False)],
    ids=["300-char sid: ignored", "NUL in sid: dropped, then acted on", "only controls: ignored"],
)
def test_an_odd_message_sid_is_acknowledged(web: Web, sid: str, acted: bool) -> None:
    code, _ = web.inbound("STOP", SMITHS, sid=sid)
    assert code == 200
    assert stored(web)[0] == ([("sms", SMITHS)] if acted else [])
    assert (
        web.inbound("START", SMITHS, sid=sid)[0] == 200
    )  # the same id again: a replay, or ignored
    assert opted_out(web.app, "sms", SMITHS) is acted


@pytest.mark.parametrize(
    ("settings", "wanted", "unwanted"),
    [
        (
            {"program_name": "Valley Health closure alerts", "help_phone": "+18005550100"},
            ("Valley Health closure alerts", "(800) 555-0100", "STOP"),
            ("COVA", "Your clinic"),
        ),
        ({}, ("Clinic closure alerts", "STOP"), ("COVA", "Your clinic")),
    ],
    ids=["configured", "defaults"],
)
def test_help_from_an_unknown_number_names_the_program(
    web: Web, settings: dict[str, str], wanted: tuple[str, ...], unwanted: tuple[str, ...]
) -> None:
    web.app.locations.save(
        OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    for name, value in settings.items():
        setattr(web.app.settings, name, value)
    code, twiml = web.inbound("HELP", from_=STRANGER)
    assert code == 200
    reply = message_of(twiml)
    assert reply is not None
    for fragment in wanted:
        assert fragment in reply
    for fragment in unwanted:
        assert fragment not in reply
    assert stored(web) == ([], 0)


@pytest.fixture
def sent(web: Web) -> tuple[str, int]:
    """One text of the reference notice sent: its MessageSid and delivery id."""
    notice_id = broadcast_sms(web.app, FakeChannel())
    delivery = next(d for d in web.app.deliveries.log(OPERATOR, notice_id, "sent") if d.provider_id)
    assert delivery.provider_id is not None
    return delivery.provider_id, delivery.id


def status(sid: str, value: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": value} | extra


def column_length(column: object) -> int:
    length = getattr(getattr(column, "type", None), "length", None)
    assert isinstance(length, int)
    return length


def test_a_500_character_error_code_is_cut_to_the_column_and_recorded(
    web: Web, sent: tuple[str, int]
) -> None:
    sid, delivery_id = sent
    code = "30007" + "x" * 495
    response = web.signed_post(
        "/webhooks/twilio/status", status(sid, "undelivered", ErrorCode=code)
    )
    assert response.status_code == 200
    assert web.settle() == {"applied": 1}
    log = next(d for d in web.app.deliveries.log(OPERATOR) if d.id == delivery_id)
    assert log.state == "undelivered"
    limit = column_length(Delivery.__table__.c.error_code)
    assert log.error_code == code[:limit]


def test_control_characters_in_a_status_callback_are_dropped(
    web: Web, sent: tuple[str, int]
) -> None:
    sid, delivery_id = sent
    params = status(sid, "undelivered\x00", ErrorCode="300\x0007", ErrorMessage="Carrier\x00 x")
    assert web.signed_post("/webhooks/twilio/status", params).status_code == 200
    assert web.settle() == {"applied": 1}
    log = next(d for d in web.app.deliveries.log(OPERATOR) if d.id == delivery_id)
    assert (log.state, log.error_code, log.error) == ("undelivered", "30007", "Carrier x")


@pytest.mark.parametrize(
    "params",
    [
        status("SM" + "f" * 300, "delivered"),
        status("SM\x00" + "f" * 31, "delivered"),
        status("SM" + "f" * 32, "x" * 500),
        {"MessageSid": "", "MessageStatus": "delivered"},
    ],
    ids=["300-char sid", "NUL in sid", "500-char status", "empty sid"],
)
def test_odd_status_callbacks_are_acknowledged(
    web: Web, sent: tuple[str, int], params: dict[str, str]
) -> None:
    _, delivery_id = sent
    assert web.signed_post("/webhooks/twilio/status", params).status_code == 200
    assert "applied" not in web.settle()  # dropped, or waiting for a message never sent
    assert next(d.state for d in web.app.deliveries.log(OPERATOR) if d.id == delivery_id) == "sent"


# --- unsubscribe links -------------------------------------------------------------------------


def link_token(smtp: FakeSmtp, address: str) -> str:
    header = " ".join(str(smtp.received_for(address)[-1].message["List-Unsubscribe"]).split())
    found = re.search(r"/unsubscribe/([^>]+)>", header)
    assert found, header
    return found.group(1)


def decoded(token: str) -> str:
    head = token.split(".")[0]
    return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode(errors="replace")


def test_a_sent_unsubscribe_link_carries_no_address(web: Web, fake_smtp: FakeSmtp) -> None:
    broadcast_email(web.app)
    for message in fake_smtp.messages:
        address = message.rcpt_tos[0]
        token = link_token(fake_smtp, address)
        assert address not in decoded(token) and address.split("@")[0] not in token


def test_a_link_tampered_to_name_another_patient_is_refused(web: Web, fake_smtp: FakeSmtp) -> None:
    broadcast_email(web.app)
    genuine = link_token(fake_smtp, "maria@example.org")
    payload = json.loads(decoded(genuine))
    payload[0] = 3  # Jane
    forged_head = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    forged = forged_head.decode().rstrip("=") + "." + genuine.split(".", 1)[1]
    assert forged != genuine
    for method in ("GET", "POST"):
        assert web.client.request(method, f"/unsubscribe/{forged}").status_code == 404
    assert stored(web) == ([], 0)


def test_a_genuine_token_bound_to_another_address_is_refused(web: Web) -> None:
    """Signed with our key but naming patient 1 with Jane's address: the binding fails."""
    token = UnsubscribeTokens(SECRET).make(Subscriber(1, "email", "jane@example.org"))
    assert web.client.post(f"/unsubscribe/{token}").status_code == 404
    assert stored(web) == ([], 0)


def test_an_old_format_link_still_unsubscribes(web: Web) -> None:
    old = URLSafeSerializer(SECRET, salt="notifier.unsubscribe.v1").dumps(
        [1, "email", "maria@example.org"]
    )
    page = web.client.get(f"/unsubscribe/{old}")
    assert page.status_code == 200 and "m***@example.org" in page.text
    assert web.client.post(f"/unsubscribe/{old}").status_code == 200
    assert stored(web)[0] == [("email", "maria@example.org")]


def test_a_link_still_works_after_the_patient_changed_address(
    web: Web, fake_smtp: FakeSmtp
) -> None:
    broadcast_email(web.app)
    token = link_token(fake_smtp, "maria@example.org")
    web.app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            f"{HEADER}\np1,Maria,Lopez,540-555-0111,maria.new@example.org,en,cova,yes,yes\n"
        ),
    )
    assert web.client.post(f"/unsubscribe/{token}").status_code == 200
    assert stored(web)[0] == [("email", "maria@example.org")]  # the address the email went to
