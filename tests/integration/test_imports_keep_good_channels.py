"""Imports keep every good channel, on SQLite and PostgreSQL: a row with a bad phone and a good
email lands with email only (and the reverse), reported with its line, field and what was kept;
a semicolon-separated file is read as such; errors show the user's own input back."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notifier.bootstrap import App
from notifier.cli import main
from tests.support.actors import OPERATOR
from tests.support.patients import HEADER, patients_csv

MIXED = f"""\
{HEADER}
k1,Kim,Ok,540-555-0131,kim@example.org,en,cova,yes,yes
k2,Lee,Badphone,555-01,lee@example.org,en,cova,yes,yes
k3,Max,Bademail,540-555-0133,max@@example,en,cova,yes,yes
k4,Ned,Bothbad,555-02,ned@@example,en,cova,yes,yes
"""


@pytest.fixture
def cova_app(app: App, cova: str) -> App:
    return app


def test_a_bad_phone_keeps_the_good_email_and_says_so(
    cova_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = cova_app.patients.import_patients(OPERATOR, io.StringIO(MIXED))
    assert (report.created, report.channels_off, len(report.errors)) == (3, 2, 1)
    kept = {(k.line, k.external_id, k.field): k.message for k in report.kept}
    assert kept == {
        (3, "k2", "phone"): (
            "phone '555-01' is not a valid phone number: left out; imported with email"
        ),
        (4, "k3", "email"): (
            "email 'max@@example' is not a valid email address: left out; imported with SMS"
        ),
    }
    rejected = report.errors[0]
    assert (rejected.line, rejected.external_id, rejected.field) == (5, "k4", "phone")
    assert "'555-02'" in rejected.reason  # the user's own input, as typed
    rows, _ = cova_app.patients.page(OPERATOR, "cova", 10, 0)
    by_id = {p.external_id: p for p in rows}
    assert by_id["k2"].phone is None and by_id["k2"].consent["sms"] != "consented"
    assert by_id["k2"].consent["email"] == "consented"
    assert by_id["k3"].email is None and by_id["k3"].consent["sms"] == "consented"
    assert "555-01" not in caplog.text and "max@@example" not in caplog.text


def test_a_semicolon_separated_file_is_read_as_such(cova_app: App) -> None:
    semicolons = MIXED.replace(",", ";")
    report = cova_app.patients.import_patients(OPERATOR, io.StringIO(semicolons))
    assert report.delimiter == ";" and report.created == 3


def test_a_header_that_does_not_fit_names_the_separators(cova_app: App) -> None:
    with pytest.raises(Exception, match="separated by commas, semicolons or tabs"):
        cova_app.patients.import_patients(OPERATOR, io.StringIO("id;name\n1;x\n"))


def import_file(app: App, file: Path) -> Result:
    """``notifier patients import FILE``, in this process."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI configures logging for its process
    try:
        return CliRunner().invoke(
            main,
            ["patients", "import", str(file)],
            env={"NOTIFIER_DATABASE_URL": app.settings.database_url},
        )
    finally:
        root.handlers[:], root.level = handlers, level


def test_the_cli_reports_what_was_kept_and_the_counts(cova_app: App, tmp_path: Path) -> None:
    file = tmp_path / "patients.csv"
    file.write_text(MIXED.replace(",", ";"))
    result = import_file(cova_app, file)
    assert result.exit_code == 4  # a row was rejected
    assert "read as semicolon-separated values" in result.stdout
    assert (
        "imported 3 patients (3 new, 0 updated), 2 channels turned off, 1 row rejected"
        in result.stdout
    )
    assert (
        "patients.csv:3 (k2): phone '555-01' is not a valid phone number: left out; "
        "imported with email" in result.stderr
    )


def test_a_long_import_shows_its_progress_when_piped(cova_app: App, tmp_path: Path) -> None:
    file = tmp_path / "many.csv"
    file.write_text(patients_csv(2500))
    result = import_file(cova_app, file)
    assert result.exit_code == 0, result.output
    steps = [x for x in result.stderr.splitlines() if x.startswith("many.csv: ")]
    assert steps[0] == "many.csv: 1,001 of 2,501 lines read"
    assert steps[-1] == "many.csv: 2,501 of 2,501 lines read"
    assert "imported 2,500 patients (2,500 new, 0 updated), 0 rows rejected" in result.stdout
