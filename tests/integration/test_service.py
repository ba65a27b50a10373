"""Notices, imports and fan-out against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from notifier.bootstrap import App, build_app
from notifier.channels.email import EmailChannel
from notifier.clock import FrozenClock
from notifier.domain.consent import Source
from notifier.errors import NotFoundError, TemplateError, ValidationError
from notifier.rendering.renderer import default_templates_dir
from notifier.runtime import run_once
from notifier.storage.models import Delivery, DeliveryEvent, Notice, Patient
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER, PATIENTS_CSV


def count(app: App, model: type) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def create_reference(app: App, **changes: str) -> int:
    values = {
        "location": "cova",
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "inclement weather",
    } | changes
    return app.notices.create(OPERATOR, NoticeRequest(**values)).id  # type: ignore[arg-type]


def test_bad_csv_rows_are_reported_by_line_and_good_rows_still_land(app: App, cova: str) -> None:
    csv_text = PATIENTS_CSV + (
        "b1,Bad,Phone,555-01,,en,cova,yes,no\n"
        "b2,Bad,Email,,not-an-email,en,cova,no,yes\n"
        "b3,Bad,Place,540-555-0190,,en,nowhere,yes,no\n"
        "b4,Bad,Consent,540-555-0191,,en,cova,maybe,no\n"
        ",No,Id,540-555-0192,,en,cova,yes,no\n"
        "p1,Maria,Again,540-555-0111,,en,cova,yes,no\n"
        "b5,Too,Many,540-555-0193,,en,cova,yes,no,extra\n"
    )
    report = app.patients.import_patients(OPERATOR, io.StringIO(csv_text))
    assert report.created == 5
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [7, 8, 9, 10, 11, 12, 13]
    assert "phone" in reasons[7]
    assert "email" in reasons[8]
    assert "location 'nowhere' does not exist" in reasons[9]
    assert "sms_consent 'maybe' is not yes/no" in reasons[10]
    assert "external_id is empty" in reasons[11]
    assert "repeats line 2" in reasons[12]
    assert "1 more cell than the header has" in reasons[13]
    with app.db.session() as s:
        maria = s.scalar(select(Patient).where(Patient.external_id == "p1"))
        assert maria is not None and maria.last_name == "Lopez"  # the repeat did not overwrite
        assert maria.phone == "+15405550111"


def test_a_csv_with_a_wrong_header_imports_nothing(app: App, cova: str) -> None:
    with pytest.raises(ValidationError, match="lacks column"):
        app.patients.import_patients(OPERATOR, io.StringIO("id,name\n1,x\n"))
    assert count(app, Patient) == 0


def test_reimport_updates_by_external_id(app: App, cova: str) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    changed = PATIENTS_CSV.replace(
        "p5,Tom,Reed,540-555-0115,tom@example.org,en,cova,no,no",
        "p5,Tom,Reed,540-555-0115,tom@example.org,en,cova,yes,no",
    )
    report = app.patients.import_patients(OPERATOR, io.StringIO(changed))
    assert (report.created, report.updated) == (0, 5)
    with app.db.session() as s:
        tom = s.scalar(select(Patient).where(Patient.external_id == "p5"))
        assert tom is not None and tom.sms_consent


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"ends": "2025-02-19 10:00"}, "before it starts"),
        ({"send_at": "2025-02-22 09:00"}, "after the closure ends"),
        ({"starts": "2025-02-22 00:00", "ends": "2025-02-23 23:00"}, "business hours"),
        ({"location": "nowhere"}, "no location 'nowhere'"),
        ({"channels": ("sms", "pager")}, "pager"),
        ({"starts": "tomorrow"}, "not a date and time"),
        ({"starts": "2025-02-10 08:00", "ends": "2025-02-11 00:00"}, "closure ended"),
    ],
)
def test_impossible_closures_are_refused_and_store_nothing(
    app: App, cova: str, changes: dict[str, str], error: str
) -> None:
    good = create_reference(app)
    with pytest.raises(ValidationError, match=error):
        create_reference(app, **changes)
    assert count(app, Notice) == 1
    assert app.notices.get(OPERATOR, good).status == "active"


def test_a_broken_template_is_reported_at_creation_and_stores_nothing(
    app: App, cova: str, tmp_path: Path
) -> None:
    templates = tmp_path / "broken"
    shutil.copytree(default_templates_dir(), templates)
    (templates / "sms" / "closure.en.txt.j2").write_text("{{ location.nmae }}")
    broken = build_app(app.settings.model_copy(update={"templates_dir": templates}), app.clock)
    try:
        with pytest.raises(TemplateError, match="nmae"):
            create_reference(broken)
    finally:
        broken.close()
    assert count(app, Notice) == 0


def test_preview_shows_segments_encoding_and_disabled_channels(app: App, cova: str) -> None:
    notice_id = create_reference(app)
    no_email = build_app(
        app.settings.model_copy(update={"smtp_host": None, "email_from": None}), app.clock
    )
    try:
        preview = no_email.previews.of_notice(OPERATOR, notice_id)
    finally:
        no_email.close()
    assert (
        preview.messages["sms"][0].segments == 2 and preview.messages["sms"][0].encoding == "GSM-7"
    )
    assert "12:30 PM" in preview.messages["sms"][0].text
    assert preview.channels["email"].startswith("email disabled")
    assert any("NOTIFIER_SMTP_HOST" in w for w in preview.warnings)


def test_fan_out_gives_one_delivery_per_address_and_records_why_others_were_skipped(
    app: App, cova: str, clock: FrozenClock
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app)
    assert app.fanout.fire_due() == 1
    assert app.fanout.fire_due() == 0  # exactly once
    rows = {(d.channel, d.state) for d in app.deliveries.log(OPERATOR, notice_id)}
    by_channel: dict[str, list[str]] = {}
    for d in app.deliveries.log(OPERATOR, notice_id):
        by_channel.setdefault(d.channel, []).append(d.state)
    # Phones: 0111 (p1), 0112 (p2+p3 shared, one text), 0114 (no consent), 0115 (no consent).
    assert sorted(by_channel["sms"]) == ["pending", "pending", "skipped", "skipped"]
    # Emails: maria, jane, ana consent; tom does not.
    assert sorted(by_channel["email"]) == ["pending", "pending", "pending", "skipped"]
    assert ("sms", "skipped") in rows
    skipped = app.deliveries.log(OPERATOR, notice_id, "skipped")
    assert {d.error for d in skipped} == {"no SMS consent", "no email consent"}
    assert count(app, Delivery) == 8
    # The history shows each one queued as the fan-out decided, derived from its row.
    assert count(app, DeliveryEvent) == 0
    for d in app.deliveries.log(OPERATOR, notice_id):
        _, events = app.deliveries.history(OPERATOR, d.id)
        assert [(e.kind, e.state, e.detail, e.attempt) for e in events] == [
            ("queued", d.state, d.error, 0)
        ]
        assert events[0].at == clock.now().isoformat()


def test_a_delivery_skipped_after_the_fan_out_shows_it_was_queued_pending(
    app: App, cova: str, clock: FrozenClock
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app)
    app.fanout.fire_due()
    clock.advance(60)
    assert app.consent.opt_out("sms", "+15405550111", Source.KEYWORD)  # STOP before it went
    (maria,) = [d for d in app.deliveries.log(OPERATOR, notice_id) if d.address.endswith("0111")]
    _, events = app.deliveries.history(OPERATOR, maria.id)
    assert [(e.kind, e.state, e.detail) for e in events] == [
        ("queued", "pending", None),  # derived: queued as pending, not as it ended
        ("skipped", "skipped", "opted out"),
    ]
    assert events[0].at < events[1].at


def test_a_broadcast_due_after_its_closure_ended_expires_with_a_reason(
    app: App, cova: str, clock: FrozenClock
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app, send_at="2025-02-19 07:00")
    clock.advance(3 * 24 * 3600)  # the service was down until after the closure
    app.fanout.fire_due()
    broadcast = app.notices.get(OPERATOR, notice_id).broadcasts[0]
    assert broadcast.status == "expired"
    assert "before the broadcast could go out" in str(broadcast.status_reason)
    assert count(app, Delivery) == 0


def test_cancelling_withdraws_waiting_deliveries(app: App, cova: str) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app)
    app.fanout.fire_due()
    view = app.notices.cancel(OPERATOR, notice_id)
    assert view.status == "cancelled"
    states = {d.state for d in app.deliveries.log(OPERATOR, notice_id)}
    assert states == {"cancelled", "skipped"}
    with pytest.raises(ValidationError, match="already cancelled"):
        app.notices.cancel(OPERATOR, notice_id)


def test_cancelling_a_scheduled_notice_means_it_never_fans_out(
    app: App, cova: str, clock: FrozenClock
) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app, send_at="2025-02-19 07:00")
    app.notices.cancel(OPERATOR, notice_id)
    clock.advance(14 * 3600)
    assert app.fanout.fire_due() == 0
    assert app.notices.get(OPERATOR, notice_id).broadcasts[0].status == "cancelled"
    assert count(app, Delivery) == 0


def test_unknown_notice_is_a_clear_error(app: App) -> None:
    with pytest.raises(NotFoundError, match="no notice with id 999"):
        app.previews.of_notice(OPERATOR, 999)


def test_consent_granted_or_withdrawn_by_an_import_is_in_the_ledger(app: App, cova: str) -> None:
    from notifier.storage.models import ConsentEvent

    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    changed = PATIENTS_CSV.replace(
        "p1,Maria,Lopez,540-555-0111,maria@example.org,en,cova,yes,yes",
        "p1,Maria,Lopez,540-555-0111,maria@example.org,en,cova,no,yes",
    )
    app.patients.import_patients(OPERATOR, io.StringIO(changed))
    with app.db.session() as s:
        events = s.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        ledger = [(e.channel, e.address, e.source, e.old, e.new) for e in events]
    # First import: every consent given (p1, p2, p3 SMS; p1, p3, p4 email); p5 gave none.
    assert len([e for e in ledger if e[3] == "consent_withheld"]) == 6
    assert ledger[-1] == ("sms", "+15405550111", "import", "consent_granted", "consent_withheld")
    assert len(ledger) == 7  # the unchanged email consent of p1 is not recorded again


NEW_PATIENT = f"{HEADER}\np9,Noel,New,540-555-0119,noel@example.org,en,cova,yes,yes\n"


@pytest.mark.parametrize(
    ("reminder_audience", "noel_reminded"), [("recipients", False), ("everyone", True)]
)
def test_a_reminder_repeats_the_message_to_whom_the_first_reached_unless_asked(
    app: App, cova: str, clock: FrozenClock, reminder_audience: str, noel_reminded: bool
) -> None:
    """By default a reminder goes to the first message's recipients, not to patients imported
    since (they never heard the first); the manager may ask for the audience as it is then."""
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(
        app, reminder_at="2025-02-19 07:30", reminder_audience=reminder_audience
    )
    broadcasts = app.notices.get(OPERATOR, notice_id).broadcasts
    assert [str(b.send_at)[:16] for b in broadcasts] == ["2025-02-18T18:00", "2025-02-19T07:30"]
    texts, emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    run_once(app, {"sms": texts, "email": emails})
    reached = {m.to for m in texts.sent + emails.sent}
    assert len(reached) == 5
    app.patients.import_patients(
        OPERATOR, io.StringIO(NEW_PATIENT)
    )  # Noel, after the first message
    clock.set(datetime.fromisoformat("2025-02-19T07:30:00-05:00"))
    again_texts, again_emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    run_once(app, {"sms": again_texts, "email": again_emails})
    reminded = {m.to for m in again_texts.sent + again_emails.sent}
    noel = {"+15405550119", "noel@example.org"}
    assert reminded == (reached | noel if noel_reminded else reached)
    first = {m.to: m.text for m in texts.sent + emails.sent}
    again = {m.to: m.text for m in again_texts.sent + again_emails.sent}
    assert all(again[to] == first[to] for to in reached)  # the same words again
    assert (broadcasts[1].repeats_id is not None) is (reminder_audience == "recipients")


def test_a_reminder_follows_a_patients_changes_since_the_first_message(
    app: App, cova: str, clock: FrozenClock
) -> None:
    """Maria moved to a new number and Jane withdrew her email consent after the first message:
    the reminder goes to neither old address, and the log says why."""
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    notice_id = create_reference(app, reminder_at="2025-02-19 07:30")
    texts, emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    run_once(app, {"sms": texts, "email": emails})
    assert {"+15405550111", "jane@example.org"} <= {m.to for m in texts.sent + emails.sent}
    app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            f"{HEADER}\np1,Maria,Lopez,540-555-0191,maria@example.org,en,cova,yes,yes\n"
            "p3,Jane,Smith,540-555-0112,jane@example.org,en,cova,yes,no\n"
        ),
    )
    clock.set(datetime.fromisoformat("2025-02-19T07:30:00-05:00"))
    again_texts, again_emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    run_once(app, {"sms": again_texts, "email": again_emails})
    reminded = {m.to for m in again_texts.sent + again_emails.sent}
    assert "+15405550111" not in reminded and "jane@example.org" not in reminded
    assert {"+15405550112", "maria@example.org", "ana@example.org"} <= reminded
    reminder = app.notices.get(OPERATOR, notice_id).broadcasts[1].id
    with app.db.session() as s:
        skipped = s.scalars(
            select(Delivery.error_message).where(
                Delivery.broadcast_id == reminder, Delivery.state == "skipped"
            )
        ).all()
    assert len(skipped) == 2 and all("consent" in (reason or "") for reason in skipped)


@pytest.mark.parametrize(
    ("reminder", "error"),
    [
        ("2025-02-18 17:00", "the reminder time 2025-02-18 17:00 must be after the send time"),
        ("2025-02-21 09:00", "the reminder: the send time 2025-02-21 09:00 is after the closure"),
        ("soon", "the reminder time 'soon' is not a date and time"),
    ],
)
def test_an_impossible_reminder_is_refused_and_stores_nothing(
    app: App, cova: str, reminder: str, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        create_reference(app, reminder_at=reminder)
    assert count(app, Notice) == 0
