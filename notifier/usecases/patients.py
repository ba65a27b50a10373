"""Patients and appointments: CSV imports with a report of every bad row (good rows still
land), and the patients list with each channel's consent."""

from __future__ import annotations

import re
from datetime import timedelta

from notifier.channels.lookup import PhoneTypes
from notifier.domain.actors import Actor
from notifier.domain.channels import AddressField
from notifier.domain.closures import parse_local, zone
from notifier.domain.consent import consent_state
from notifier.domain.contacts import mask_address, normalize_email, normalize_phone
from notifier.domain.notices import APPOINTMENT_STATUSES
from notifier.errors import ValidationError
from notifier.storage import consent as consent_rows
from notifier.storage import locations as location_rows
from notifier.storage import patients as patient_rows
from notifier.storage.limits import string_lengths
from notifier.storage.models import Appointment, Location, Patient
from notifier.usecases import UseCase
from notifier.usecases.audit import record
from notifier.usecases.consent import record_imported_consent
from notifier.usecases.csv_import import (
    Cells,
    Chunk,
    Importer,
    ImportReport,
    Progress,
    Row,
    RowError,
    Source,
    import_rows,
)
from notifier.usecases.csv_rows import shown
from notifier.usecases.lookups import location_id_of, require_manager, require_patient_data
from notifier.usecases.retention import restore_suppressed
from notifier.usecases.views import PatientView

# The patients CSV's own columns; each channel adds its consent column (``ChannelSpec``).
PATIENT_COLUMNS = (
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "language",
    "location",
)
APPOINTMENT_COLUMNS = (
    "external_id",
    "patient_external_id",
    "location",
    "starts_at",
    "duration_minutes",
    "provider",
    "status",
)
PHONE_TYPES = ("", "mobile", "landline")  # optional column; empty: not known
_YES = {"yes", "y", "true", "t", "1"}
_NO = {"no", "n", "false", "f", "0", ""}
_PATIENT_ID = "patient_external_id"
_LANGUAGE = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,8})*$")
_ADDRESS_NOUN = {AddressField.PHONE: "phone number", AddressField.EMAIL: "email address"}
# What each stored value may hold, from the models (patient_external_id names a patient).
PATIENT_LENGTHS = string_lengths(Patient)
APPOINTMENT_LENGTHS = string_lengths(Appointment) | {_PATIENT_ID: PATIENT_LENGTHS["external_id"]}


