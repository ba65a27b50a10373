"""The fake's rate limit: creates beyond R segments/s per sender are answered 429/20429, as
Twilio answers a request it will not process, and counted. Driven by the real twilio SDK; the
fake's clock is frozen (``clock=``) and moved with ``advance``, so no test waits on the wall
clock."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from notifier_sandbox.twilio_control import FakeTwilioProcess
from notifier_sandbox.twilio_server import FakeTwilio

TO = "+15551230001"
SENDER, OTHER_SENDER = "+15005550006", "+15005550010"
MG = "MG" + "1" * 32
TWO_SEGMENTS = "x" * 161  # GSM-7: 160 fit one segment, 161 take two


def make_client(base_url: str, sid: str, token: str) -> Client:
    client = Client(sid, token, environment={"TWILIO_FAKE": "1"})
    client.api.base_url = base_url
    return client


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """2 segments/s per sender (a burst of 2), on a frozen clock."""
    with FakeTwilio(
        senders=[SENDER, OTHER_SENDER],
        messaging_services={MG: {"senders": [SENDER]}},
        rate_limit=2,
        clock=lambda: 1_700_000_000.0,
    ) as f:
        yield f


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return make_client(fake.base_url, fake.account_sid, fake.auth_token)


def send(
    client: Client, body: str = "x", to: str = TO, from_: str | None = SENDER, **kwargs: str
) -> TwilioRestException | None:
    """Create one message (``from_=None``: no From); the SDK's exception if the fake refused it."""
    try:
        client.messages.create(to=to, from_=from_, body=body, **kwargs)
    except TwilioRestException as exc:
        return exc
    return None


def test_over_the_rate_is_429_20429_with_twilios_error_body(
    fake: FakeTwilio, client: Client
) -> None:
    assert [send(client), send(client)] == [None, None]  # the burst: one second's worth
    exc = send(client)
    assert exc is not None
    assert (exc.status, exc.code) == (429, 20429)
    assert exc.msg == "Unable to create record: Too Many Requests"
    assert exc.uri == f"/Accounts/{fake.account_sid}/Messages.json"
    refused = fake.requests[-1]
    assert (refused["status"], refused["outcome"], refused["message_sid"]) == (
        429,
        "rate_limited",
        None,
    )
    assert fake.rate_limited == {"count": 1, "by_sender": {SENDER: 1}}
    assert len(fake.messages) == 2  # a 429 is never processed


def test_the_raw_429_body_is_twilios_legacy_error_json(fake: FakeTwilio, client: Client) -> None:
    send(client, TWO_SEGMENTS)
    response = client.http_client.request(
        "POST",
        f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={"To": TO, "From": SENDER, "Body": "x"},
        auth=(fake.account_sid, fake.auth_token),
    )
    assert response.status_code == 429
    assert json.loads(response.text) == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


def test_capacity_comes_back_at_the_rate(fake: FakeTwilio, client: Client) -> None:
    assert [send(client), send(client)] == [None, None]
    assert send(client) is not None
    fake.advance(0.5)  # one segment's worth at 2/s
    assert send(client) is None
    assert send(client) is not None
    fake.advance(10)  # the bucket refills to the burst, no further
    assert [send(client) is None for _ in range(3)] == [True, True, False]
    assert fake.rate_limited["count"] == 3


def test_segments_are_metered_not_requests(fake: FakeTwilio, client: Client) -> None:
    assert send(client, TWO_SEGMENTS) is None  # two segments: the whole burst
    assert send(client) is not None
    fake.advance(1.0)
    assert send(client, TWO_SEGMENTS * 2) is None  # 3 segments > the burst: goes when full
    fake.advance(0.5)  # 1 of its 3 segments paid back: 2 still owed, the whole burst
    assert send(client) is not None
    fake.advance(0.5)
    assert send(client) is None


def test_each_sender_has_its_own_rate(fake: FakeTwilio, client: Client) -> None:
    assert send(client, TWO_SEGMENTS) is None
    assert send(client) is not None
    assert send(client, from_=OTHER_SENDER) is None
    assert send(client, TWO_SEGMENTS, messaging_service_sid=MG, from_=None) is None
    assert send(client, messaging_service_sid=MG, from_=None) is not None
    assert fake.rate_limited["by_sender"] == {SENDER: 1, MG: 1}


def test_account_scope_shares_one_rate() -> None:
    with FakeTwilio(
        senders=[SENDER, OTHER_SENDER],
        rate_limit=2,
        rate_limit_scope="account",
        clock=lambda: 1_700_000_000.0,
    ) as fake:
        client = make_client(fake.base_url, fake.account_sid, fake.auth_token)
        assert send(client) is None
        assert send(client, from_=OTHER_SENDER) is None
        assert send(client, from_=OTHER_SENDER) is not None
        assert fake.rate_limited["by_sender"] == {fake.account_sid: 1}


def test_a_refused_or_faulted_create_uses_no_capacity(fake: FakeTwilio, client: Client) -> None:
    bad = send(client, to="12345")  # 400/21211: no message made
    assert bad is not None and bad.code == 21211
    fake.fault(response={"status": 500, "code": 20500})
    faulted = send(client)
    assert faulted is not None and faulted.status == 500
    assert [send(client), send(client)] == [None, None]  # the whole burst is still there
    assert send(client) is not None


def test_the_burst_and_the_limit_can_change_on_a_running_fake(
    fake: FakeTwilio, client: Client
) -> None:
    fake.rate_limit_burst = 5
    assert [send(client) is None for _ in range(6)] == [True] * 5 + [False]
    fake.rate_limit = None
    assert send(client) is None  # no limit: no 429


def test_the_server_process_takes_the_limit_as_flags_and_counts_its_429s() -> None:
    # 1 segment per 100 s, burst 1: the second create is over the limit whatever the clock says.
    with FakeTwilioProcess("--rate-limit", "0.01", "--rate-limit-burst", "1") as proc:
        info, control = proc.info, proc.control
        client = make_client(info["base_url"], info["account_sid"], info["auth_token"])
        client.messages.create(to=TO, from_=info["from_number"], body="x")
        with pytest.raises(TwilioRestException) as exc_info:
            client.messages.create(to=TO, from_=info["from_number"], body="y")
        assert (exc_info.value.status, exc_info.value.code) == (429, 20429)
        counts = control.request_count()
        assert (counts["create_attempts"], counts["creates"], counts["rate_limited"]) == (2, 1, 1)
        assert counts["by_status"] == {"201": 1, "429": 1}
        assert control.rate_limited() == {"count": 1, "by_sender": {info["from_number"]: 1}}
        control.config(rate_limit=None)
        client.messages.create(to=TO, from_=info["from_number"], body="z")
        control.reset()
        assert control.rate_limited() == {"count": 0, "by_sender": {}}
