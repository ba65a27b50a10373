"""Bad input to the imports, on SQLite and PostgreSQL, through the CLI, the console upload and
the API: each bad row is rejected with its line and field, every good row is kept, the answer
says so the same way everywhere (exit 4, HTTP 422), and no patient's phone, email or name
reaches a log line, the terminal or a response beyond its masked form.

The table holds the inputs that broke imports when tried (a 101-character first name before 500
good rows, a NUL in a name, invalid UTF-8 at row 1,501 of 2,000, a 200 KiB field) and the
everyday ones (a bad phone, an overlong email, too many or too few cells, an unknown location,
a bad date, an overlong provider).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from notifier.bootstrap import App
from notifier.cli import main
from notifier.storage.limits import string_lengths
from notifier.storage.models import Appointment, Patient
from tests.support.actors import OPERATOR
from tests.support.patients import HEADER, PATIENTS_CSV
from tests.support.web import PASSWORD, Web, csrf_of, sign_in

APPOINTMENT_HEADER = (
    "external_id,patient_external_id,location,starts_at,duration_minutes,provider,status"
)
MANAGER = "manager@cova.example"
NOW = "2025-02-18T18:00:00-05:00"  # the evening before, as every test lives it
BASE_PATIENTS = 5  # the web fixture's p1..p5
PRIVATE_OF_BASE = [
    value
    for line in PATIENTS_CSV.splitlines()[1:]
    for value in line.split(",")[1:5]
    if len(value) >= 5 and "555-01" not in value
] + ["5405550111", "5405550112", "5405550114", "5405550115"]
COLUMNS = {*HEADER.split(","), *APPOINTMENT_HEADER.split(",")}


@dataclass
class Case:
    """One bad input: the file, how many rows must land, and the one rejected row."""

    id: str
    kind: str  # patients | appointments
    data: bytes
    good: int
    line: int
    field: str | None
    external_id: str = "bad"
    private: list[str] = field(default_factory=list)


def person(i: int, **changes: str) -> dict[str, str]:
    return {
        "external_id": f"g{i}",
        "first_name": f"Fn{i:04d}x",
        "last_name": f"Ln{i:04d}x",
        "phone": f"+1540{2000000 + i}",
        "email": f"pt{i:04d}@example.org",
        "language": "en",
        "location": "cova",
        "sms_consent": "yes",
        "email_consent": "yes",
    } | changes


def private_of(row: dict[str, str]) -> list[str]:
    """Every form of a fixture patient's data that must never be shown unmasked."""
    values = [row["first_name"], row["last_name"], row["email"], row["phone"]]
    return [v for v in values if len(v) >= 5] + [row["phone"].removeprefix("+1")]


def patients_file(count: int, bad_at: int, bad: bytes) -> tuple[bytes, list[str]]:
    """``count`` good rows with the raw line ``bad`` inserted before good row ``bad_at``."""
    lines, private = [HEADER.encode()], []
    for i in range(count):
        if i == bad_at:
            lines.append(bad)
        row = person(i)
        lines.append(",".join(row.values()).encode())
        private += private_of(row)
    if bad_at >= count:
        lines.append(bad)
    return b"\n".join(lines) + b"\n", private


def bad_person(**changes: str) -> bytes:
    return ",".join(person(9999, external_id="bad", **changes).values()).encode()


def patients_case(
    id: str, count: int, bad_at: int, bad: bytes, field: str | None, *secret: str
) -> Case:
    data, private = patients_file(count, bad_at, bad)
    secrets = [*private, *private_of(person(9999)), *secret]
    return Case(id, "patients", data, count, bad_at + 2, field, private=secrets)


def appointments_file(count: int, bad_at: int, bad: bytes) -> bytes:
    lines = [APPOINTMENT_HEADER.encode()]
    for i in range(count):
        if i == bad_at:
            lines.append(bad)
        lines.append(
            f"a{i},p{1 + i % 5},cova,2025-02-20 10:00,30,Dr. Pr{i:04d}x,scheduled".encode()
        )
    return b"\n".join(lines) + b"\n"


def appointments_case(id: str, bad: str, field: str) -> Case:
    return Case(id, "appointments", appointments_file(6, 3, bad.encode()), 6, 5, field)