class Patients(UseCase):
    def csv_columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The patients CSV's columns: those it must have, and those it may leave out (a
        channel's consent imported as "no", the phone's type as unknown)."""
        specs = self.deps.channels.values()
        required = PATIENT_COLUMNS + tuple(
            dict.fromkeys(spec.csv_column for spec in specs if spec.csv_required)
        )
        optional = (
            *dict.fromkeys(spec.csv_column for spec in specs if not spec.csv_required),
            "phone_type",
        )
        return required, optional

    def import_patients(
        self, actor: Actor, source: Source, on_progress: Progress | None = None
    ) -> ImportReport:
        """Upsert patients by ``external_id`` from a CSV (bytes, or text). A wrong header
        imports nothing and says why; a bad row is reported and the others land. Rows of a
        location the actor does not have are refused as unknown."""
        require_manager(actor)
        locations = self._locations(actor)
        phone_types = PhoneTypes(self.settings) if self._looks_up() else None
        required, optional = self.csv_columns()
        importer = Importer(
            required,
            PATIENT_LENGTHS,
            lambda row, left_out: self._patient(row, locations, left_out, phone_types),
            lambda chunk, report: self._upsert_patients(actor, chunk, report),
            optional=optional,
        )
        try:
            report = import_rows(source, importer, on_progress)
        finally:
            if phone_types is not None:
                phone_types.close()
        self._audit(actor, "patients_import", report)
        return report

    def _looks_up(self) -> bool:
        """Phone types are looked up when configured and Twilio's account is set."""
        return bool(
            self.settings.twilio_lookup
            and self.settings.twilio_account_sid
            and self.settings.twilio_auth_token
        )

    def import_appointments(
        self, actor: Actor, source: Source, on_progress: Progress | None = None
    ) -> ImportReport:
        """Upsert appointments by ``external_id``; the patient must exist at the same location.
        Times are in the location's zone."""
        require_manager(actor)
        locations = self._locations(actor)
        importer = Importer(
            APPOINTMENT_COLUMNS,
            APPOINTMENT_LENGTHS,
            lambda row, _: _appointment(row, locations),
            lambda chunk, report: self._upsert_appointments(actor, chunk, report),
        )
        report = import_rows(source, importer, on_progress)
        self._audit(actor, "appointments_import", report)
        return report

    def _audit(self, actor: Actor, action: str, report: ImportReport) -> None:
        with self.db.session() as s:
            record(s, actor, action, self.clock.now(), count=report.imported)

    def page(
        self, actor: Actor, location_slug: str | None = None, limit: int = 200, offset: int = 0
    ) -> tuple[list[PatientView], int]:
        """One page of the actor's patients with their consent per channel (addresses masked),
        and the total (a bulk read of patients' data: audited; viewers are refused)."""
        with self.db.session() as s:
            location_id = location_id_of(s, location_slug, actor)
            require_patient_data(actor)
            rows, total = patient_rows.page(s, location_id, limit, offset, actor.locations)
            target = f"location:{location_id}" if location_id is not None else None
            record(s, actor, "patients_list", self.clock.now(), target, len(rows))
            addresses = [a for p in rows for a in (p.phone, p.email) if a]
            opted_out = consent_rows.opted_out(s, addresses) if addresses else set()
            views = [
                PatientView(
                    external_id=p.external_id,
                    name=f"{p.first_name} {p.last_name}".strip(),
                    location=p.location.slug,
                    language=p.language,
                    phone=mask_address(p.phone) if p.phone else None,
                    email=mask_address(p.email) if p.email else None,
                    consent={
                        name: consent_state(
                            bool(getattr(p, spec.consent_field)),
                            (name, getattr(p, spec.address.value) or "") in opted_out,
                        )
                        for name, spec in self.deps.channels.items()
                    },
                )
                for p in rows
            ]
            return views, total

    def _locations(self, actor: Actor) -> dict[str, Location]:
        """The locations rows may name: the actor's."""
        with self.db.session() as s:
            return {loc.slug: loc for loc in location_rows.locations(s) if actor.sees(loc.id)}

    def _patient(
        self,
        row: Row,
        locations: dict[str, Location],
        left_out: list[ValidationError],
        phone_types: PhoneTypes | None = None,
    ) -> dict[str, object]:
        """A patient's values. A bad phone or email is left out (with its channels off, said
        in ``left_out``) when the other address is good; a row with no good address is
        refused. Errors show the cell as the user typed it: it is their own file."""
        cell = Cells(row)
        cell.required("external_id", "first_name")
        location = cell.location(locations)
        addresses, bad = self._addresses(cell)
        if bad and not any(addresses.values()):
            raise bad[0]
        language = cell("language").lower().replace("_", "-") or location.default_language
        if not _LANGUAGE.match(language):
            raise ValidationError(
                f"language {cell('language')!r} is not a language code like 'en'", "language"
            )
        consents: dict[str, bool] = {}
        off = {error.field for error in bad}
        for spec in self.deps.channels.values():
            column = spec.consent_field
            consents[column] = _yes_no(cell(spec.csv_column), spec.csv_column) or consents.get(
                column, False
            )
            if spec.address.value in off:
                consents[column] = False
            elif consents[column] and addresses[spec.address] is None:
                raise ValidationError(
                    f"{column} is yes but there is no {_ADDRESS_NOUN[spec.address]}", column
                )
        phone_type = cell("phone_type").lower()
        if phone_type not in PHONE_TYPES:
            raise ValidationError(
                f"phone_type {cell('phone_type')!r} is not mobile or landline", "phone_type"
            )
        phone = addresses[AddressField.PHONE]
        if not phone_type and phone and phone_types is not None:
            phone_type = phone_types.of(phone) or ""
        kept = [spec.label for spec in self.deps.channels.values() if consents[spec.consent_field]]
        for error in bad:
            left_out.append(
                ValidationError(
                    f"{error}: left out; imported with {' and '.join(kept) or 'no channel'}",
                    error.field,
                )
            )
        return {
            "external_id": cell("external_id"),
            "first_name": cell("first_name"),
            "last_name": cell("last_name"),
            "phone": addresses[AddressField.PHONE],
            "email": addresses[AddressField.EMAIL],
            "language": language.split("-")[0],
            "phone_type": phone_type or None,
            "location_id": location.id,
            **consents,
        }

    def _addresses(
        self, cell: Cells
    ) -> tuple[dict[AddressField, str | None], list[ValidationError]]:
        """The row's phone and email, normalised; those that are not valid, as errors."""
        region = self.settings.default_region
        parse = {
            AddressField.PHONE: lambda text: normalize_phone(text, region),
            AddressField.EMAIL: normalize_email,
        }
        addresses: dict[AddressField, str | None] = {}
        bad: list[ValidationError] = []
        for name, normalize in parse.items():
            text = cell(name.value)
            try:
                addresses[name] = normalize(text) if text else None
            except ValidationError:
                addresses[name] = None
                noun = _ADDRESS_NOUN[name]
                bad.append(
                    ValidationError(
                        f"{name.value} {shown(text)!r} is not a valid {noun}", name.value
                    )
                )
        return addresses, bad

    def _upsert_patients(self, actor: Actor, chunk: Chunk, report: ImportReport) -> None:
        now = self.clock.now()
        consent_columns = sorted({spec.consent_field for spec in self.deps.channels.values()})
        with self.db.session() as s:
            existing = patient_rows.patients_by_external_ids(
                s, [str(v["external_id"]) for _, v in chunk]
            )
            applied: list[tuple[Patient, dict[str, bool] | None]] = []
            for line, values in chunk:
                patient = existing.get(str(values["external_id"]))
                if patient is not None and not actor.sees(patient.location_id):
                    reason = "external_id is taken by a patient of another location"
                    error = RowError(line, str(values["external_id"]), reason, "external_id")
                    report.errors.append(error)
                    continue
                if patient is None:
                    patient = Patient(**values, created_at=now, updated_at=now)
                    s.add(patient)
                    applied.append((patient, None))
                    report.created += 1
                else:
                    old = {column: bool(getattr(patient, column)) for column in consent_columns}
                    for name, value in values.items():
                        setattr(patient, name, value)
                    patient.updated_at = now
                    applied.append((patient, old))
                    report.updated += 1
            s.flush()  # ids for the ledger
            for patient, consent_before in applied:
                record_imported_consent(s, dict(self.deps.channels), patient, consent_before, now)
            restore_suppressed(s, self, [patient for patient, _ in applied])

    def _upsert_appointments(self, actor: Actor, chunk: Chunk, report: ImportReport) -> None:
        """Store a chunk; a row whose patient is unknown (or elsewhere) is reported, not stored."""
        now = self.clock.now()
        with self.db.session() as s:
            patients = patient_rows.patients_by_external_ids(
                s, [str(v["patient_external_id"]) for _, v in chunk]
            )
            existing = patient_rows.appointments_by_external_ids(
                s, [str(v["external_id"]) for _, v in chunk]
            )
            for line, row in chunk:
                values = dict(row)  # the chunk may be stored again, row by row
                patient_external_id = str(values.pop("patient_external_id"))
                patient = patients.get(patient_external_id)
                if patient is None or patient.location_id != values["location_id"]:
                    where = "" if patient is None else " at this location"
                    reason = f"patient {patient_external_id!r} not found{where}"
                    error = RowError(line, str(values["external_id"]), reason, _PATIENT_ID)
                    report.errors.append(error)
                    continue
                appointment = existing.get(str(values["external_id"]))
                if appointment is not None and not actor.sees(appointment.location_id):
                    reason = "external_id is taken by an appointment of another location"
                    error = RowError(line, str(values["external_id"]), reason, "external_id")
                    report.errors.append(error)
                    continue
                if appointment is None:
                    s.add(
                        Appointment(**values, patient_id=patient.id, created_at=now, updated_at=now)
                    )
                    report.created += 1
                else:
                    for name, value in values.items():
                        setattr(appointment, name, value)
                    appointment.patient_id = patient.id
                    appointment.updated_at = now
                    report.updated += 1


def _yes_no(value: str, column: str) -> bool:
    lowered = value.lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise ValidationError(f"{column} {value!r} is not yes/no", column)


def _appointment(row: Row, locations: dict[str, Location]) -> dict[str, object]:
    cell = Cells(row)
    cell.required("external_id", "patient_external_id")
    location = cell.location(locations)
    starts = parse_local(cell("starts_at"), zone(location.timezone), "starts_at", "starts_at")
    try:
        minutes = int(cell("duration_minutes"))
    except ValueError:
        raise ValidationError(
            f"duration_minutes {cell('duration_minutes')!r} is not a whole number",
            "duration_minutes",
        ) from None
    if not 0 < minutes <= 24 * 60:
        raise ValidationError(
            f"duration_minutes {minutes} is not between 1 and 1440", "duration_minutes"
        )
    status = cell("status").lower() or "scheduled"
    if status not in APPOINTMENT_STATUSES:
        raise ValidationError(
            f"status {cell('status')!r} is not one of {', '.join(APPOINTMENT_STATUSES)}", "status"
        )
    return {
        "external_id": cell("external_id"),
        "patient_external_id": cell("patient_external_id"),
        "location_id": location.id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=minutes),
        "provider": cell("provider"),
        "status": status,
    }
