"""The ``notifier`` command as a user runs it: separate processes, a real database file, the
real service (``notifier serve``) against the Twilio-compatible and SMTP servers on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.patients import PATIENTS_CSV
from tests.support.processes import run_notifier, service_env


@pytest.fixture
def env(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, tmp_path: Path
) -> dict[str, str]:
    return service_env(tmp_path, database_url, fake_twilio.info(), (fake_smtp.host, fake_smtp.port))


def test_the_whole_story_from_the_command_line(
    env: dict[str, str], fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, tmp_path: Path
) -> None:
    run_notifier(env, "db", "upgrade")
    run_notifier(
        env,
        "location",
        "add",
        "--slug",
        "cova",
        "--name",
        "COVA Spine and Pain Center",
        "--timezone",
        "America/New_York",
        "--phone",
        "540-555-0100",
    )
    csv_file = tmp_path / "patients.csv"
    csv_file.write_text(PATIENTS_CSV + "bad1,Bad,Row,555-01,,en,cova,yes,no\n")
    imported = run_notifier(env, "patients", "import", str(csv_file), check=False)
    assert imported.returncode == 4  # some rows rejected: scripts can tell
    assert "imported 5 patients" in imported.stdout
    assert "patients.csv:7 (bad1): phone" in imported.stderr
    created = run_notifier(
        env,
        "notice",
        "create",
        "--location",
        "cova",
        "--starts",
        "2025-02-19 12:30",
        "--ends",
        "2025-02-21 00:00",
        "--reason",
        "inclement weather",
        "--send-at",
        "now",
        "--json",
    )
    notice = json.loads(created.stdout)
    preview = run_notifier(env, "notice", "preview", str(notice["id"]), "--channel", "sms")
    assert "2 segments, GSM-7" in preview.stdout

    served = run_notifier(env, "serve", "--until-idle")
    assert "nothing scheduled or waiting" in served.stderr
    assert "540" not in served.stderr.replace("(540) 555-0100", "")  # no unmasked numbers

    assert len(fake_twilio.received_creates()) == 2
    assert len(fake_smtp.messages) == 3
    log = json.loads(
        run_notifier(env, "deliveries", "--notice", str(notice["id"]), "--format", "json").stdout
    )
    assert len(log) == 8
    for row in log:
        assert set(row) >= {"state", "channel", "address", "attempts", "provider_id", "error"}
        assert "*" in row["address"]
    assert sorted(r["state"] for r in log) == ["sent"] * 5 + ["skipped"] * 3
    assert all(r["provider_id"] for r in log if r["state"] == "sent")
    csv_out = run_notifier(env, "deliveries", "--format", "csv", "--status", "sent").stdout
    assert csv_out.count("\n") == 6

    # One delivery's history, for Ops following a single message.
    [first] = [r for r in log if r["channel"] == "sms" and r["state"] == "sent"][:1]
    shown = json.loads(
        run_notifier(env, "deliveries", "show", str(first["id"]), "--format", "json").stdout
    )
    assert shown["delivery"]["provider_id"] == first["provider_id"]
    assert shown["events"][0]["kind"] == "queued"
    assert shown["events"][-1]["state"] == "sent"
    table = run_notifier(env, "deliveries", "show", str(first["id"])).stdout
    assert first["address"] in table and "+1540" not in table
    missing = run_notifier(env, "deliveries", "show", "9999", check=False)
    assert missing.returncode != 0 and "no delivery with id 9999" in missing.stderr


def test_errors_are_one_clear_line_and_a_nonzero_status(env: dict[str, str]) -> None:
    run_notifier(
        env, "location", "add", "--slug", "cova", "--name", "COVA", "--timezone", "America/New_York"
    )
    result = run_notifier(
        env,
        "notice",
        "create",
        "--location",
        "cova",
        "--starts",
        "2025-02-19 12:30",
        "--ends",
        "2025-02-19 10:00",
        "--reason",
        "x",
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: the closure ends (2025-02-19 10:00)")
    assert "Traceback" not in result.stderr
    bad_zone = run_notifier(
        env, "location", "add", "--slug", "x", "--name", "X", "--timezone", "Mars/Base", check=False
    )
    assert bad_zone.returncode == 2 and "unknown time zone 'Mars/Base'" in bad_zone.stderr


def test_a_bad_setting_stops_the_service_naming_the_variable(env: dict[str, str]) -> None:
    result = run_notifier(env | {"NOTIFIER_SMTP_PORT": "lots"}, "serve", check=False)
    assert result.returncode == 3
    assert "NOTIFIER_SMTP_PORT" in result.stderr


def test_the_readme_demo_runs_on_defaults_with_no_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["NOTIFIER_CONFIG_FILE"] = str(tmp_path / "absent.toml")
    result = run_notifier(env, "demo", "--workdir", str(tmp_path / "demo"), check=False)
    assert result.returncode == 0, result.stderr
    assert "line 7 (1006): phone" in result.stdout
    assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in result.stdout
    assert "Done: 5 messages sent" in result.stdout
    assert (tmp_path / "demo" / "demo.db").exists()
