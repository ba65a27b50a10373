"""One broken notice never stops the others: a stored notice is a fact (never re-checked against
hours edited since), and a broadcast or delivery that breaks anyway is failed with its reason
while everything beside it goes out. Both databases, the real fan-out and dispatcher."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text, update

from notifier.bootstrap import App
from notifier.storage.models import Broadcast, Notice
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER, PATIENTS_CSV, phone

NORTH_PATIENTS = "\n".join(
    [HEADER] + [f"n{i},Nor{i},Test,{phone(100 + i)},,en,north,yes,no" for i in range(4)]
)


@pytest.fixture
def two_clinics(app: App, cova: str) -> App:
    """COVA (Mon–Fri) and a Saturday clinic, "north", each with patients."""
    app.locations.save(
        OPERATOR,
        "north",
        "North Clinic",
        "America/New_York",
        "Mon-Fri 08:00-17:00; Sat 09:00-12:00",
    )
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
    app.patients.import_patients(OPERATOR, io.StringIO(NORTH_PATIENTS))
    return app


def texts_by_location(channel: FakeChannel) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in channel.sent:
        where = "north" if "North Clinic" in message.text else "cova"
        counts[where] = counts.get(where, 0) + 1
    return counts


# Per location: (starts, ends, reason). North's is a Saturday; COVA's a weekday.
CLOSURES = {
    "north": ("2025-02-22 09:00", "2025-02-22 12:00", "a burst pipe"),
    "cova": ("2025-02-20 08:00", "2025-02-21 00:00", "inclement weather"),
}


def closure(app: App, location: str, send_at: str = "2025-02-19 09:00") -> int:
    starts, ends, reason = CLOSURES[location]
    return app.notices.create(
        OPERATOR,
        NoticeRequest(
            location=location,
            starts=starts,
            ends=ends,
            reason=reason,
            channels=("sms",),
            send_at=send_at,
        ),
    ).id


def test_editing_hours_after_a_closure_was_queued_breaks_nothing(two_clinics: App) -> None:
    """The reported outage: a Saturday closure queued, then the clinic's hours edited to
    Mon–Fri. Both clinics' closures due at the same second go out in full, worded as stored."""
    app = two_clinics
    saturday, weekday = closure(app, "north"), closure(app, "cova")
    saved = app.locations.save(
        OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    [reworded] = saved.reworded
    assert reworded.notice_id == saturday and reworded.with_new_settings is None
    assert "does not touch the business hours" in str(reworded.problem)
    assert "closed" in reworded.stored and "Saturday, 2/22/2025" in reworded.stored
    assert {n.id for n in app.notices.all(OPERATOR)} == {saturday, weekday}  # the list still works
    app.clock.advance(15 * 3600)  # 2025-02-19 09:00: both due
    assert app.fanout.fire_due() == 2
    channel = FakeChannel()
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"north": 4, "cova": 2}
    north = next(m.text for m in channel.sent if "North Clinic" in m.text)
    assert "Saturday, 2/22/2025" in north  # the words it was created with


def test_a_broken_broadcast_fails_with_its_reason_and_the_healthy_one_goes_out_in_full(
    two_clinics: App,
) -> None:
    app = two_clinics
    broken, healthy = closure(app, "north"), closure(app, "cova")
    with app.db.session() as s:  # a channel this deployment no longer has
        s.execute(update(Broadcast).where(Broadcast.notice_id == broken).values(channels="fax"))
    app.clock.advance(15 * 3600)
    assert app.fanout.fire_due() == 1
    channel = FakeChannel()
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"cova": 2}
    [failed] = app.notices.get(OPERATOR, broken).broadcasts
    assert failed.status == "failed"
    assert "channel 'fax' is not registered" in str(failed.status_reason)
    assert f"notifier notice retry {broken}" in str(failed.status_reason)
    assert app.deliveries.log(OPERATOR, broken) == []  # its transaction left nothing half-done
    assert app.notices.get(OPERATOR, healthy).broadcasts[0].status == "sending"
    assert app.fanout.fire_due() == 0  # failed stays failed: no retry loop every tick

    # Fixed, then retried: it goes out.
    with app.db.session() as s:
        s.execute(update(Broadcast).where(Broadcast.notice_id == broken).values(channels="sms"))
    assert app.notices.retry(OPERATOR, broken) == 1
    assert app.fanout.fire_due() == 1
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"cova": 2, "north": 4}


def test_a_notice_whose_stored_facts_are_unreadable_fails_its_own_deliveries_only(
    two_clinics: App,
) -> None:
    """Corrupted after the fan-out: its deliveries fail in the dispatcher's batch, with the
    reason; the other notice's deliveries in the same batch are sent."""
    app = two_clinics
    broken, healthy = closure(app, "north", "now"), closure(app, "cova", "now")
    assert app.fanout.fire_due() == 2
    with app.db.session() as s:
        s.execute(
            update(Notice).where(Notice.id == broken).values(business_hours={"someday": ["x"]})
        )
    channel = FakeChannel()
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"cova": 2}
    failed = [d for d in app.deliveries.log(OPERATOR, broken) if d.state != "skipped"]
    assert {d.state for d in failed} == {"failed"} and len(failed) == 4
    assert all(d.error_code == "internal" for d in failed)
    assert all("could not prepare the message: ValueError" in str(d.error) for d in failed)
    assert {d.state for d in app.deliveries.log(OPERATOR, healthy) if d.state != "skipped"} == {
        "sent"
    }
    assert [n.id for n in app.notices.all(OPERATOR, "north")] == [broken]  # still listed


