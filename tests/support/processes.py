"""``notifier`` as its users run it: a separate process with its own environment."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notifier.storage.engine import Database
from tests.support.peers import EVENING_BEFORE

NOTIFIER = [sys.executable, "-m", "notifier.cli"]


def run_notifier(
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``notifier ARGS`` to completion; with ``check``, fail the test on a non-zero exit."""
    result = subprocess.run(
        [*NOTIFIER, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"notifier {' '.join(args)} failed:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class DemoService:
    """``notifier demo --serve`` running: its console's address and the user it printed."""

    url: str
    email: str
    password: str


@contextmanager
def demo_serving(tmp_path: Path) -> Iterator[DemoService]:
    """Run ``notifier demo --serve`` (no NOTIFIER_ settings of ours) until it says how to sign
    in; SIGTERM on leaving, which must end it cleanly."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {"NOTIFIER_HTTP_PORT": str(port), "NOTIFIER_CONFIG_FILE": str(tmp_path / "x.toml")}
    process = subprocess.Popen(
        [*NOTIFIER, "demo", "--serve", "--workdir", str(tmp_path / "demo")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        found = None
        for line in process.stdout:
            found = re.search(r"sign in as (\S+) with the password (\S+)", line)
            if found:
                break
        assert found, "the demo never said how to sign in"
        yield DemoService(f"http://127.0.0.1:{port}", *found.groups())
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(
    tmp_path: Path,
    database_url: str,
    twilio: dict[str, Any] | None = None,
    smtp: tuple[str, int] | None = None,
    migrated: bool = True,
    **settings: str,
) -> dict[str, str]:
    """The environment of a ``notifier`` subprocess: the caller's environment without any
    NOTIFIER_* of its own, the Twilio-compatible server (``FakeTwilio.info()`` or a
    ``FakeTwilioProcess.info``), the SMTP server, the evening-before clock, a fast poll, HTTP on a
    free port; ``settings`` (names without the prefix) override or add to that. With ``migrated``
    the database is created and migrated first, as `notifier db upgrade` would (only it and
    `serve` do that; every other command refuses a database without the schema)."""
    if migrated:
        migrate(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    values = {
        "DATABASE_URL": database_url,
        "CONFIG_FILE": str(tmp_path / "absent.toml"),
        "NOW": EVENING_BEFORE.isoformat(),
        "POLL_INTERVAL_SECONDS": "0.2",
        "HTTP_PORT": "0",
        # As in peer_settings: no undo window, no approval, unless a test asks for them.
        "SEND_HOLD_SECONDS": "0",
        "APPROVAL_THRESHOLD": "10000000",
    }
    if twilio is not None:
        values |= {
            "TWILIO_ACCOUNT_SID": twilio["account_sid"],
            "TWILIO_AUTH_TOKEN": twilio["auth_token"],
            "TWILIO_FROM_NUMBER": twilio["from_number"],
            "TWILIO_API_BASE_URL": twilio["base_url"],
        }
    if smtp is not None:
        values |= {
            "SMTP_HOST": smtp[0],
            "SMTP_PORT": str(smtp[1]),
            "SMTP_STARTTLS": "false",
            "EMAIL_FROM": "closures@cova.example",
        }
    env.update({f"NOTIFIER_{name}": value for name, value in (values | settings).items()})
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


_migrated: set[str] = set()


def migrate(database_url: str) -> None:
    """`notifier db upgrade` for ``database_url``, in this process, once per URL."""
    if database_url not in _migrated:
        db = Database(database_url)
        try:
            db.upgrade()
        finally:
            db.dispose()
        _migrated.add(database_url)
