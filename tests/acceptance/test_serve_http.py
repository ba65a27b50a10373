"""`notifier serve` answers HTTP beside the scheduler, and SIGTERM still stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.processes import NOTIFIER, free_port, run_notifier, service_env

SECRET = "Rw8nZ2qLx5VbT0mKc7HsJ4yP1dGf9aEu-Qe6"  # a fixed random key (tests only)


def base_env(tmp_path: Path, twilio: FakeTwilio, port: int) -> dict[str, str]:
    """SQLite in ``tmp_path``, the Twilio-compatible server, no SMTP, HTTP on ``port``."""
    return service_env(
        tmp_path,
        f"sqlite:///{tmp_path / 'serve.db'}",
        twilio.info(),
        HTTP_PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )


def test_serve_needs_a_secret_key_once_it_has_a_public_url(
    tmp_path: Path, fake_twilio: FakeTwilio
) -> None:
    env = base_env(tmp_path, fake_twilio, free_port())
    result = run_notifier(env, "serve", check=False, timeout=60)
    assert result.returncode == 3
    assert "NOTIFIER_SECRET_KEY must be set" in result.stderr


def test_serve_answers_http_and_the_api_then_stops_on_sigterm(
    tmp_path: Path, fake_twilio: FakeTwilio
) -> None:
    port = free_port()
    env = base_env(tmp_path, fake_twilio, port) | {"NOTIFIER_SECRET_KEY": SECRET}
    created = run_notifier(env, "token", "create", "--name", "website", check=False, timeout=60)
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
