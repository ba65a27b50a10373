"""One-click unsubscribe (RFC 8058) end to end: the real email, the link, the next broadcast."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeSerializer

from notifier.clock import FrozenClock
from notifier.unsubscribe import Subscriber, UnsubscribeTokens
from notifier_sandbox.smtp_server import FakeSmtp
from tests.support.actors import OPERATOR
from tests.support.records import ledger, opted_out
from tests.support.web import SECRET, Web, broadcast_email

MARIA = "maria@example.org"


def unsubscribe_link(smtp: FakeSmtp, address: str) -> str:
    message = smtp.received_for(address)[-1].message
    header = " ".join(str(message["List-Unsubscribe"]).split())  # unfold
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https = re.search(r"<(http[^>]+)>", header)
    mailto = re.search(r"<(mailto:[^>]+)>", header)
    assert https and mailto, header
    return https.group(1)


def test_every_closure_email_carries_both_unsubscribe_headers(
    web: Web, fake_smtp: FakeSmtp
) -> None:
    broadcast_email(web.app)
    assert len(fake_smtp.messages) == 3
    links = {unsubscribe_link(fake_smtp, m.rcpt_tos[0]) for m in fake_smtp.messages}
    assert len(links) == 3  # one per recipient
    assert all(link.startswith(web.server.url + "/unsubscribe/") for link in links)


def test_the_round_trip_get_shows_a_page_post_opts_out_the_next_broadcast_skips(
    web: Web, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    broadcast_email(web.app)
    path = unsubscribe_link(fake_smtp, MARIA).removeprefix(web.server.url)

    page = web.client.get(path)
    assert page.status_code == 200 and "<form" in page.text and "m***@example.org" in page.text
    assert MARIA not in page.text
    assert not opted_out(web.app, "email", MARIA)  # a GET (link scanner) changes nothing

    done = web.client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and not done.is_redirect
    assert opted_out(web.app, "email", MARIA)
    assert ledger(web.app, "email", MARIA)[0][:3] == (
        "unsubscribe_link",
        "opted_in",
        "opted_out",
    )
    assert web.client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(ledger(web.app, "email", MARIA)) == 1  # idempotent

    clock.advance(3600)
    before = len(fake_smtp.received_for(MARIA))
    second = broadcast_email(web.app)
    assert len(fake_smtp.received_for(MARIA)) == before
    skipped = {d.error for d in web.app.deliveries.log(OPERATOR, second) if d.state == "skipped"}
    assert "opted out" in skipped


@pytest.mark.parametrize("how", ["tampered", "other secret", "garbage"])
def test_a_forged_token_is_refused_and_changes_nothing(
    web: Web, fake_smtp: FakeSmtp, how: str
) -> None:
    broadcast_email(web.app)
    genuine = unsubscribe_link(fake_smtp, MARIA).rsplit("/", 1)[1]
    if how == "tampered":
        payload, _, signature = genuine.rpartition(".")
        # Another patient's address under Maria's signature
        other = UnsubscribeTokens(SECRET).make(Subscriber(3, "email", "jane@example.org"))
        token = other.rpartition(".")[0] + "." + signature
        assert token != other and payload
    elif how == "other secret":
        token = UnsubscribeTokens("not-our-secret-key-at-all").make(Subscriber(1, "email", MARIA))
    else:
        token = "not-a-token"
    assert web.client.get(f"/unsubscribe/{token}").status_code == 404
    assert web.client.post(f"/unsubscribe/{token}").status_code == 404
    assert not opted_out(web.app, "email", MARIA)
    assert not opted_out(web.app, "email", "jane@example.org")


def test_a_legacy_v1_link_opts_out_only_an_address_its_patient_has(web: Web) -> None:
    """A v1 token carries the address itself; with the key anyone could write one naming any
    address. It is honoured only for an address that patient has or was sent to."""
    legacy = URLSafeSerializer(SECRET, salt="notifier.unsubscribe.v1")
    stranger = legacy.dumps([1, "email", "stranger@example.org"])
    post = {
        "content": b"List-Unsubscribe=One-Click",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }
    refused = web.client.post(f"/unsubscribe/{stranger}", **post)  # type: ignore[arg-type]
    assert refused.status_code == 404
    assert not opted_out(web.app, "email", "stranger@example.org")
    genuine = legacy.dumps([1, "email", MARIA])  # patient 1 is Maria
    done = web.client.post(f"/unsubscribe/{genuine}", **post)  # type: ignore[arg-type]
    assert done.status_code == 200 and opted_out(web.app, "email", MARIA)
