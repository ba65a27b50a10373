"""Acceptance tests for the fake Twilio Messages API, driven by the real twilio SDK (facts §8.8)."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from notifier_sandbox.twilio_control import FakeTwilioProcess
from notifier_sandbox.twilio_server import FakeTwilio

TO = "+15551230001"
OTHER = "+15551230002"
MG = "MG" + "1" * 32


def make_client(base_url: str, sid: str, token: str, **http_kwargs) -> Client:
    http_client = TwilioHttpClient(**http_kwargs) if http_kwargs else None
    client = Client(sid, token, http_client=http_client, environment={"TWILIO_FAKE": "1"})
    client.api.base_url = base_url
    return client


@pytest.fixture
def fake():
    with FakeTwilio() as f:
        yield f


@pytest.fixture
def client(fake):
    return make_client(fake.base_url, fake.account_sid, fake.auth_token)


class Receiver:
    """Tiny loopback webhook receiver recording (path, headers, params)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, dict[str, str], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                outer.hits.append((self.path, dict(self.headers.items()), params))
                body = b"<Response/>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_create_returns_queued_message(fake, client):
    msg = client.messages.create(to=TO, from_=fake.from_number, body="Clinic closed Monday")
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg.sid)
    assert msg.status == "queued"
    assert msg.num_segments == "1" and isinstance(msg.num_segments, str)
    assert msg.date_created is not None and msg.date_created.tzinfo is not None
    assert msg.direction == "outbound-api" and msg.to == TO and msg.from_ == fake.from_number
    assert fake.messages[msg.sid]["body"] == "Clinic closed Monday"
    (rec,) = fake.received_creates()
    assert rec["form"]["To"] == [TO] and rec["auth_user"] == fake.account_sid
    assert rec["headers"]["X-Twilio-Client"].startswith("python-")
    fake.flush()
    fetched = client.messages(msg.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert fetched.price is not None


def test_invalid_to_raises_21211(fake, client):
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to="+1555", from_=fake.from_number, body="x")
    e = exc_info.value
    assert (e.status, e.code) == (400, 21211)
    assert e.msg.startswith("Unable to create record: ")
    assert e.uri == f"/Accounts/{fake.account_sid}/Messages.json"
    assert fake.messages == {}


def test_21211_fault_rule_and_exact_error_body(fake, client):
    fake.fault(match={"to": TO}, times=None, response={"status": 400, "code": 21211})
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to=TO, from_=fake.from_number, body="x")
    assert (exc_info.value.status, exc_info.value.code) == (400, 21211)
    client.messages.create(to=OTHER, from_=fake.from_number, body="x")  # rule is To-specific
    raw = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": TO, "From": fake.from_number, "Body": "x"},
        auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )
    assert raw.status_code == 400
    assert set(raw.json()) == {"code", "message", "more_info", "status"}


def test_429_once_then_success_with_retry_after(fake, client):
    fake.fault(
        times=1,
        response={"status": 429, "code": 20429, "message": "Too Many Requests", "retry_after": 2},
    )
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to=TO, from_=fake.from_number, body="x")
    assert (exc_info.value.status, exc_info.value.code) == (429, 20429)
    assert client.http_client._test_only_last_response.headers["Retry-After"] == "2"
    msg = client.messages.create(to=TO, from_=fake.from_number, body="x")  # the caller's retry
    assert msg.status == "queued"
    assert [r["status"] for r in fake.requests if r["method"] == "POST"] == [429, 201]
    assert len(fake.received_creates()) == 1 and len(fake.messages) == 1


def test_5xx_html_body_gives_status_as_code(fake, client):
    fake.fault(response={"status": 503, "raw_body": "<html>upstream down</html>"})
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to=TO, from_=fake.from_number, body="x")
    assert (exc_info.value.status, exc_info.value.code) == (503, 503)


