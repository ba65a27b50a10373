"""`notifier serve` answers HTTP beside the scheduler, and SIGTERM still stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from notifier_sandbox.twilio_server import FakeTwilio

NOTIFIER = [sys.executable, "-m", "notifier.cli"]
SECRET = "acceptance-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp_path: Path, twilio: FakeTwilio, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.update(
        NOTIFIER_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        NOTIFIER_CONFIG_FILE=str(tmp_path / "absent.toml"),
        NOTIFIER_TWILIO_ACCOUNT_SID=twilio.account_sid,
        NOTIFIER_TWILIO_AUTH_TOKEN=twilio.auth_token,
        NOTIFIER_TWILIO_FROM_NUMBER=twilio.from_number,
        NOTIFIER_TWILIO_API_BASE_URL=twilio.base_url,
        NOTIFIER_NOW="2025-02-18T18:00:00-05:00",
        NOTIFIER_POLL_INTERVAL_SECONDS="0.2",
        NOTIFIER_HTTP_PORT=str(port),
        NOTIFIER_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def test_serve_needs_a_secret_key_once_it_has_a_public_url(
    tmp_path: Path, fake_twilio: FakeTwilio
) -> None:
    env = base_env(tmp_path, fake_twilio, free_port())
    result = subprocess.run(
        [*NOTIFIER, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert "NOTIFIER_SECRET_KEY must be set" in result.stderr


def test_serve_answers_http_and_the_api_then_stops_on_sigterm(
    tmp_path: Path, fake_twilio: FakeTwilio
) -> None:
    port = free_port()
    env = base_env(tmp_path, fake_twilio, port) | {"NOTIFIER_SECRET_KEY": SECRET}
    created = subprocess.run(
        [*NOTIFIER, "token", "create", "--name", "website"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("ntf_") and "cannot be shown again" in created.stderr

    process = subprocess.Popen(
        [*NOTIFIER, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate(timeout=5)
                assert time.monotonic() < deadline, "serve did not answer HTTP in 30 s"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/api/v1/notices", headers=auth, timeout=5).json() == []
        assert httpx.get(url + "/api/v1/notices", timeout=5).status_code == 401
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "notifier stopped" in stderr