LONG_NAME = "Zq" * 50 + "Z"  # 101 characters: one more than patients.first_name holds
HUGE = "H" * (200 * 1024)  # over the csv module's 128 KiB field limit
SMUGGLED = "smuggled,Eve,Smug,+15405550199,eve@example.org,en,cova,yes,yes"  # inside a cell
LONG_EMAIL = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".org"  # 309 characters
CASES = [
    patients_case(
        "101-char first name", 510, 10, bad_person(first_name=LONG_NAME), "first_name", LONG_NAME
    ),
    patients_case(
        "NUL in a name", 4, 2, bad_person(first_name="Ma\x00ria"), "first_name", "Ma\x00ria"
    ),
    patients_case(
        "invalid UTF-8 at row 1,501 of 2,000",
        1999,
        1500,
        bad_person(last_name="LnBAD").replace(b"LnBAD", b"Ln\xff\xfeq"),
        "last_name",
    ),
    patients_case("a 200 KiB field", 6, 3, bad_person(last_name=HUGE), "last_name", HUGE),
    Case(  # the csv module gives up inside a quoted cell: its other lines are not rows
        "a quoted 200 KiB field over three lines",
        "patients",
        patients_file(6, 3, bad_person(last_name=f'"{HUGE}\n{SMUGGLED}\n{HUGE}"'))[0],
        good=6,
        line=3 + 2 + 2,
        field="last_name",
        private=[*patients_file(6, 3, b"")[1], "+15405550199", "eve@example.org", HUGE],
    ),
    patients_case(  # with no other address to keep (a good email is kept: test_imports.py)
        "a bad phone", 4, 2, bad_person(phone="555-01", email="", email_consent="no"), "phone"
    ),
    patients_case("an overlong email", 4, 2, bad_person(email=LONG_EMAIL), "email", LONG_EMAIL),
    patients_case("too many cells", 4, 2, bad_person() + b",extra", None),
    patients_case("too few cells", 4, 2, bad_person().rsplit(b",", 2)[0], "sms_consent"),
    patients_case("an unknown location", 4, 2, bad_person(location="atlantis"), "location"),
    patients_case("a control character", 4, 2, bad_person(last_name="Ln\x1bq"), "last_name"),
    appointments_case("a bad date", "bad,p1,cova,2025-02-30 10:00,30,Dr. X,scheduled", "starts_at"),
    appointments_case(
        "a 201-char provider", f"bad,p1,cova,2025-02-20 10:00,30,{'P' * 201},scheduled", "provider"
    ),
    appointments_case(
        "NUL in a provider", "bad,p1,cova,2025-02-20 10:00,30,Dr.\x00X,scheduled", "provider"
    ),
    appointments_case(
        "an unknown location (appointment)",
        "bad,p1,atlantis,2025-02-20 10:00,30,Dr. X,scheduled",
        "location",
    ),
]


@dataclass
class Answer:
    """What one surface said: counts, the rejected rows as (line, id, field), all its text."""

    imported: int
    rejected: list[tuple[int, str, str | None]]
    text: str


def via_cli(web: Web, case: Case, tmp_path_factory: pytest.TempPathFactory) -> Answer:
    path = tmp_path_factory.mktemp("cli") / f"{case.kind}.csv"
    path.write_bytes(case.data)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            main,
            [case.kind, "import", str(path)],
            env={"NOTIFIER_DATABASE_URL": web.app.settings.database_url, "NOTIFIER_NOW": NOW},
        )
    finally:  # the CLI configures logging for its process; give pytest's handlers back
        root.handlers[:], root.level = handlers, level
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 4, (result.stdout, result.stderr)
    imported = re.search(rf"imported ([\d,]+) {case.kind}", result.stdout)
    assert imported, result.stdout
    rejected = []
    for line in result.stderr.splitlines():
        if line.endswith(" lines read"):  # a long file's progress, when piped
            continue
        match = re.match(rf"{case.kind}\.csv:(\d+) \(([^)]*)\): ([a-z_]+)?", line)
        assert match, line
        named = match[3] if match[3] in COLUMNS else None
        rejected.append((int(match[1]), match[2], named))
    return Answer(int(imported[1].replace(",", "")), rejected, result.stdout + result.stderr)