def test_list_follows_pages_and_429_on_get_raises(fake, client):
    sids = [
        client.messages.create(to=TO, from_=fake.from_number, body=f"m{i}").sid for i in range(7)
    ]
    got = client.messages.list(limit=5, page_size=2)
    assert [m.sid for m in got] == sids[::-1][:5]  # newest first, across 3 pages
    gets = [r for r in fake.requests if r["method"] == "GET"]
    assert len(gets) == 3 and "PageToken" in gets[1]["query"]
    assert len(client.messages.list(page_size=3)) == 7
    fake.fault(match={"method": "GET"}, response={"status": 429, "code": 20429})
    with pytest.raises(TwilioException) as exc_info:
        client.messages.list(limit=5)
    assert not isinstance(exc_info.value, TwilioRestException)
    assert exc_info.value.args[0] == "Unable to fetch page"
    assert exc_info.value.args[1].status_code == 429


def test_list_filters_to_and_date_sent(fake, client):
    a = client.messages.create(to=TO, from_=fake.from_number, body="a")
    fake.flush()
    fake.advance(2 * 86400)  # the fake's clock, not wall time
    b = client.messages.create(to=TO, from_=fake.from_number, body="b")
    c = client.messages.create(to=OTHER, from_=fake.from_number, body="c")
    fake.flush()
    a_sent = client.messages(a.sid).fetch().date_sent
    after = a_sent + timedelta(days=1)
    assert [m.sid for m in client.messages.list(to=TO)] == [b.sid, a.sid]
    assert [m.sid for m in client.messages.list(date_sent_after=after)] == [c.sid, b.sid]
    assert [m.sid for m in client.messages.list(to=TO, date_sent_after=after)] == [b.sid]
    assert [m.sid for m in client.messages.list(date_sent_before=after)] == [a.sid]
    assert [m.sid for m in client.messages.list(date_sent=a_sent)] == [a.sid]
    assert [m.sid for m in client.messages.list(date_sent=a_sent.date())] == [a.sid]
    assert [m.sid for m in client.messages.list(from_=OTHER)] == []


def test_days_as_documented_bound_a_list_whole_days_and_pages_carry_the_filter(fake, client):
    """``DateSent>``/``DateSent<`` given as ``YYYY-MM-DD`` (Twilio's documented form) take the
    whole day on either side; a next page keeps the filter."""
    sids = [
        client.messages.create(to=TO, from_=fake.from_number, body=f"m{i}").sid for i in range(5)
    ]
    fake.flush()
    day = client.messages(sids[0]).fetch().date_sent.date()
    fake.advance(86400)
    later = client.messages.create(to=TO, from_=fake.from_number, body="next day").sid
    fake.flush()
    page = client.messages.page(
        date_sent_after=day.isoformat(), date_sent_before=day.isoformat(), page_size=3
    )
    first = [m.sid for m in page]
    second = page.next_page()
    assert second is not None
    rest = [m.sid for m in second]
    assert first + rest == sids[::-1] and second.next_page() is None
    assert later not in first + rest
    lists = [
        r["query"]
        for r in fake.requests
        if r["method"] == "GET" and r["path"].endswith("/Messages.json")
    ]
    assert len(lists) == 2 and all(q["DateSent>"] == q["DateSent<"] == str(day) for q in lists)


def test_status_callbacks_are_signed(receiver):
    with FakeTwilio(callback_delay=0.01) as fake:
        client = make_client(fake.base_url, fake.account_sid, fake.auth_token)
        url = f"{receiver.url}/status?clinic=7"
        msg = client.messages.create(to=TO, from_=fake.from_number, body="x", status_callback=url)
        fake.flush()
        assert [h[2]["MessageStatus"] for h in receiver.hits] == ["sending", "sent", "delivered"]
        validator = RequestValidator(fake.auth_token)
        for path, headers, params in receiver.hits:
            assert path == "/status?clinic=7"
            assert params["MessageSid"] == params["SmsSid"] == msg.sid
            assert params["AccountSid"] == fake.account_sid and params["To"] == TO
            assert headers["I-Twilio-Idempotency-Token"]
            assert validator.validate(url, params, headers["X-Twilio-Signature"])
            tampered = {**params, "MessageStatus": "failed"}
            assert not validator.validate(url, tampered, headers["X-Twilio-Signature"])
        assert "RawDlrDoneDate" in receiver.hits[-1][2]
        assert [cb["status"] for cb in fake.callbacks] == [200, 200, 200]


