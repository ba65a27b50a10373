"""The fake Twilio Calls API, driven by the real twilio SDK: the REST contract (shapes from the
OpenAPI description), TwiML played against a small receiving server, keypresses, answering-machine
detection, busy lines and signed status callbacks."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from notifier_sandbox.twilio_server import FakeTwilio

TO = "+15551230001"
# The call resource's properties in Twilio's OpenAPI description (twilio_api_v2010.json,
# components.schemas["api.v2010.account.call"], twilio-oai v2.6.7).
CALL_PROPERTIES = frozenset(
    {
        "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to",
        "to_formatted", "from", "from_formatted", "phone_number_sid", "status", "start_time",
        "end_time", "duration", "price", "price_unit", "direction", "answered_by",
        "api_version", "forwarded_from", "group_sid", "caller_name", "queue_time", "trunk_sid",
        "uri", "subresource_uris",
    }
)  # fmt: skip
MENU = (
    '<Response><Gather numDigits="1" action="/keys"><Say language="en-US" voice="Polly.Joanna">'
    "Closed Wednesday.</Say></Gather><Say>Goodbye.</Say></Response>"
)


class App(BaseHTTPRequestHandler):
    """Answers TwiML like our service would; records every signed request."""

    seen: ClassVar[list[tuple[str, dict[str, str], str]]] = []
    fake: ClassVar[FakeTwilio]

    def do_POST(self) -> None:
        form = {
            k: v[0]
            for k, v in parse_qs(
                self.rfile.read(int(self.headers["Content-Length"])).decode()
            ).items()
        }
        self.seen.append((self.path, form, self.headers.get("X-Twilio-Signature", "")))
        body = ""
        if self.path == "/twiml":
            body = MENU
        elif self.path == "/keys":
            body = (
                MENU
                if form.get("Digits") == "1"
                else "<Response><Say>Bye.</Say><Hangup/></Response>"
            )
        elif self.path == "/voicemail":
            body = "<Response><Say>Closed Wednesday.</Say><Hangup/></Response>"
        elif self.path == "/amd" and form.get("AnsweredBy", "").startswith("machine_end"):
            client = Client(self.fake.account_sid, self.fake.auth_token, environment={"X": "1"})
            client.api.base_url = self.fake.base_url
            client.calls(form["CallSid"]).update(url=self.url("/voicemail"))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        f.calls_per_second = 100.0
        yield f


@pytest.fixture
def app(fake):
    App.seen = []
    App.fake = fake
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def client(fake):
    c = Client(fake.account_sid, fake.auth_token, environment={"TWILIO_FAKE": "1"})
    c.api.base_url = fake.base_url
    return c


def place(client: Client, fake: FakeTwilio, app: str, **extra: str):
    return client.calls.create(
        to=TO,
        from_=fake.from_number,
        url=f"{app}/twiml",
        status_callback=f"{app}/status",
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=f"{app}/amd",
        **extra,
    )


def test_create_returns_a_call_shaped_as_the_api_description_says(client, fake, app) -> None:
    call = place(client, fake, app)
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid) and call.status == "queued"
    fake.flush(timeout=10)
    fetched = client.calls(call.sid).fetch()
    assert fetched.status == "completed" and fetched.answered_by == "human"
    assert [c.sid for c in client.calls.list(to=TO)] == [call.sid]
    raw = client.request(
        "GET", f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Calls/{call.sid}.json"
    )
    assert set(json.loads(raw.text)) == CALL_PROPERTIES


def test_bad_numbers_are_refused_like_twilio(client, fake, app) -> None:
    with pytest.raises(TwilioRestException) as bad_to:
        client.calls.create(to="555", from_=fake.from_number, url=f"{app}/twiml")
    assert (bad_to.value.status, bad_to.value.code) == (400, 21211)
    with pytest.raises(TwilioRestException) as bad_from:
        client.calls.create(to=TO, from_="+15550000000", url=f"{app}/twiml")
    assert bad_from.value.code == 21210


def test_a_person_hears_the_twiml_presses_1_then_9_and_callbacks_are_signed(
    client, fake, app
) -> None:
    fake.script_call(TO, {"answer": "human", "keys": ["1", "9"]})
    call = place(client, fake, app)
    fake.flush(timeout=10)
    record = fake.calls[call.sid]
    assert record["pressed"] == ["1", "9"]
    assert [p["text"] for p in record["heard"]] == [
        "Closed Wednesday.",
        "Closed Wednesday.",
        "Bye.",
    ]
    assert record["heard"][0]["voice"] == "Polly.Joanna"
    validator = RequestValidator(fake.auth_token)
    for path, form, signature in App.seen:
        assert validator.validate(f"{app}{path}", form, signature), path
    status = [form for path, form in ((p, f) for p, f, _ in App.seen) if path == "/status"]
    assert status[-1]["CallStatus"] == "completed" and status[-1]["CallSid"] == call.sid
    amd = [f for p, f, _ in App.seen if p == "/amd"]
    assert amd[0]["AnsweredBy"] == "human"


def test_a_voicemail_records_what_follows_the_greeting(client, fake, app) -> None:
    fake.script_call(TO, "machine")
    call = place(client, fake, app)
    fake.flush(timeout=10)
    record = fake.calls[call.sid]
    assert record["amd"] == ["machine_end_beep"]
    assert [p["text"] for p in record["voicemail"]] == ["Closed Wednesday."]
    assert record["pressed"] == []


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
def test_unanswered_calls_end_with_their_status(client, fake, app, outcome) -> None:
    fake.script_call(TO, outcome, "human")
    first = place(client, fake, app)
    fake.flush(timeout=10)
    assert client.calls(first.sid).fetch().status == outcome
    assert fake.calls[first.sid]["fetched"] == []  # never answered: no TwiML
    second = place(client, fake, app)  # the script's next step
    fake.flush(timeout=10)
    assert client.calls(second.sid).fetch().status == "completed"


def test_calls_leave_at_the_account_rate(client, fake, app) -> None:
    fake.calls_per_second = 4.0
    sids = [place(client, fake, app).sid for _ in range(3)]
    fake.flush(timeout=10)
    started = sorted(fake.calls[sid]["started"] for sid in sids)
    assert started[2] - started[0] >= 0.45  # 4 per second: a quarter second apart
