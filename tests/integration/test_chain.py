"""Updates and cancellations as a chain, the weekly SMS cap, and appointment-aware audiences,
against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select

from notifier.bootstrap import App, build_app
from notifier.channels.email import EmailChannel
from notifier.clock import FrozenClock
from notifier.storage import reports
from notifier.storage.models import Delivery
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel, refusing
from tests.support.patients import PATIENTS_CSV
from tests.support.peers import NEW_YORK, peer_settings

MARIA = "+15405550111"
SHARED = "+15405550112"  # John and Jane Smith


def send_all(app: App, sms: FakeChannel, email: FakeChannel | None = None) -> None:
    app.fanout.fire_due()
    channels = {"sms": sms} | ({"email": email} if email else {})
    app.dispatcher(channels, "w1").drain()  # type: ignore[arg-type]


def reference(app: App, **changes: object) -> int:
    values: dict[str, object] = {
        "location": "cova",
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "inclement weather",
    } | changes
    return app.notices.create(OPERATOR, NoticeRequest(**values)).id  # type: ignore[arg-type]


def by_state(app: App, notice_id: int) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for d in app.deliveries.log(OPERATOR, notice_id):
        counts[(d.channel, d.state)] = counts.get((d.channel, d.state), 0) + 1
    return counts


@pytest.fixture
def patients(app: App, cova: str) -> None:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))


# --- the update chain ---------------------------------------------------------------------


def test_an_update_corrects_those_told_and_tells_the_rest_the_latest_plainly(
    app: App, patients: None
) -> None:
    original = reference(app)
    first = refusing(MARIA)
    send_all(app, first)  # texts go out (Maria's fails); emails are still waiting
    assert by_state(app, original)[("email", "pending")] == 3

    update = app.notices.update(OPERATOR, original, ends="2025-02-20 12:00", reason="ice")

    assert (update.version, update.supersedes_id, update.root_id) == (2, original, original)
    assert update.change == "update"
    withdrawn = [
        d
        for d in app.deliveries.log(OPERATOR, original)
        if d.channel == "email" and d.state != "skipped"
    ]
    assert {d.state for d in withdrawn} == {"cancelled"}
    assert {d.error for d in withdrawn} == {f"superseded by notice {update.id}"}
    assert app.notices.get(OPERATOR, original).status == "superseded"

    second, emails = FakeChannel(), FakeChannel(spec=EmailChannel.spec)
    send_all(app, second, emails)
    texts = {m.to: m.text for m in second.sent}
    assert sorted(texts) == [MARIA, SHARED]
    # The Smiths were told the original: the correction. Maria never was (her text failed):
    # the latest version, plainly.
    assert texts[SHARED].startswith("UPDATE: New times, new reason. Due to ice, COVA Spine")
    assert texts[MARIA].startswith("Due to ice, COVA Spine and Pain Center")
    for text in texts.values():
        assert "opening late Thursday, 2/20/2025 at 12:00 PM" in text
        assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in text
    # Nobody had an email yet (they were withdrawn): each gets the latest version, plainly.
    assert sorted(m.to for m in emails.sent) == [
        "ana@example.org",
        "jane@example.org",
        "maria@example.org",
    ]
    assert all(not str(m.subject).startswith("Update") for m in emails.sent)
    # Nobody got two copies of one version.
    assert len(first.sent) == 2 and len(second.sent) == 2 and len(emails.sent) == 3


def test_an_update_of_an_update_corrects_everyone_any_version_reached(
    app: App, patients: None
) -> None:
    original = reference(app, channels=("sms",))
    send_all(app, refusing(MARIA))  # the Smiths told; Maria's text refused
    v2 = app.notices.update(OPERATOR, original, reason="ice")
    second = FakeChannel()
    send_all(app, second)  # the Smiths corrected; Maria told v2 plainly
    assert sorted((m.to, m.text.startswith("UPDATE:")) for m in second.sent) == [
        (MARIA, False),
        (SHARED, True),
    ]
    with pytest.raises(Exception, match=f"replaced by notice {v2.id}"):
        app.notices.update(OPERATOR, original, reason="snow")
    v3 = app.notices.update(OPERATOR, v2.id, reason="snow and ice")
    third = FakeChannel()
    send_all(app, third)
    assert (v3.version, v3.root_id, v3.supersedes_id) == (3, original, v2.id)
    assert sorted(m.to for m in third.sent) == [MARIA, SHARED]
    assert all(m.text.startswith("UPDATE: New reason. Due to snow and ice") for m in third.sent)


def test_every_delivery_of_an_update_has_exactly_one_queued_event_with_its_first_state(
    app: App, patients: None
) -> None:
    original = reference(app, channels=("sms",))
    send_all(app, refusing(MARIA))
    app.notices.update(
        OPERATOR, original, reason="ice"
    )  # earlier recipients first, then the audience
    app.fanout.fire_due()
    with app.db.session() as s:
        ids = list(s.scalars(select(Delivery.id)))
        events = reports.events_for(s, ids)
    queued = [(e.delivery_id, e.state, e.detail) for e in events if e.kind == "queued"]
    assert sorted(d for d, _, _ in queued) == sorted(ids)
    assert len(ids) > 4  # both versions, some skipped (no consent), some pending
    first_states = {(state, detail) for _, state, detail in queued}
    assert ("pending", None) in first_states
    assert ("skipped", "no SMS consent") in first_states


def test_an_update_before_anything_went_out_simply_replaces_the_notice(
    app: App, patients: None, clock: FrozenClock
) -> None:
    original = reference(app, send_at="2025-02-19 07:00", channels=("sms",))
    update = app.notices.update(
        OPERATOR, original, starts="2025-02-19 10:00", ends="2025-02-20 00:00"
    )
    assert update.change == "original"  # nobody was told: the new version is the first word
    assert update.broadcasts[0].send_at == "2025-02-19T07:00:00-05:00"
    clock.set(datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK))
    channel = FakeChannel()
    send_all(app, channel)
    assert sorted(m.to for m in channel.sent) == [MARIA, SHARED]
    assert all(m.text.startswith("Due to inclement weather") for m in channel.sent)
    assert by_state(app, original) == {}


def test_cancel_with_notify_tells_only_those_who_heard_we_are_open_after_all(
    app: App, patients: None
) -> None:
    original = reference(app)
    send_all(app, refusing(MARIA))
    view = app.notices.cancel(OPERATOR, original, notify=True)
    assert (view.change, view.supersedes_id, view.version) == ("cancellation", original, 2)
    assert app.notices.get(OPERATOR, original).status == "cancelled"
    emails = app.deliveries.log(OPERATOR, original)
    assert {d.state for d in emails if d.channel == "email" and d.state != "skipped"} == {
        "cancelled"
    }
    channel = FakeChannel()
    send_all(app, channel)
    assert [m.to for m in channel.sent] == [SHARED]
    assert channel.sent[0].text.startswith(
        "Good news: COVA Spine and Pain Center will be open after all. The closure we announced "
        "for Wednesday, 2/19/2025 and Thursday, 2/20/2025 is cancelled"
    )


def test_cancel_with_notify_when_nobody_was_told_sends_nothing(app: App, patients: None) -> None:
    original = reference(app, send_at="2025-02-19 07:00")
    view = app.notices.cancel(OPERATOR, original, notify=True)
    assert (view.id, view.status) == (original, "cancelled")
    channel = FakeChannel()
    send_all(app, channel)
    assert channel.sent == []


# --- the weekly SMS cap -------------------------------------------------------------------


@pytest.fixture
def capped_app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = build_app(
        peer_settings(database_url, fake_twilio, fake_smtp, sms_weekly_cap=2), clock=clock
    )
    built.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    built.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    yield built
    built.close()


def test_texts_beyond_the_weekly_cap_are_skipped_with_the_reason(
    capped_app: App, clock: FrozenClock
) -> None:
    app = capped_app
    days = ("2025-02-19", "2025-02-20", "2025-02-21")
    notices = [reference(app, starts=f"{d} 08:00", ends=f"{d} 10:00") for d in days]
    send_all(app, FakeChannel())
    third = [d for d in app.deliveries.log(OPERATOR, notices[2]) if d.channel == "sms"]
    assert {d.state for d in third} == {"skipped"}
    reasons = sorted(d.error or "" for d in third)
    assert reasons[0].startswith("no SMS consent")  # Ana and Tom: not texted anyway
    assert sum("weekly SMS cap reached: 2 texts" in r for r in reasons) == 2
    emails = [d for d in app.deliveries.log(OPERATOR, notices[2]) if d.channel == "email"]
    assert sorted(d.state for d in emails) == ["pending", "pending", "pending", "skipped"]
    # email is never capped (Tom has no consent)

    # A correction to people already told is not capped.
    update = app.notices.update(OPERATOR, notices[1], reason="ice")
    channel = FakeChannel()
    send_all(app, channel)
    assert sorted(m.to for m in channel.sent) == [MARIA, SHARED]
    assert by_state(app, update.id)[("sms", "sent")] == 2

    # A week later the window has rolled on.
    clock.advance(8 * 86400)
    later = reference(app, starts="2025-03-03 08:00", ends="2025-03-03 10:00", channels=("sms",))
    send_all(app, FakeChannel())
    assert by_state(app, later) == {("sms", "sent"): 2, ("sms", "skipped"): 2}  # no consent


# --- appointments -------------------------------------------------------------------------

APPOINTMENTS_CSV = """\
external_id,patient_external_id,location,starts_at,duration_minutes,provider,status
a1,p1,cova,2025-02-20 10:30,30,Dr. Patel,scheduled
a2,p3,cova,2025-02-19 12:00,30,Dr. Chen,confirmed
a3,p3,cova,2025-02-21 09:00,30,Dr. Chen,scheduled
a4,p4,cova,2025-02-19 16:00,45,Dr. Patel,cancelled
"""
"""a1 is inside the closure; a2 ends exactly when it starts; a3 is after; a4 was cancelled."""


@pytest.fixture
def appointments(app: App, patients: None) -> None:
    report = app.patients.import_appointments(OPERATOR, io.StringIO(APPOINTMENTS_CSV))
    assert (report.created, report.errors) == (4, [])


def test_bad_appointment_rows_are_reported_by_line_and_good_rows_land(
    app: App, patients: None
) -> None:
    csv_text = APPOINTMENTS_CSV + (
        "b1,nobody,cova,2025-02-20 10:00,30,Dr. Patel,scheduled\n"
        "b2,p1,cova,2025-02-20 25:00,30,Dr. Patel,scheduled\n"
        "b3,p1,cova,2025-02-20 10:00,half,Dr. Patel,scheduled\n"
        "b4,p1,cova,2025-03-09 02:30,30,Dr. Patel,scheduled\n"
        "b5,p1,cova,2025-02-20 11:00,30,Dr. Patel,maybe\n"
        "a1,p1,cova,2025-02-20 11:00,30,Dr. Patel,scheduled\n"
    )
    report = app.patients.import_appointments(OPERATOR, io.StringIO(csv_text))
    assert report.created == 4
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [6, 7, 8, 9, 10, 11]
    assert "patient 'nobody' not found" in reasons[6]
    assert "not a date and time" in reasons[7]
    assert "duration_minutes 'half'" in reasons[8]
    assert "does not exist in America/New_York" in reasons[9]
    assert "status 'maybe'" in reasons[10]
    assert "repeats line 2" in reasons[11]


def test_affected_lists_only_appointments_overlapping_the_closure(
    app: App, appointments: None
) -> None:
    notice = reference(app)
    rows = app.notices.affected(OPERATOR, notice)
    assert [(r.appointment, r.patient, r.starts, r.provider) for r in rows] == [
        ("a1", "p1", "2025-02-20T10:30:00-05:00", "Dr. Patel")
    ]


def test_audience_both_names_the_appointment_for_the_affected_and_tells_the_rest(
    app: App, appointments: None
) -> None:
    notice = reference(app, audience="both")
    channel = FakeChannel()
    send_all(app, channel)
    bodies = {m.to: m.text for m in channel.sent}
    assert sorted(bodies) == [MARIA, SHARED]
    assert bodies[MARIA] == (
        "Due to inclement weather, COVA Spine and Pain Center will be closing early Wednesday, "
        "2/19/2025 at 12:30 PM and will be closed all day Thursday, 2/20/2025. Maria, your "
        "appointment Thursday, 2/20/2025 at 10:30 AM with Dr. Patel is cancelled. We will call "
        "you to reschedule, or call us at (540) 555-0100. Reply STOP to opt out."
    )
    assert bodies[SHARED].startswith("Due to inclement weather")
    assert "appointment" not in bodies[SHARED]
    with app.db.session() as s:
        kinds = dict(
            s.execute(
                select(Delivery.address, Delivery.message_kind).where(Delivery.channel == "sms")
            ).all()
        )
    assert (kinds[MARIA], kinds[SHARED]) == ("appointment", None)
    preview = app.previews.of_notice(OPERATOR, notice, "sms")
    assert preview.longest.get("sms") is not None
    assert preview.longest.get("sms").template == "appointment"
    assert preview.longest.get("sms").text == bodies[MARIA]
    assert preview.longest.get("sms").segments == 3


def test_audience_affected_tells_only_patients_with_an_affected_appointment(
    app: App, appointments: None
) -> None:
    reference(app, audience="affected")
    channel = FakeChannel()
    email = FakeChannel(spec=EmailChannel.spec)
    send_all(app, channel, email)
    assert [m.to for m in channel.sent] == [MARIA]
    assert [m.to for m in email.sent] == ["maria@example.org"]
    assert email.sent[0].subject == (
        "COVA Spine and Pain Center: your appointment on Thu 2/20 is cancelled"
    )
    assert "Dr. Patel" in email.sent[0].text


def test_a_spanish_speaking_patient_gets_her_appointment_in_spanish(
    app: App, appointments: None
) -> None:
    spanish = PATIENTS_CSV.replace(
        "p1,Maria,Lopez,540-555-0111,maria@example.org,en",
        "p1,María,Lopez,540-555-0111,maria@example.org,es",
    )
    app.patients.import_patients(OPERATOR, io.StringIO(spanish))
    reference(app, audience="affected", reason="el mal tiempo", channels=("sms",))
    channel = FakeChannel()
    send_all(app, channel)
    assert channel.sent[0].text.endswith(
        "María, su cita del jueves 20 de febrero de 2025 a las 10:30 a. m. con Dr. Patel queda "
        "cancelada. Le llamaremos para darle otra cita, o llámenos al (540) 555-0100. "
        "Responda STOP para cancelar."
    )


def test_a_notice_with_several_intervals_matches_appointments_in_any_of_them(
    app: App, appointments: None
) -> None:
    notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts=None,
            ends=None,
            reason="a power cut",
            intervals=("2025-02-19 12:30/2025-02-19 17:00", "2025-02-21 08:00/2025-02-21 09:15"),
            audience="affected",
        ),
    ).notice
    assert len(notice.intervals) == 2
    assert [r.appointment for r in app.notices.affected(OPERATOR, notice.id)] == ["a3"]
