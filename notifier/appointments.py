"""Appointment CSV import: the same row-level report as patients, times in the location's zone."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from notifier import store
from notifier.clock import Clock
from notifier.db import Database
from notifier.domain import parse_local, zone
from notifier.errors import ValidationError
from notifier.importer import Chunk, ImportReport, Row, RowError, import_rows
from notifier.models import Appointment, Location

COLUMNS = (
    "external_id",
    "patient_external_id",
    "location",
    "starts_at",
    "duration_minutes",
    "provider",
    "status",
)
STATUSES = ("scheduled", "confirmed", "cancelled", "completed", "no-show")


def import_appointments(db: Database, clock: Clock, stream: TextIO) -> ImportReport:
    """Upsert appointments by ``external_id``; the patient must exist at the same location."""
    with db.session() as s:
        locations = {loc.slug: loc for loc in store.locations(s)}
    report = import_rows(
        stream,
        COLUMNS,
        lambda row: _clean(row, locations),
        lambda chunk, report: _upsert(db, clock, chunk, report),
    )
    report.errors.sort(key=lambda error: error.line)
    return report


def _clean(row: Row, locations: dict[str, Location]) -> dict[str, object]:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    if not cell("external_id"):
        raise ValidationError("external_id is empty")
    if not cell("patient_external_id"):
        raise ValidationError("patient_external_id is empty")
    location = locations.get(cell("location").lower())
    if location is None:
        raise ValidationError(f"location {cell('location')!r} does not exist")
    starts = parse_local(cell("starts_at"), zone(location.timezone), "starts_at")
    try:
        minutes = int(cell("duration_minutes"))
    except ValueError:
        raise ValidationError(
            f"duration_minutes {cell('duration_minutes')!r} is not a whole number"
        ) from None
    if not 0 < minutes <= 24 * 60:
        raise ValidationError(f"duration_minutes {minutes} is not between 1 and 1440")
    status = cell("status").lower() or "scheduled"
    if status not in STATUSES:
        raise ValidationError(f"status {cell('status')!r} is not one of {', '.join(STATUSES)}")
    return {
        "external_id": cell("external_id"),
        "patient_external_id": cell("patient_external_id"),
        "location_id": location.id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=minutes),
        "provider": cell("provider"),
        "status": status,
    }


def _upsert(db: Database, clock: Clock, chunk: Chunk, report: ImportReport) -> None:
    """Store a chunk; a row whose patient is unknown (or elsewhere) is reported, not stored."""
    now = clock.now()
    with db.session() as s:
        patients = store.patients_by_external_ids(
            s, [str(v["patient_external_id"]) for _, v in chunk]
        )
        existing = store.appointments_by_external_ids(s, [str(v["external_id"]) for _, v in chunk])
        for line, values in chunk:
            patient_external_id = str(values.pop("patient_external_id"))
            patient = patients.get(patient_external_id)
            if patient is None or patient.location_id != values["location_id"]:
                where = "" if patient is None else " at this location"
                reason = f"patient {patient_external_id!r} not found{where}"
                report.errors.append(RowError(line, str(values["external_id"]), reason))
                continue
            appointment = existing.get(str(values["external_id"]))
            if appointment is None:
                s.add(Appointment(**values, patient_id=patient.id, created_at=now, updated_at=now))
                report.created += 1
            else:
                for name, value in values.items():
                    setattr(appointment, name, value)
                appointment.patient_id = patient.id
                appointment.updated_at = now
                report.updated += 1
