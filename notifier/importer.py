"""Patient CSV import: every bad row reported with its line and reason; good rows still land."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from notifier import consent, store
from notifier.clock import Clock
from notifier.contacts import normalize_email, normalize_phone
from notifier.db import Database
from notifier.errors import ValidationError
from notifier.models import Location, Patient

COLUMNS = (
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "language",
    "location",
    "sms_consent",
    "email_consent",
)
_YES = {"yes", "y", "true", "t", "1"}
_NO = {"no", "n", "false", "f", "0", ""}
_LANGUAGE = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,8})*$")
_CHUNK = 1000


@dataclass(frozen=True)
class RowError:
    line: int
    external_id: str
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated


Row = dict[str, str | None]
Chunk = list[tuple[int, dict[str, object]]]


def import_patients(
    db: Database, clock: Clock, stream: TextIO, default_region: str = "US"
) -> ImportReport:
    """Upsert patients by ``external_id``. A wrong header imports nothing and says why."""
    with db.session() as s:
        locations = {loc.slug: loc for loc in store.locations(s)}
    return import_rows(
        stream,
        COLUMNS,
        lambda row: _clean(row, locations, default_region),
        lambda chunk, report: _upsert(db, clock, chunk, report),
    )


def import_rows(
    stream: TextIO,
    columns: Sequence[str],
    clean: Callable[[Row], dict[str, object]],
    upsert: Callable[[Chunk, ImportReport], None],
) -> ImportReport:
    """Read a CSV keyed by ``external_id``: ``clean`` checks each row (raising ValidationError
    with the reason), ``upsert`` stores good rows in chunks. Bad rows are reported by line."""
    reader = csv.DictReader(stream)
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValidationError(
            f"the CSV header lacks column(s) {', '.join(missing)}; expected: {','.join(columns)}"
        )
    reader.fieldnames = header
    report = ImportReport()
    seen: dict[str, int] = {}
    chunk: Chunk = []
    for row in reader:
        line = reader.line_num
        external_id = (row.get("external_id") or "").strip()
        try:
            if None in row:  # more cells than columns
                raise ValidationError(f"{len(row[None])} more cell(s) than the header has")  # type: ignore[index]
            if external_id in seen:
                raise ValidationError(f"external_id repeats line {seen[external_id]}")
            values = clean(row)
        except ValidationError as exc:
            report.errors.append(RowError(line, external_id, str(exc)))
            continue
        seen[external_id] = line
        chunk.append((line, values))
        if len(chunk) >= _CHUNK:
            upsert(chunk, report)
            chunk = []
    if chunk:
        upsert(chunk, report)
    return report


def _clean(
    row: dict[str, str | None], locations: dict[str, Location], region: str
) -> dict[str, object]:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    if not cell("external_id"):
        raise ValidationError("external_id is empty")
    if not cell("first_name"):
        raise ValidationError("first_name is empty")
    location = locations.get(cell("location").lower())
    if location is None:
        raise ValidationError(f"location {cell('location')!r} does not exist")
    phone = normalize_phone(cell("phone"), region) if cell("phone") else None
    email = normalize_email(cell("email")) if cell("email") else None
    language = cell("language").lower().replace("_", "-") or location.default_language
    if not _LANGUAGE.match(language):
        raise ValidationError(f"language {cell('language')!r} is not a language code like 'en'")
    sms_consent = _consent(cell("sms_consent"), "sms_consent")
    email_consent = _consent(cell("email_consent"), "email_consent")
    if sms_consent and phone is None:
        raise ValidationError("sms_consent is yes but there is no phone number")
    if email_consent and email is None:
        raise ValidationError("email_consent is yes but there is no email address")
    return {
        "external_id": cell("external_id"),
        "first_name": cell("first_name"),
        "last_name": cell("last_name"),
        "phone": phone,
        "email": email,
        "language": language.split("-")[0],
        "location_id": location.id,
        "sms_consent": sms_consent,
        "email_consent": email_consent,
    }


def _consent(value: str, column: str) -> bool:
    lowered = value.lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise ValidationError(f"{column} {value!r} is not yes/no")


def _upsert(
    db: Database, clock: Clock, chunk: Iterable[tuple[int, dict[str, object]]], report: ImportReport
) -> None:
    now = clock.now()
    rows = list(chunk)
    with db.session() as s:
        existing = store.patients_by_external_ids(s, [str(v["external_id"]) for _, v in rows])
        applied: list[tuple[Patient, dict[str, object] | None]] = []
        for _, values in rows:
            patient = existing.get(str(values["external_id"]))
            if patient is None:
                patient = Patient(**values, created_at=now, updated_at=now)
                s.add(patient)
                applied.append((patient, None))
                report.created += 1
            else:
                before = {
                    "sms_consent": patient.sms_consent,
                    "email_consent": patient.email_consent,
                }
                for name, value in values.items():
                    setattr(patient, name, value)
                patient.updated_at = now
                applied.append((patient, before))
                report.updated += 1
        s.flush()  # ids for the ledger
        for patient, before in applied:
            consent.record_imported_consent(s, patient, before, now)
