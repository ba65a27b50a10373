"""Appointments, intervals, audiences and the update chain from the command line, sent by the
real service (``notifier serve``) to the Twilio-compatible server on loopback."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from notifier_sandbox.twilio_server import FakeTwilio
from tests.acceptance.test_cli import env  # noqa: F401  (the env fixture)
from tests.support.patients import PATIENTS_CSV
from tests.support.processes import run_notifier

APPOINTMENTS = """\
external_id,patient_external_id,location,starts_at,duration_minutes,provider,status
a1,p1,cova,2025-02-20 10:30,30,Dr. Patel,scheduled
a2,p3,cova,2025-02-19 12:00,30,Dr. Chen,confirmed
a9,ghost,cova,2025-02-20 09:00,30,Dr. Chen,scheduled
"""


def texts(fake: FakeTwilio) -> list[tuple[str, str]]:
    return sorted((m["to"], m["body"]) for m in fake.messages.values())


def test_appointments_intervals_audience_update_and_cancel_from_the_command_line(
    env: dict[str, str],  # noqa: F811
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    run_notifier(env, "location", "add", "--slug", "cova", "--name", "COVA Spine and Pain Center",
                 "--timezone", "America/New_York", "--phone", "540-555-0100")  # fmt: skip
    (tmp_path / "patients.csv").write_text(PATIENTS_CSV)
    run_notifier(env, "patients", "import", str(tmp_path / "patients.csv"))
    (tmp_path / "appointments.csv").write_text(APPOINTMENTS)
    imported = run_notifier(env, "appointments", "import", str(tmp_path / "appointments.csv"),
                            check=False)  # fmt: skip
    assert imported.returncode == 4
    assert "imported 2 appointments" in imported.stdout
    ghost = "appointments.csv:4 (a9): patient_external_id: patient 'ghost' not found"
    assert ghost in imported.stderr

    created = run_notifier(env, "notice", "create", "--location", "cova",
                           "--reason", "an ice storm",
                           "--interval", "2025-02-19 12:30/2025-02-19 17:00",
                           "--interval", "2025-02-20 08:00/2025-02-20 12:00",
                           "--audience", "both", "--channels", "sms", "--send-at", "now",
                           "--json")  # fmt: skip
    notice = json.loads(created.stdout)
    assert notice["audience"] == "both" and len(notice["intervals"]) == 2
    affected = run_notifier(env, "notice", "affected", str(notice["id"]), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(affected)))
    assert [(r["appointment"], r["starts"], r["provider"]) for r in rows] == [
        ("a1", "2025-02-20T10:30:00-05:00", "Dr. Patel")
    ]
    preview = run_notifier(env, "notice", "preview", str(notice["id"])).stdout
    assert "longest SMS any patient gets [en, appointment]" in preview

    run_notifier(env, "serve", "--until-idle", "--no-http")
    first = texts(fake_twilio)
    assert [to for to, _ in first] == ["+15405550111", "+15405550112"]
    assert (
        "Maria, your appointment Thursday, 2/20/2025 at 10:30 AM with Dr. Patel is cancelled"
        in (first[0][1])
    )
    assert "opening late Thursday, 2/20/2025 at 12:00 PM" in first[1][1]

    updated = run_notifier(env, "notice", "update", str(notice["id"]), "--interval",
                           "2025-02-19 12:30/2025-02-19 17:00", "--json")  # fmt: skip
    update = json.loads(updated.stdout)
    assert (update["version"], update["supersedes_id"]) == (2, notice["id"])
    run_notifier(env, "serve", "--until-idle", "--no-http")
    cancelled = run_notifier(env, "notice", "cancel", str(update["id"]), "--notify").stdout
    assert f"notice {update['id']} cancelled" in cancelled
    run_notifier(env, "serve", "--until-idle", "--no-http")

    bodies = [m["body"] for m in fake_twilio.messages.values()]
    assert len(bodies) == 6  # two numbers × (original, update, open after all)
    assert sum(b.startswith("UPDATE: New times. Due to an ice storm") for b in bodies) == 2
    assert (
        sum(b.startswith("Good news: COVA Spine and Pain Center will be open") for b in bodies) == 2
    )
    log = json.loads(run_notifier(env, "deliveries", "--format", "json").stdout)
    chain = sorted({(r["notice_id"], r["notice_version"], r["supersedes_id"]) for r in log})
    assert chain == [
        (notice["id"], 1, None),
        (update["id"], 2, notice["id"]),
        (update["id"] + 1, 3, update["id"]),
    ]