def test_the_notice_list_shows_a_notice_whose_stored_intervals_are_unreadable(
    two_clinics: App,
) -> None:
    app = two_clinics
    broken, healthy = closure(app, "north"), closure(app, "cova")
    with app.db.session() as s:
        s.execute(
            update(Notice)
            .where(Notice.id == broken)
            .values(intervals="garbled", timezone="Mars/Olympus_Mons")
        )
    listed = {n.id: n for n in app.notices.all(OPERATOR)}
    assert set(listed) == {broken, healthy}
    assert listed[broken].intervals == [] and listed[broken].timezone == "UTC"
    assert listed[healthy].intervals == [["2025-02-20T08:00:00-05:00", "2025-02-21T00:00:00-05:00"]]
    app.clock.advance(15 * 3600)
    assert app.fanout.fire_due() == 1  # it cannot be worded: failed at once, not per patient
    [failed] = app.notices.get(OPERATOR, broken).broadcasts
    assert failed.status == "failed"
    assert "the fan-out failed: ValueError" in str(failed.status_reason)
    channel = FakeChannel()
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"cova": 2}


def test_a_template_that_raises_for_one_patient_fails_that_delivery_and_sends_the_rest(
    app: App, cova: str, tmp_path: object
) -> None:
    import shutil
    from pathlib import Path

    from notifier.bootstrap import build_app
    from notifier.rendering.renderer import default_templates_dir

    templates = Path(str(tmp_path)) / "templates"
    shutil.copytree(default_templates_dir(), templates)
    sms = templates / "sms" / "closure.en.txt.j2"
    # Breaks only for a first name shorter than five letters (Jane, not Maria).
    sms.write_text("{{ patient.first_name[4] if patient.first_name else '' }}" + sms.read_text())
    bad = build_app(app.settings.model_copy(update={"templates_dir": templates}), app.clock)
    try:
        bad.patients.import_patients(OPERATOR, io.StringIO(PATIENTS_CSV))
        created = bad.notices.create(
            OPERATOR,
            NoticeRequest(
                location="cova",
                starts="2025-02-19 12:30",
                ends="2025-02-21 00:00",
                reason="inclement weather",
                channels=("sms",),
            ),
        )
        notice = created.id
        # The manager is told before anything goes out; the notice is stored all the same.
        assert any(
            "cannot be rendered for some patients" in w and "has no element 4" in w
            for w in created.preview.warnings
        ), created.preview.warnings
        bad.fanout.fire_due()
        channel = FakeChannel()
        bad.dispatcher({"sms": channel}).drain()
        log = {d.address: d for d in bad.deliveries.log(OPERATOR, notice) if d.state != "skipped"}
    finally:
        bad.close()
    assert [m.to for m in channel.sent] == ["+15405550111"]  # Maria's went out
    shared = log["+1******0112"]  # John and Jane Smith's phone: first name "John"
    assert shared.state == "failed" and shared.error_code == "template"
    assert "has no element 4" in str(shared.error)


# PostgreSQL refuses invalid JSON on write: this corruption can only exist on SQLite.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_batch_that_cannot_be_loaded_is_prepared_one_by_one(two_clinics: App) -> None:
    """Invalid JSON in a stored notice makes the whole batch's load fail; prepared one by one,
    only that notice's deliveries fail."""
    app = two_clinics
    broken, healthy = closure(app, "north", "now"), closure(app, "cova", "now")
    app.fanout.fire_due()
    with app.db.session() as s:
        s.execute(text("UPDATE notices SET intervals = '[[oops' WHERE id = :id"), {"id": broken})
    channel = FakeChannel()
    app.dispatcher({"sms": channel}).drain()
    assert texts_by_location(channel) == {"cova": 2}
    assert {d.state for d in app.deliveries.log(OPERATOR, healthy) if d.state != "skipped"} == {
        "sent"
    }
    with app.db.session() as s:
        states = dict(
            s.execute(
                text(
                    "SELECT d.state, count(*) FROM deliveries d JOIN broadcasts b "
                    "ON b.id = d.broadcast_id WHERE b.notice_id = :id AND d.state != 'skipped' "
                    "GROUP BY d.state"
                ),
                {"id": broken},
            ).all()
        )
        reasons = s.scalars(
            text(
                "SELECT DISTINCT d.error_message FROM deliveries d JOIN broadcasts b "
                "ON b.id = d.broadcast_id WHERE b.notice_id = :id AND d.state = 'failed'"
            ),
            {"id": broken},
        ).all()
    assert states == {"failed": 4}
    assert all("could not load the delivery" in r for r in reasons)
