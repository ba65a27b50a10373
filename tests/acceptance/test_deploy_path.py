"""From the demo to a running service, as docs/operate/quickstart.md tells it: `notifier sandbox`
starts the local servers and writes the settings; `db upgrade`, a location, patients and a notice
on the command line; `notifier serve` sends it. And `notifier demo --serve` leaves the service
running with a console user who can sign in and see the demo's notice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.patients import PATIENTS_CSV
from tests.support.processes import NOTIFIER, demo_serving, run_notifier, service_env

pytestmark = pytest.mark.slow


def read_env_file(path: Path, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the sandbox wrote no settings"
        time.sleep(0.1)
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, str]]:
    env_file = tmp_path / "sandbox.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    process = subprocess.Popen(
        [
            *NOTIFIER,
            "sandbox",
            "--twilio-port",
            "0",
            "--smtp-port",
            "0",
            "--env-file",
            str(env_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield read_env_file(env_file)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "export NOTIFIER_TWILIO_API_BASE_URL=http://127.0.0.1:" in out


def test_the_quickstart_sends_a_notice_through_the_sandbox(
    tmp_path: Path, sandbox: dict[str, str], database_url: str
) -> None:
    assert set(sandbox) >= {"NOTIFIER_TWILIO_ACCOUNT_SID", "NOTIFIER_SMTP_HOST"}
    env = service_env(tmp_path, database_url, migrated=False) | sandbox
    run_notifier(env, "db", "upgrade")
    run_notifier(env, "config")
    run_notifier(
        env, "location", "add", "--slug", "cova", "--name", "COVA Spine and Pain Center",
        "--timezone", "America/New_York", "--hours", "Mon-Fri 08:00-17:00",
        "--phone", "540-555-0100",
    )  # fmt: skip
    patients = tmp_path / "patients.csv"
    patients.write_text(PATIENTS_CSV)
    run_notifier(env, "patients", "import", str(patients))
    run_notifier(
        env, "notice", "create", "--location", "cova", "--starts", "2025-02-19 12:30",
        "--ends", "2025-02-21 00:00", "--reason", "inclement weather", "--send-at", "now",
    )  # fmt: skip
    run_notifier(env, "serve", "--until-idle", "--no-http", timeout=120)
    log = run_notifier(env, "deliveries", "--format", "csv").stdout
    assert log.count(",sent,") + log.count(",delivered,") >= 4, log


def test_the_demo_can_leave_the_service_running_with_a_console_user(tmp_path: Path) -> None:
    with (
        demo_serving(tmp_path) as demo,
        httpx.Client(base_url=demo.url, timeout=10) as client,
    ):
        login = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf
        signed_in = client.post(
            "/console/login",
            data={"email": demo.email, "password": demo.password, "csrf": csrf.group(1)},
        )
        assert signed_in.status_code == 303
        notices = client.get("/console/notices")
        assert "COVA Spine and Pain Center" in notices.text
        assert "inclement weather" in client.get("/console/notices/1").text


def test_the_compose_sandbox_command_prints_settings_for_its_service_name() -> None:
    """What the `sandbox` service of compose.yaml runs, with the credentials it sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "SANDBOX_TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
        "SANDBOX_TWILIO_AUTH_TOKEN": "sandbox-auth-token-not-a-secret",
    }
    command = ["-m", "notifier_sandbox.servers", "--twilio-port", "0", "--smtp-port", "0"]
    process = subprocess.Popen(
        [sys.executable, *command, "--public-host", "sandbox"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("export "):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                printed[name] = value
            if "NOTIFIER_EMAIL_FROM" in printed:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
    assert printed["NOTIFIER_TWILIO_ACCOUNT_SID"] == "AC00000000000000000000000000000000"
    assert printed["NOTIFIER_TWILIO_AUTH_TOKEN"] == "sandbox-auth-token-not-a-secret"
    assert re.fullmatch(r"http://sandbox:\d+", printed["NOTIFIER_TWILIO_API_BASE_URL"])
    assert printed["NOTIFIER_SMTP_HOST"] == "sandbox"
