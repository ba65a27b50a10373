"""``notifier`` as its users run it: a separate process with its own environment."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
def demo_serving(tmp_path: Path, timeout: float = 150.0) -> Iterator[DemoService]:
    """Run ``notifier demo --serve`` (no NOTIFIER_ settings of ours) until it says how to sign
    in; SIGTERM on leaving, which must end it cleanly. If it has not said so within ``timeout``
    seconds, it is made to dump every thread's stack (faulthandler, on SIGABRT) and the test fails
    with what it printed: a hang names where it hangs."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {"NOTIFIER_HTTP_PORT": str(port), "NOTIFIER_CONFIG_FILE": str(tmp_path / "x.toml")}
    env["PYTHONFAULTHANDLER"] = "1"
    errors = tmp_path / "demo-stderr.txt"  # a file, not a pipe nobody reads: it never fills up
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [*NOTIFIER, "demo", "--serve", "--workdir", str(tmp_path / "demo")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    try:
        printed = PrintedLines(process)
        found = printed.wait_for(r"sign in as (\S+) with the password (\S+)", timeout)
        if found is None:
            process.send_signal(signal.SIGABRT)
            process.wait(timeout=30)
            raise AssertionError(
                f"the demo never said how to sign in within {timeout:.0f} s (exit code "
                f"{process.returncode});\nit printed:\n{printed.text()}\n"
                f"and on stderr:\n{errors.read_text()[-20_000:]}"
            )
        yield DemoService(f"http://127.0.0.1:{port}", *found.groups())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, errors.read_text()[-20_000:]


class PrintedLines:
    """A child's stdout, read line by line in a thread, so a wait for a line has a deadline
    even when the child prints nothing more."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._seen: list[str] = []
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first line matching ``pattern`` within ``timeout`` seconds; None if the child
        ended or the time ran out first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            self._seen.append(line)
            if found := re.search(pattern, line):
                return found
        return None

    def text(self) -> str:
        return "".join(self._seen)


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