def test_fate_undelivered_drives_async_outcome(fake, client, receiver):
    fake.fault(response={"fate": "undelivered", "error_code": 30007})
    client.messages.list()  # a create-only rule is not consumed by other requests
    msg = client.messages.create(
        to=TO, from_=fake.from_number, body="x", status_callback=f"{receiver.url}/cb"
    )
    assert msg.status == "queued"
    fake.flush()
    fetched = client.messages(msg.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30007)
    last = receiver.hits[-1][2]
    assert (last["MessageStatus"], last["ErrorCode"]) == ("undelivered", "30007")
    assert last["ErrorMessage"]


def test_callback_receiver_down_and_non_loopback_do_not_break_fake(fake, client):
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_url = f"http://127.0.0.1:{probe.server_address[1]}/cb"
    probe.server_close()
    client.messages.create(to=TO, from_=fake.from_number, body="x", status_callback=dead_url)
    client.messages.create(
        to=TO, from_=fake.from_number, body="y", status_callback="https://example.com/cb"
    )
    fake.flush()
    cbs = fake.callbacks
    assert len(cbs) == 6 and all(cb["status"] is None and cb["error"] for cb in cbs)
    assert sum("non-loopback" in cb["error"] for cb in cbs) == 3
    assert client.messages.create(to=TO, from_=fake.from_number, body="z").status == "queued"


def test_duplicate_callbacks_share_idempotency_token(fake, client, receiver):
    fake.fault(response={"duplicate": True, "reorder": True})
    client.messages.create(
        to=TO, from_=fake.from_number, body="x", status_callback=f"{receiver.url}/cb"
    )
    fake.flush()
    tokens = [h[1]["I-Twilio-Idempotency-Token"] for h in receiver.hits]
    assert len(tokens) == 6 and len(set(tokens)) == 3
    assert sorted(h[2]["MessageStatus"] for h in receiver.hits) == sorted(
        ["sending", "sent", "delivered"] * 2
    )


def test_inbound_stop_blocks_until_start(fake, client, receiver):
    record = fake.inbound(TO, fake.from_number, "  stop ", url=f"{receiver.url}/sms")
    assert record["status"] == 200 and record["response_body"] == "<Response/>"
    _path, headers, params = receiver.hits[0]
    assert params["Body"] == "  stop " and params["SmsStatus"] == "received"
    assert RequestValidator(fake.auth_token).validate(
        f"{receiver.url}/sms", params, headers["X-Twilio-Signature"]
    )
    assert fake.auto_replies[0]["keyword"] == "STOP"
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to=TO, from_=fake.from_number, body="x")
    assert (exc_info.value.status, exc_info.value.code) == (400, 21610)
    fake.inbound(TO, fake.from_number, "START")  # no URL configured: opt-in only
    assert client.messages.create(to=TO, from_=fake.from_number, body="x").status == "queued"
    inbound = [m for m in fake.messages.values() if m["direction"] == "inbound"]
    assert [m["status"] for m in inbound] == ["received", "received"]


def test_segments_and_body_limit(fake, client):
    def segments(body: str) -> str:
        return client.messages.create(to=TO, from_=fake.from_number, body=body).num_segments

    assert segments("a" * 160) == "1"
    assert segments("a" * 161) == "2"
    assert segments("😀" * 35) == "1"
    assert segments("😀" * 36) == "2"
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages.create(to=TO, from_=fake.from_number, body="a" * 1601)
    assert (exc_info.value.status, exc_info.value.code) == (400, 21617)


def test_drop_raises_connection_error(fake, client):
    fake.fault(response={"drop": True})
    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=TO, from_=fake.from_number, body="x")
    assert fake.messages == {}
    assert client.messages.create(to=TO, from_=fake.from_number, body="x").status == "queued"


def test_drop_or_delay_after_create_leaves_the_message(fake, client):
    fake.fault(response={"drop_after_create": True})
    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=TO, from_=fake.from_number, body="ambiguous")
    (msg,) = fake.messages.values()
    assert msg["body"] == "ambiguous"
    assert fake.received_creates()[0]["outcome"] == "created_then_dropped"

    slow = make_client(fake.base_url, fake.account_sid, fake.auth_token, timeout=0.1)
    fake.fault(response={"delay_after_create_s": 0.3})
    with pytest.raises(requests.exceptions.Timeout):
        slow.messages.create(to=TO, from_=fake.from_number, body="late")
    assert [m["body"] for m in fake.messages.values()] == ["ambiguous", "late"]


