"""The plan of a broadcast equals its outcome, one for one per channel and reason, on a mixed
audience (consent, opt-outs, the weekly cap, a shared phone, a language without templates), on
SQLite and PostgreSQL; and it shows quiet hours, cost and times."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest
from click.testing import CliRunner

from notifier.bootstrap import App, build_app
from notifier.channels.email import EmailChannel
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.domain.consent import Source
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER, PATIENTS_CSV
from tests.support.peers import NEW_YORK, peer_settings

# The reference five, plus: a Spanish patient, a German one (no 'de' templates), one who texted
# STOP, one whose phone was texted this week already (at the annex), and one whose phone is
# invalid (left out at import: outside the fan-out, counted apart).
MORE = """\
p6,Lucía,García,540-555-0116,lucia@example.org,es,cova,yes,yes
p7,Jürgen,Weber,540-555-0117,juergen@example.org,de,cova,yes,yes
p8,Olga,Stop,540-555-0118,olga@example.org,en,cova,yes,yes
p9,Carl,Capped,540-555-0119,carl@example.org,en,cova,yes,no
p10,Lee,Park,555-01,lee@example.org,en,cova,yes,yes
"""
ANNEX = f"{HEADER}\na1,Carl,Capped,540-555-0119,,en,annex,yes,no\n"
REFERENCE = NoticeRequest(
    location="cova",
    starts="2025-02-19 12:30",
    ends="2025-02-21 00:00",
    reason="inclement weather",
)


@pytest.fixture
def mixed(database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp) -> Iterator[App]:
    clock = FrozenClock(datetime(2025, 2, 18, 17, 0, tzinfo=NEW_YORK))
    settings = peer_settings(database_url, fake_twilio, fake_smtp, sms_weekly_cap=1)
    app = build_app(settings, clock=clock)
    for slug, name in (("cova", "COVA Spine and Pain Center"), ("annex", "COVA Annex")):
        app.locations.save(
            OPERATOR, slug, name, "America/New_York", "Mon-Fri 08:00-17:00", "540-555-0100"
        )
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV + MORE))
    app.patients.import_patients(OPERATOR, io.StringIO(ANNEX))
    app.consent.opt_out("sms", "+15405550118", Source.API)
    annex = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="annex",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="a burst pipe",
            channels=("sms",),
        ),
    )
    send_all(app)
    assert [d.state for d in app.deliveries.log(OPERATOR, annex.id)] == ["sent"]
    clock.set(datetime(2025, 2, 18, 18, 0, tzinfo=NEW_YORK))
    yield app
    app.close()


def send_all(app: App) -> None:
    app.fanout.fire_due()
    channels = {"sms": FakeChannel(), "email": FakeChannel(spec=EmailChannel.spec)}
    app.dispatcher(channels, "w1").drain()  # type: ignore[arg-type]


def test_the_plan_equals_the_outcome_per_channel_and_reason(mixed: App) -> None:
    notice = mixed.notices.create(OPERATOR, REFERENCE).notice
    plan = mixed.plans.of_notice(OPERATOR, notice.id)
    assert plan.dry_run
    assert mixed.deliveries.log(OPERATOR, notice.id) == []  # the dry run kept nothing

    send_all(mixed)
    log = mixed.deliveries.log(OPERATOR, notice.id)
    for channel in plan.channels:
        mine = [d for d in log if d.channel == channel.channel]
        sent = sum(1 for d in mine if d.state in ("sent", "delivered"))
        skipped = Counter(d.error for d in mine if d.state == "skipped")
        assert (channel.send, channel.skipped) == (sent, dict(skipped)), channel.channel
    sms = {c.channel: c for c in plan.channels}["sms"]
    # Maria, the Smiths' shared phone, Lucía, Jürgen; Ana and Tom said no; Olga said STOP;
    # Carl's number had its one text this week.
    assert sms.send == 4
    assert sms.skipped == {
        "no SMS consent": 2,
        "opted out": 1,
        "weekly SMS cap reached: 1 texts to this number in the last 7 days "
        "(NOTIFIER_SMS_WEEKLY_CAP)": 1,
    }
    assert sms.without_address == 1  # Lee's phone was left out at import
    assert plan.fallbacks == {"de → en": 2}  # Jürgen's text and email
    assert plan.languages["es"] == 2
    # After the fan-out the plan reads what it did, and still agrees.
    after = mixed.plans.of_notice(OPERATOR, notice.id)
    assert not after.dry_run
    assert [(c.send, c.skipped) for c in after.channels] == [
        (c.send, c.skipped) for c in plan.channels
    ]


def test_the_plan_shows_cost_segments_times_and_quiet_hours(mixed: App) -> None:
    notice = mixed.notices.create(
        OPERATOR, replace(REFERENCE, send_at="2025-02-18 22:30", urgent=False)
    ).notice
    plan = mixed.plans.of_notice(OPERATOR, notice.id)
    sms = {c.channel: c for c in plan.channels}["sms"]
    assert sms.deferred_until == "2025-02-19T08:00:00-05:00"
    assert sms.first_send == "2025-02-19T08:00:00-05:00"
    assert sms.units >= sms.send  # segments: at least one per text
    assert sms.cost == round(sms.units * 0.0079, 4)
    assert sms.longest is not None and sms.longest.segments
    assert plan.currency == "USD" and plan.segments == sms.units
    email = {c.channel: c for c in plan.channels}["email"]
    assert email.deferred_until is None and email.first_send == "2025-02-18T22:30:00-05:00"

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            main, ["notice", "plan", str(notice.id), "--format", "csv"], obj={"app": mixed}
        )
    finally:  # the CLI configures logging for its process; give pytest's handlers back
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert "sms,skip,opted out,1" in result.output
    assert "sms,defer,quiet hours until 2025-02-19 08:00,4" in result.output

    # At 22:30 the texts are held by quiet hours, as planned; the emails go.
    mixed.clock.set(datetime(2025, 2, 18, 22, 30, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    send_all(mixed)
    states = Counter((d.channel, d.state) for d in mixed.deliveries.log(OPERATOR, notice.id))
    assert states[("sms", "pending")] == sms.send
    assert states[("email", "sent")] == email.send


def test_the_plan_prices_email_spans_the_send_and_warns_of_the_providers_queue_window(
    mixed: App,
) -> None:
    slow = mixed.settings.model_copy(
        update={"email_price": 0.002, "sms_rate_per_second": 0.01, "sms_queue_window_seconds": 60}
    )
    app = build_app(slow, clock=mixed.clock)
    try:
        notice = app.notices.create(OPERATOR, REFERENCE).notice
        plan = app.plans.of_notice(OPERATOR, notice.id)
    finally:
        app.close()
    by = {c.channel: c for c in plan.channels}
    sms, email = by["sms"], by["email"]
    assert email.cost == round(email.units * 0.002, 4) and email.cost > 0
    assert plan.cost == round((sms.cost or 0) + email.cost, 2)
    assert sms.seconds >= sms.units / 0.01 - 100  # 100 s: one segment in a second's burst
    assert sms.first_send and sms.last_send
    spanned = datetime.fromisoformat(sms.last_send) - datetime.fromisoformat(sms.first_send)
    assert abs(spanned.total_seconds() - sms.seconds) < 1
    assert plan.last_send == max(sms.last_send, email.last_send or "")
    assert any("NOTIFIER_SMS_RATE_PER_SECOND" in w for w in plan.warnings), plan.warnings


def test_the_plan_counts_everyone_a_disabled_channel_leaves_out(mixed: App) -> None:
    no_mail = mixed.settings.model_copy(update={"smtp_host": None, "email_from": None})
    app = build_app(no_mail, clock=mixed.clock)
    try:
        notice = app.notices.create(OPERATOR, REFERENCE).notice
        plan = app.plans.of_notice(OPERATOR, notice.id)
        send_all(app)
        log = app.deliveries.log(OPERATOR, notice.id)
    finally:
        app.close()
    email = {c.channel: c for c in plan.channels}["email"]
    assert email.send == 0
    [(reason, count)] = email.skipped.items()
    assert reason.startswith("email disabled: NOTIFIER_SMTP_HOST") and count > 0
    assert sum(1 for d in log if d.channel == "email" and d.error == reason) == count
