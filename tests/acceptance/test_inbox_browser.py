"""The inbox in a real browser (Chromium driven by Playwright) against a real ``notifier
serve``: a patient answers the reference closure by text (a signed inbound webhook), gets the
auto-reply, and a manager reads and answers the conversation; then the same from the CLI. And
the inbox of ``notifier demo --serve``, with the demo's data.

Screenshots go to ``test-artifacts/console/``; the README's ``docs/operate/img/inbox.png`` is a
copy of ``demo-inbox.png``, ``docs/operate/img/conversation.png`` of ``conversation.png``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from twilio.request_validator import RequestValidator

from notifier_sandbox.twilio_server import FakeTwilio
from tests.acceptance import test_console_browser as console_browser
from tests.acceptance.test_console_browser import EMAIL, shot, sign_in
from tests.support.patients import PATIENTS_CSV
from tests.support.processes import demo_serving, run_notifier

pytestmark = pytest.mark.slow
# The console tests' fixtures: a served console with a manager, and Chromium.
env, console, browser = console_browser.env, console_browser.console, console_browser.browser
MARIA = "+15405550111"
QUESTION = "I have an appointment Thursday, what do I do?"
ANSWER = "We will call you Friday morning to find a new time. Stay safe!"


def inbound(base: str, twilio: FakeTwilio, body: str, sid: str) -> None:
    params = {"MessageSid": sid, "From": MARIA, "To": twilio.from_number, "Body": body}
    url = f"{base}/webhooks/twilio/inbound"
    signature = RequestValidator(twilio.auth_token).compute_signature(url, params)
    answered = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert answered.status_code == 200, answered.text


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_manager_reads_and_answers_a_patients_text(
    console: str,
    browser: Browser,
    env: dict[str, str],
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    csv_file = tmp_path / "patients.csv"
    csv_file.write_text(PATIENTS_CSV)
    run_notifier(env, "patients", "import", str(csv_file))
    run_notifier(
        env,
        "notice",
        "create",
        "--location",
        "cova",
        "--starts",
        "2025-02-19 12:30",
        "--ends",
        "2025-02-21 00:00",
        "--reason",
        "inclement weather",
        "--channels",
        "sms",
        "--send-at",
        "now",
    )
    wait_for(lambda: len(fake_twilio.received_creates()) == 2)
    inbound(console, fake_twilio, QUESTION, "SM" + "a1" * 16)  # answered at once; the
    # auto-reply is queued and the service's worker sends it a moment later

    def auto_replied() -> bool:
        to_maria = [m for m in fake_twilio.messages.values() if m["to"] == MARIA]
        return any(str(m["body"]).startswith("Automatic reply:") for m in to_maria)

    wait_for(auto_replied)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, console)
    page.get_by_role("link", name="Inbox 1 unread", exact=True).click()
    row = page.locator("table.inbox tbody tr").first
    expect(row).to_contain_text("Maria Lopez")
    expect(row).to_contain_text("1 unread")
    expect(row).to_contain_text("COVA Spine and Pain Center")
    expect(page.locator('[data-auto-reply="cova"]')).to_have_text("on")
    shot(page, "inbox")

    row.get_by_role("link", name="Maria Lopez").click()
    thread = page.locator("ol.thread")
    expect(thread.locator(".msg-patient")).to_contain_text(QUESTION)
    expect(thread.locator(".msg-auto")).to_contain_text("We reopen Friday, 2/21/2025 at 8:00 AM")
    expect(thread.locator(".msg-auto")).to_contain_text("automatic")
    expect(page.get_by_role("link", name="notice #1")).to_be_visible()
    page.get_by_label("Answer").fill(ANSWER)
    page.get_by_role("button", name="Send answer").click()
    expect(thread.locator(".msg-staff")).to_contain_text(ANSWER)
    # Queued, then sent by the worker; the sandbox reports "delivered" a moment later: the
    # page may show any of them.
    expect(thread.locator(".msg-staff .state")).to_have_text(
        re.compile(r"^(queued|sending|sent|delivered)$")
    )

    def delivered() -> bool:
        page.reload()
        return thread.locator(".msg-staff .state").inner_text() == "delivered"

    wait_for(delivered)
    shot(page, "conversation")
    [sent] = [m for m in fake_twilio.messages.values() if m["body"] == ANSWER]
    assert sent["to"] == MARIA and sent["from"] == fake_twilio.from_number

    page.get_by_role("link", name="Inbox", exact=True).click()  # read: no count in the nav
    expect(page.locator("table.inbox tbody tr").first).not_to_contain_text("unread")
    context.close()

    # The same inbox from the command line, as the manager.
    listed = json.loads(run_notifier(env, "replies", "list", "--json", "--as", EMAIL).stdout)
    [conversation] = listed
    assert conversation["location"] == "cova" and conversation["patient"] == "p1"
    assert conversation["notice_id"] == 1
    assert [m["author"] for m in conversation["messages"]] == ["patient", "auto", "staff"]
    answered = run_notifier(
        env,
        "replies",
        "answer",
        str(conversation["id"]),
        "--message",
        "See you Friday.",
        "--as",
        EMAIL,
    )
    assert answered.stdout.startswith("answer ") and "queued" in answered.stdout
    wait_for(lambda: any(m["body"] == "See you Friday." for m in fake_twilio.messages.values()))
    log = run_notifier(env, "deliveries", "--format", "csv").stdout
    assert "answer," in log and "auto_reply," in log
    text = run_notifier(env, "replies", "list", "--location", "cova").stdout
    assert "answer: See you Friday." in text and "Maria Lopez (p1)" in text


def test_the_demo_console_shows_marias_question_in_the_inbox(
    browser: Browser, tmp_path: Path
) -> None:
    with demo_serving(tmp_path) as demo:
        context = browser.new_context(viewport={"width": 1100, "height": 520})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{demo.url}/console/login")
        page.get_by_label("Email").fill(demo.email)
        page.get_by_label("Password").fill(demo.password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Inbox 1 unread", exact=True).click()
        row = page.locator("table.inbox tbody tr").first
        expect(row).to_contain_text("Maria Lopez")
        expect(row).to_contain_text("1 unread")
        expect(row).to_contain_text("I have an appointment Thursday, what do I do?")
        expect(row).to_contain_text("answered automatically")
        shot(page, "demo-inbox")
        context.close()
