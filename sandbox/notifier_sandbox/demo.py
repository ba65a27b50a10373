"""``notifier demo``: the reference closure, end to end, with nothing but this machine.

It starts a local Twilio-compatible server and a local SMTP server (``notifier_sandbox``), points
the real channels at them, and runs the real service: APScheduler fires the broadcast, the
dispatcher sends through the official twilio SDK and smtplib, and the delivery log records it.
The clock is set to the evening before the closure (2025-02-18 18:00 New York).
"""

from __future__ import annotations

import io
import secrets
import signal
import threading
from pathlib import Path

import click

from notifier.bootstrap import App, build_app
from notifier.cli.plans import plan_lines
from notifier.domain.actors import Actor
from notifier.domain.contacts import mask_address
from notifier.runtime import Runtime, run_until_idle
from notifier.settings import load_settings
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio

EVENING_BEFORE = "2025-02-18T18:00:00-05:00"
DEMO_PATIENTS = """\
external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent
1001,Maria,Lopez,540-555-0111,maria.lopez@example.org,en,cova,yes,yes
1002,John,Smith,(540) 555-0112,,en,cova,yes,no
1003,Jane,Smith,540-555-0112,jane.smith@example.org,en,cova,yes,yes
1004,Ana,Ruiz,,ana.ruiz@example.org,en,cova,no,yes
1005,Tom,Reed,540-555-0115,tom.reed@example.org,en,cova,no,no
1006,Lee,Park,555-01,,en,cova,yes,no
"""


CONSOLE_USER = "manager@cova.example"


# The undo window, shortened from the 60 s default so the demo does not sit idle for a minute.
DEMO_HOLD_SECONDS = 3.0


def run_demo(workdir: Path, timeout: float = 60.0, serve: bool = False) -> None:
    """The reference closure, end to end; with ``serve``, then the service with its HTTP console
    (a manager account is made and printed) beside the local servers, until Ctrl-C."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "demo.db"
    for stale in workdir.glob("demo.db*"):
        stale.unlink()
    with FakeTwilio(callback_delay=0.05) as twilio, FakeSmtp() as smtp:
        settings = load_settings(
            database_url=f"sqlite:///{database}",
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from_number=twilio.from_number,
            twilio_api_base_url=twilio.base_url,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_starttls=False,
            email_from="closures@cova.example",
            now=EVENING_BEFORE,
            poll_interval_seconds=0.2,
            send_hold_seconds=DEMO_HOLD_SECONDS,
        )
        app = build_app(settings)
        say = click.echo
        say(
            f"Local Twilio-compatible server: {twilio.base_url}   SMTP server: "
            f"{smtp.host}:{smtp.port}   database: {database}"
        )
        say(f"Pretending it is {EVENING_BEFORE} (the evening before the storm).\n")
        operator = Actor.operator()  # the demo runs the installation: every location
        app.locations.save(
            operator,
            "cova",
            "COVA Spine and Pain Center",
            "America/New_York",
            "Mon-Fri 08:00-17:00",
            "540-555-0100",
        )
        report = app.patients.import_patients(operator, io.StringIO(DEMO_PATIENTS))
        say(
            f"$ notifier patients import patients.csv\n  imported {report.imported}, "
            f"rejected {len(report.errors)}:"
        )
        for error in report.errors:
            say(f"  line {error.line} ({error.external_id}): {error.reason}")
        created = app.notices.create(
            operator,
            NoticeRequest(
                location="cova",
                starts="2025-02-19 12:30",
                ends="2025-02-21 00:00",
                reason="inclement weather",
            ),
        )
        notice = created.notice
        say(
            f"\n$ notifier notice create --location cova --starts '2025-02-19 12:30' "
            f"--ends '2025-02-21 00:00' --reason 'inclement weather' --send-at now\n"
            f"  notice {notice.id} "
            f"queued, send now"
        )
        for sms in created.preview.messages["sms"]:
            say(f"\nSMS preview ({sms.segments} segments, {sms.encoding}):\n  {sms.text}")
        say(f"\n$ notifier notice plan {notice.id}")
        for line in plan_lines(app.plans.of_notice(operator, notice.id)):
            say(f"  {line}")

        # The real service: scheduler, dispatcher and heartbeat, until nothing is left to do.
        run_until_idle(app, timeout=timeout)

        say("\nWhat the local Twilio server received:")
        for request in twilio.received_creates():
            say(
                f"  SMS to {mask_address(request['form']['To'][0])}: "
                f"{request['form']['Body'][0][:70]}..."
            )
        say("What the local SMTP server received:")
        for message in smtp.messages:
            say(f"  email to {mask_address(message.rcpt_tos[0])}: {message.message['Subject']}")
        say("\n$ notifier deliveries --notice 1")
        for d in app.deliveries.log(operator, notice.id):
            say(
                f"  {d.id:>3} {d.channel:<5} {d.address:<22} {d.state:<8} attempts={d.attempts}"
                f" {d.provider_id or d.error or ''}"
            )
        sent = sum(
            1 for d in app.deliveries.log(operator, notice.id) if d.state in ("sent", "delivered")
        )
        if sent == 0:
            app.close()
            raise click.ClickException("the demo sent nothing: see the log above")
        say(f"\nDone: {sent} messages sent, each recorded in {database}.")
        patient_answers(app, twilio, operator)
        try:
            if serve:
                keep_serving(app)
        finally:
            app.close()


def patient_answers(app: App, twilio: FakeTwilio, operator: Actor) -> None:
    """Maria answers the text (as the inbound webhook would hand it over): her question lands in
    the location's inbox, linked to the notice, and gets the closure auto-reply."""
    question = "I have an appointment Thursday, what do I do?"
    app.replies.receive("sms", "+15405550111", twilio.from_number, question, "SM" + "d" * 32)
    click.echo(f'\nMaria answers the text: "{question}"\n$ notifier replies list')
    for conversation in app.replies.conversations(operator):
        click.echo(
            f"  #{conversation.id} {conversation.patient_name}, answers notice "
            f"{conversation.notice_id}, {conversation.unread} unread"
        )
        for message in conversation.messages:
            click.echo(f"    {message.author}: {(message.body or '')[:70]}...")


def keep_serving(app: App) -> None:
    """The service with its HTTP console over the demo's data, until SIGINT or SIGTERM."""
    password = secrets.token_urlsafe(12)
    app.accounts.create_user(CONSOLE_USER, "manager", password)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Runtime(app, "all", http=True) as runtime:
        assert runtime.http is not None
        click.echo(
            f"\nThe service is running: open {runtime.http.url}/console and sign in as "
            f"{CONSOLE_USER} with the password {password}\n(metrics: {runtime.http.url}/metrics). "
            "Ctrl-C stops it.",
        )
        runtime.run(stop)
