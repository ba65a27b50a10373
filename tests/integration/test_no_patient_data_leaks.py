"""No patient's phone, email or name in any log line or delivery-log export, even at DEBUG.

A broadcast meets every kind of failure that quotes an address back at us: Twilio refusing a
number and naming it, a Twilio 500 (so the next attempt first lists the number's messages:
``GET …/Messages.json?To=%2B1…``), an SMTP server rejecting a recipient by address, a busy one
(retried), and a signed status callback whose ErrorMessage quotes the phone and email. Then every
log line the process wrote (root logger, third-party libraries included, formatted as the
product formats them) and every export of the delivery log (CLI table/JSON/CSV, API JSON, console
HTML and CSV, each delivery's history page) is searched for every form of each fixture phone,
email and name.

The sandbox's SMTP and Twilio-compatible servers run in this process; their own log lines
(``mail.log``, ``notifier_sandbox``) are left out: in production they are the provider's.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.logs import LogLines, captured_log
from tests.support.patients import HEADER
from tests.support.processes import run_notifier, service_env
from tests.support.web import PASSWORD, Web, save_cova, served, sign_in

PHONES = ("+15405550131", "+15405550132", "+15405550133")
EMAILS = ("zebulon.q@example.org", "philippa.w@example.org", "octavia.b@example.org")
NAMES = ("Zebulon", "Quackenbush", "Philippa", "Wolstenholme", "Octavia", "Butterfield")
PATIENTS = (
    f"{HEADER}\n"
    f"q1,Zebulon,Quackenbush,{PHONES[0]},{EMAILS[0]},en,cova,yes,yes\n"
    f"q2,Philippa,Wolstenholme,{PHONES[1]},{EMAILS[1]},en,cova,yes,yes\n"
    f"q3,Octavia,Butterfield,{PHONES[2]},{EMAILS[2]},en,cova,yes,yes\n"
)


def phone_forms(e164: str) -> list[str]:
    """+15405550131 as people, URLs and forms write it."""
    national = e164[2:]
    return [
        e164,
        national,
        f"({national[:3]}) {national[3:6]}-{national[6:]}",
        f"{national[3:6]}-{national[6:]}",
        "%2B" + e164[1:],
    ]


NEEDLES = [f for p in PHONES for f in phone_forms(p)] + list(EMAILS) + list(NAMES)


@pytest.fixture
def debug_log() -> Iterator[LogLines]:
    """``NOTIFIER_LOG_LEVEL=DEBUG`` as ``notifier serve`` applies it, captured."""
    with captured_log("DEBUG") as capture:
        yield capture


@pytest.fixture
def web(
    debug_log: LogLines,
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
) -> Iterator[Web]:
    with served(database_url, fake_twilio, fake_smtp, clock) as w:
        save_cova(w.app)
        w.app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS))
        w.app.accounts.create_user("manager@cova.example", "manager", PASSWORD)
        w.app.accounts.create_user("viewer@cova.example", "viewer", PASSWORD)
        yield w


def refuse_and_quote_addresses(twilio: FakeTwilio, smtp: FakeSmtp) -> None:
    twilio.fault(match={"to": PHONES[0]}, times=None, response={"status": 400, "code": 21211})
    twilio.fault(
        match={"to": PHONES[1]},
        response={"status": 500, "code": 20500, "message": f"Internal error for {PHONES[1]}"},
    )
    twilio.fault(match={"to": PHONES[2]}, response={"fate": "sent"})  # we report the rest
    smtp.fault(
        match={"rcpt_regex": "zebulon"},
        reply=f"550 5.1.1 <{EMAILS[0]}>: Recipient address rejected: User unknown",
        times=None,
    )
    smtp.fault(match={"rcpt_regex": "philippa"}, reply=f"451 4.2.1 <{EMAILS[1]}>: try later")


def broadcast_with_failures(web: Web, smtp: FakeSmtp, clock: FrozenClock) -> int:
    refuse_and_quote_addresses(web.twilio, smtp)
    notice = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova", starts="2025-02-19 12:30", ends="2025-02-21 00:00", reason="ice"
        ),
    )
    run_once(web.app)
    clock.advance(600)  # the retries are due
    run_once(web.app)
    web.twilio.flush()
    sid = next(
        r["message_sid"] for r in web.twilio.received_creates() if r["form"]["To"] == [PHONES[2]]
    )
    answer = web.signed_post(
        "/webhooks/twilio/status",
        {
            "MessageSid": sid,
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
            "ErrorMessage": f"Unreachable handset {PHONES[2]} ((540) 555-0133, "
            f"To=%2B{PHONES[2][1:]}) {EMAILS[2]}",
            "To": PHONES[2],
        },
    )
    assert answer.status_code == 200
    web.settle()  # with the sandbox's own callbacks for the other messages
    return notice.id


def exports(web: Web, notice_id: int, tmp_path: Path, database_url: str) -> dict[str, str]:
    """Every way a person reads the delivery log."""
    found: dict[str, str] = {}
    env = service_env(tmp_path, database_url)
    for fmt in ("table", "json", "csv"):
        cli = run_notifier(env, "deliveries", "--notice", str(notice_id), "--format", fmt)
        found[f"cli {fmt}"] = cli.stdout + cli.stderr
    token = web.app.accounts.create_token("leak check")
    api = web.client.get(
        "/api/v1/deliveries",
        params={"notice": notice_id, "limit": 1000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 200
    found["api json"] = api.text
    # Managers see whom each message is for (external id and name) on the notice's page; a
    # viewer's page, and every export, does not name anyone.
    console = sign_in(web, "viewer@cova.example", PASSWORD)
    try:
        found["console log"] = console.get(f"/console/notices/{notice_id}").text
        found["console csv"] = console.get(f"/console/notices/{notice_id}/deliveries.csv").text
        for row in api.json():
            history = console.get(f"/console/deliveries/{row['id']}")
            found[f"console history {row['id']}"] = history.text
    finally:
        console.close()
    return found


def leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n.lower() in text.lower()]


def test_no_log_line_or_export_names_a_patient(
    web: Web,
    debug_log: LogLines,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
    tmp_path: Path,
    database_url: str,
) -> None:
    notice_id = broadcast_with_failures(web, fake_smtp, clock)
    found = exports(web, notice_id, tmp_path, database_url)

    manager = sign_in(web, "manager@cova.example", PASSWORD)
    try:
        assert leaks(manager.get(f"/console/notices/{notice_id}").text)  # names, for managers
        exported = manager.get(f"/console/notices/{notice_id}/deliveries.csv").text
        assert not leaks(exported)  # the default export leaves the building: masked
    finally:
        manager.close()

    # The failures happened and were recorded, masked, where people read them.
    api = found["api json"]
    assert "Invalid 'To' Phone Number: +1******0131" in api
    assert "<z***@example.org>: Recipient address rejected" in api
    assert re.search(r"Unreachable handset \+1\*+0133", api)
    assert "o***@example.org" in api
    assert any(
        r["query"].get("To") == PHONES[1] for r in web.twilio.requests if r["method"] == "GET"
    )
    assert logging.getLogger("notifier").isEnabledFor(logging.DEBUG)
    assert len(debug_log.lines) > 20

    leaked = {source: leaks(text) for source, text in found.items()}
    leaked |= {f"log: {line[:300]}": leaks(line) for line in debug_log.lines if leaks(line)}
    assert {k: v for k, v in leaked.items() if v} == {}
