"""The SQL that finds the appointments a closure hits (``storage.notices.overlapping``) and its
pure twin (``domain.closures.affects``) agree, on SQLite and PostgreSQL: generated closures and
appointments, with appointments that only touch an interval's edge, plus the exact edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session

from notifier.bootstrap import App
from notifier.domain.closures import Interval, affects
from notifier.domain.notices import ACTIVE_APPOINTMENT_STATUSES, APPOINTMENT_STATUSES
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
from notifier.storage.models import Appointment, Patient
from tests.support.actors import OPERATOR

NEW_YORK = ZoneInfo("America/New_York")
ORIGIN = datetime(2025, 2, 19, 0, 0, tzinfo=NEW_YORK)
SPAN_MINUTES = 3 * 24 * 60  # closures and appointments within three days of 2025-02-19
PATIENTS = 3


@dataclass(frozen=True)
class Visit:
    patient: int  # index into the patients inserted for the example
    starts: datetime
    ends: datetime
    status: str


def at(minutes: int) -> datetime:
    return ORIGIN + timedelta(minutes=minutes)


# The same instant may reach the query in the location's zone or in UTC.
zones = st.sampled_from([NEW_YORK, UTC])


@st.composite
def closed_intervals(draw: st.DrawFn) -> list[Interval]:
    result = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        starts = draw(st.integers(min_value=-SPAN_MINUTES, max_value=SPAN_MINUTES))
        length = draw(st.integers(min_value=1, max_value=2 * 24 * 60))
        tz = draw(zones)
        result.append((at(starts).astimezone(tz), at(starts + length).astimezone(tz)))
    return result


@st.composite
def visits(draw: st.DrawFn, intervals: Sequence[Interval]) -> list[Visit]:
    """Appointments anywhere, and appointments that end exactly when an interval starts or
    start exactly when one ends (touching, not overlapping)."""
    result = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        duration = timedelta(minutes=draw(st.integers(min_value=1, max_value=240)))
        placement = draw(st.sampled_from(["anywhere", "ends at a start", "starts at an end"]))
        if placement == "anywhere":
            starts = at(draw(st.integers(min_value=-SPAN_MINUTES, max_value=SPAN_MINUTES)))
        else:
            closed_from, closed_to = draw(st.sampled_from(intervals))
            starts = closed_from - duration if placement == "ends at a start" else closed_to
        result.append(
            Visit(
                patient=draw(st.integers(min_value=0, max_value=PATIENTS - 1)),
                starts=starts.astimezone(NEW_YORK),
                ends=(starts + duration).astimezone(NEW_YORK),
                status=draw(st.sampled_from(APPOINTMENT_STATUSES)),
            )
        )
    return result


def location_id(s: Session, slug: str) -> int:
    location = location_rows.location_by_slug(s, slug)
    assert location is not None
    return location.id


def replace_appointments(app: App, slug: str, planned: Sequence[Visit]) -> dict[int, Visit]:
    """Empty the appointments and patients, insert these: the stored id of each visit."""
    now = app.clock.now()
    with app.db.session() as s:
        s.execute(delete(Appointment))
        s.execute(delete(Patient))
        where = location_id(s, slug)
        patients = [
            Patient(
                external_id=f"twin-p{i}",
                first_name=f"Pat{i}",
                last_name="Twin",
                location_id=where,
                created_at=now,
                updated_at=now,
            )
            for i in range(PATIENTS)
        ]
        s.add_all(patients)
        s.flush()
        rows = [
            Appointment(
                external_id=f"twin-a{i}",
                patient_id=patients[visit.patient].id,
                location_id=where,
                starts_at=visit.starts,
                ends_at=visit.ends,
                provider="Dr. Twin",
                status=visit.status,
                created_at=now,
                updated_at=now,
            )
            for i, visit in enumerate(planned)
        ]
        s.add_all(rows)
        s.flush()
        return {row.id: visit for row, visit in zip(rows, planned, strict=True)}


def found_by_sql(app: App, slug: str, intervals: Sequence[Interval]) -> list[int]:
    with app.db.session() as s:
        return [a.id for a in notice_rows.affected_appointments(s, location_id(s, slug), intervals)]


def found_by_twin(stored: dict[int, Visit], intervals: Sequence[Interval]) -> set[int]:
    return {
        appointment_id
        for appointment_id, visit in stored.items()
        if affects(visit.starts, visit.ends, intervals)
        and visit.status in ACTIVE_APPOINTMENT_STATUSES
    }


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
)
@given(data=st.data())
def test_the_sql_overlap_finds_exactly_the_appointments_its_pure_twin_says_a_closure_hits(
    app: App, cova: str, data: st.DataObject
) -> None:
    intervals = data.draw(closed_intervals(), label="intervals")
    planned = data.draw(visits(intervals), label="appointments")
    stored = replace_appointments(app, cova, planned)

    found = found_by_sql(app, cova, intervals)

    assert len(found) == len(set(found)), "an appointment came back twice"
    assert set(found) == found_by_twin(stored, intervals)


EDGE = (at(12 * 60), at(14 * 60))  # Wednesday 12:00-14:00 in New York


@pytest.mark.parametrize(
    ("starts", "ends", "status", "overlaps"),
    [
        pytest.param(at(11 * 60), at(12 * 60), "scheduled", False, id="ends-when-it-starts"),
        pytest.param(at(14 * 60), at(15 * 60), "confirmed", False, id="starts-when-it-ends"),
        pytest.param(at(11 * 60 + 1), at(12 * 60 + 1), "scheduled", True, id="last-minute-in"),
        pytest.param(at(14 * 60 - 1), at(15 * 60), "confirmed", True, id="first-minute-in"),
        pytest.param(at(12 * 60 + 30), at(13 * 60), "cancelled", True, id="cancelled-inside"),
    ],
)
def test_an_appointment_touching_a_closed_interval_is_not_hit_but_one_minute_inside_is(
    app: App, cova: str, starts: datetime, ends: datetime, status: str, overlaps: bool
) -> None:
    stored = replace_appointments(app, cova, [Visit(0, starts, ends, status)])
    hit = overlaps and status in ACTIVE_APPOINTMENT_STATUSES

    assert affects(starts, ends, [EDGE]) is overlaps
    assert set(found_by_sql(app, cova, [EDGE])) == (set(stored) if hit else set())
    utc_edge = (EDGE[0].astimezone(UTC), EDGE[1].astimezone(UTC))
    assert set(found_by_sql(app, cova, [utc_edge])) == (set(stored) if hit else set())


def test_appointments_at_another_location_are_never_hit(app: App, cova: str) -> None:
    app.locations.save(
        OPERATOR, "elsewhere", "Elsewhere Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    stored = replace_appointments(app, cova, [Visit(0, at(12 * 60), at(13 * 60), "scheduled")])

    assert set(found_by_sql(app, cova, [EDGE])) == set(stored)
    assert found_by_sql(app, "elsewhere", [EDGE]) == []