def via_api(web: Web, case: Case, tmp_path_factory: pytest.TempPathFactory) -> Answer:
    token = web.app.accounts.create_token("imports")
    answer = web.client.post(
        f"/api/v1/{case.kind}/import",
        content=case.data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    assert answer.status_code == 422, answer.text[:500]
    report = answer.json()
    rejected = [(e["line"], e["external_id"], e["field"]) for e in report["errors"]]
    for error in report["errors"]:
        assert error["text"].startswith(f"{case.kind}.csv:{error['line']} (")
    assert report["rejected"] == len(rejected)
    return Answer(report["imported"], rejected, answer.text)


def via_console(web: Web, case: Case, tmp_path_factory: pytest.TempPathFactory) -> Answer:
    web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
    manager = sign_in(web, MANAGER)
    try:
        csrf = csrf_of(manager.get("/console/patients/import"))
        answer = manager.post(
            "/console/patients/import",
            data={"csrf": csrf},
            files={"file": ("patients.csv", case.data, "text/csv")},
        )
    finally:
        manager.close()
    assert answer.status_code == 422, answer.text[:500]
    summary = re.search(r"Imported (\d+) patients", answer.text)
    assert summary, answer.text[:2000]
    rows = re.findall(
        r'<tr><td>(\d+)</td><td class="mono">([^<]*)</td><td>([^<]*)</td><td>[^<]*</td></tr>',
        answer.text,
    )
    rejected = [(int(line), who, name or None) for line, who, name in rows]
    return Answer(int(summary[1]), rejected, answer.text)


SURFACES: dict[str, Callable[[Web, Case, pytest.TempPathFactory], Answer]] = {
    "cli": via_cli,
    "console": via_console,
    "api": via_api,
}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def stored(app: App, kind: str) -> int:
    model = Patient if kind == "patients" else Appointment
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("case", "surface"),
    [
        pytest.param(case, surface, id=f"{case.id}-{surface}")
        for case in CASES
        for surface in SURFACES
        if surface != "console" or case.kind == "patients"  # the console imports patients only
    ],
)
def test_a_bad_row_is_rejected_by_line_and_field_and_every_good_row_is_kept(
    web: Web,
    case: Case,
    surface: str,
    logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    before = stored(web.app, case.kind)
    answer = SURFACES[surface](web, case, tmp_path_factory)

    assert answer.imported == case.good
    assert stored(web.app, case.kind) == before + case.good
    assert len(answer.rejected) == 1, answer.rejected
    line, who, named = answer.rejected[0]
    assert (line, named) == (case.line, case.field)
    if case.field != "external_id":
        assert who == case.external_id

    captured = capfd.readouterr()
    shown = "\n".join([answer.text, logs.text, captured.out, captured.err])
    assert "Traceback" not in shown
    assert "parameters" not in shown.lower()
    for value in [*case.private, *PRIVATE_OF_BASE]:
        assert value not in shown, f"{value[:40]!r} was shown"


def test_undecodable_bytes_in_the_external_id_are_reported_escaped(
    web: Web, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data, _ = patients_file(3, 1, bad_person().replace(b"bad,", b"b\xffd,", 1))
    case = Case("bad id", "patients", data, 3, 3, "external_id")
    for surface in SURFACES.values():
        answer = surface(web, case, tmp_path_factory)
        assert answer.imported == 3
        assert answer.rejected[0][:1] + answer.rejected[0][2:] == (3, "external_id")
        assert "\\xff" in answer.rejected[0][1] or "\\udcff" in answer.rejected[0][1]


def test_a_row_short_only_of_columns_the_import_does_not_use_is_kept(web: Web) -> None:
    data, _ = patients_file(3, 3, bad_person())
    header, *rows = data.decode().splitlines()
    report = web.app.patients.import_patients(
        OPERATOR,
        io.StringIO("\n".join([header + ",notes", rows[0] + ",seen 2/1", *rows[1:]]) + "\n"),
    )
    assert (report.created, report.errors) == (4, [])


def test_a_rejected_rows_external_id_is_reported_whole(web: Web) -> None:
    long_id = "MRN-2025-" + "7" * 55  # 64 characters: patients.external_id holds 100
    row = person(9999, external_id=long_id, phone="555-01", email="", email_consent="no")
    bad = ",".join(row.values()).encode()
    report = web.app.patients.import_patients(OPERATOR, io.BytesIO(patients_file(2, 2, bad)[0]))
    assert [(e.external_id, e.field) for e in report.errors] == [(long_id, "phone")]


def test_a_bom_and_crlf_line_ends_are_read_as_plain_csv(web: Web) -> None:
    data, _ = patients_file(3, 3, bad_person())
    report = web.app.patients.import_patients(
        OPERATOR, io.BytesIO(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))
    )
    assert (report.created, report.errors) == (4, [])


def test_the_api_answers_200_with_the_report_when_every_row_lands(web: Web) -> None:
    token = web.app.accounts.create_token("imports")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    data, _ = patients_file(3, 3, bad_person())
    answer = web.client.post("/api/v1/patients/import", content=data, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() | {"errors": None} == {
        "created": 4,
        "updated": 0,
        "imported": 4,
        "rejected": 0,
        "errors": None,
        "channels_off": 0,
        "kept": [],
    }
    wrong = web.client.post("/api/v1/patients/import", content=b"id,name\n1,x\n", headers=headers)
    assert wrong.status_code == 422 and "lacks columns" in wrong.json()["detail"]
    refused = web.client.post("/api/v1/appointments/import", content=data)
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("external_id", "patients"),
        ("first_name", "patients"),
        ("last_name", "patients"),
        ("provider", "appointments"),
    ],
)
def test_a_value_of_exactly_its_columns_length_lands_and_one_more_is_rejected(
    web: Web, column: str, kind: str
) -> None:
    """The limits are read from the model: change a column's length and validation follows."""
    limit = string_lengths(Patient if kind == "patients" else Appointment)[column]
    if kind == "patients":
        rows = [person(1, **{column: "x" * limit}), person(2, **{column: "y" * (limit + 1)})]
        data = "\n".join([HEADER, *(",".join(r.values()) for r in rows)]) + "\n"
        report = web.app.patients.import_patients(OPERATOR, io.StringIO(data))
    else:
        data = (
            f"{APPOINTMENT_HEADER}\n"
            f"a1,p1,cova,2025-02-20 10:00,30,{'x' * limit},scheduled\n"
            f"a2,p1,cova,2025-02-20 10:00,30,{'y' * (limit + 1)},scheduled\n"
        )
        report = web.app.patients.import_appointments(OPERATOR, io.StringIO(data))
    assert report.created == 1
    assert [(e.line, e.field) for e in report.errors] == [(3, column)]
    assert f"{limit + 1} characters, at most {limit}" in report.errors[0].reason