def test_wrong_auth_is_401_20003(fake):
    bad = make_client(fake.base_url, fake.account_sid, "not-the-token")
    with pytest.raises(TwilioRestException) as exc_info:
        bad.messages.create(to=TO, from_=fake.from_number, body="x")
    assert (exc_info.value.status, exc_info.value.code) == (401, 20003)
    assert fake.messages == {}


def test_magic_numbers_and_required_fields(fake, client):
    cases = [
        ({"to": "+15005550002", "from_": fake.from_number, "body": "x"}, 21612),
        ({"to": "+15005550004", "from_": fake.from_number, "body": "x"}, 21610),
        ({"to": TO, "from_": "+15005550007", "body": "x"}, 21606),
        ({"to": TO, "from_": "+15559999999", "body": "x"}, 21606),
        ({"to": TO, "body": "x"}, 21603),
        ({"to": TO, "from_": fake.from_number}, 21602),
        ({"to": TO, "from_": fake.from_number, "body": "x", "status_callback": "x_y"}, 21609),
    ]
    for kwargs, code in cases:
        with pytest.raises(TwilioRestException) as exc_info:
            client.messages.create(**kwargs)
        assert exc_info.value.code == code, kwargs


def test_fetch_update_delete(fake, client):
    msg = client.messages.create(to=TO, from_=fake.from_number, body="secret")
    with pytest.raises(TwilioRestException) as exc_info:
        client.messages("SM" + "0" * 32).fetch()
    assert (exc_info.value.status, exc_info.value.code) == (404, 20404)
    fake.flush()
    assert client.messages(msg.sid).update(body="").body == ""
    assert client.messages(msg.sid).delete() is True
    assert msg.sid not in fake.messages


def test_messaging_service_starts_accepted():
    with FakeTwilio(messaging_services={MG: {"senders": ["+15005550006"]}}) as fake:
        client = make_client(fake.base_url, fake.account_sid, fake.auth_token)
        msg = client.messages.create(to=TO, messaging_service_sid=MG, body="x")
        assert (msg.status, msg.num_segments, msg.from_) == ("accepted", "0", None)
        fake.flush()
        done = client.messages(msg.sid).fetch()
        assert (done.status, done.num_segments, done.from_) == ("delivered", "1", "+15005550006")


def test_standalone_process_control_plane():
    with FakeTwilioProcess("--callback-delay", "0") as proc:
        info, control = proc.info, proc.control
        assert re.fullmatch(r"AC[0-9a-f]{32}", info["account_sid"])
        client = make_client(info["base_url"], info["account_sid"], info["auth_token"])
        client.messages.create(to=TO, from_=info["from_number"], body="x")
        control.fault(response={"status": 500, "code": 20500})
        with pytest.raises(TwilioRestException):
            client.messages.create(to=TO, from_=info["from_number"], body="y")
        control.flush()
        counts = control.request_count()
        assert (counts["count"], counts["create_attempts"], counts["creates"]) == (2, 2, 1)
        assert [m["status"] for m in control.messages()] == ["delivered"]
        control.opt_out(TO)
        with pytest.raises(TwilioRestException) as exc_info:
            client.messages.create(to=TO, from_=info["from_number"], body="z")
        assert exc_info.value.code == 21610
        control.reset()
        assert control.request_count()["count"] == 0 and control.messages() == []


def test_queue_limit_21611_when_enabled():
    with FakeTwilio(senders={"+15005550006": 1}, enforce_queue_limit=True) as fake:
        fake.queue_limit_seconds = 2  # 2 segments at 1 MPS fit in the queue, the third does not
        client = make_client(fake.base_url, fake.account_sid, fake.auth_token)
        for _ in range(2):
            client.messages.create(to=TO, from_=fake.from_number, body="x")
        with pytest.raises(TwilioRestException) as exc_info:
            client.messages.create(to=TO, from_=fake.from_number, body="x")
        assert exc_info.value.code == 21611