def refuse_last_name(app: App, last_name: str) -> None:
    """A rule only the database knows, so a chunk fails there after every check passed."""
    with app.db.session() as s:
        if app.db.dialect == "postgresql":
            s.execute(
                text(
                    f"ALTER TABLE patients ADD CONSTRAINT no_zed CHECK (last_name <> '{last_name}')"
                )
            )
        else:
            s.execute(
                text(
                    "CREATE TRIGGER no_zed BEFORE INSERT ON patients "
                    f"WHEN NEW.last_name = '{last_name}' "
                    "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: no_zed'); END"
                )
            )


def test_a_chunk_the_database_refuses_is_retried_row_by_row(
    web: Web, logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    refuse_last_name(web.app, "Refused")
    data, private = patients_file(1200, 700, bad_person(last_name="Refused"))
    report = web.app.patients.import_patients(OPERATOR, io.StringIO(data.decode()))
    assert report.created == 1200
    assert stored(web.app, "patients") == BASE_PATIENTS + 1200
    assert [(e.line, e.external_id) for e in report.errors] == [(702, "bad")]
    assert "the database refused" in report.errors[0].reason
    assert "no_zed" in report.errors[0].reason
    assert any(r.__dict__.get("action") == "import_chunk_retried" for r in logs.records)
    captured = capfd.readouterr()
    shown = "\n".join([report.errors[0].reason, logs.text, captured.out, captured.err])
    for value in [*private, *private_of(person(9999))]:
        assert value not in shown
