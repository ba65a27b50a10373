"""``notifier serve`` as a subprocess with its HTTP service up, stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import NOTIFIER


@dataclass(frozen=True)
class Service:
    url: str  # http://127.0.0.1:PORT
    pid: int


@contextmanager
def serving(env: dict[str, str], log_file: Path, timeout: float = 30.0) -> Iterator[Service]:
    """Run ``notifier serve`` until the block ends (``NOTIFIER_HTTP_PORT`` must be a fixed
    port). Its output goes to ``log_file``."""
    base = f"http://127.0.0.1:{env['NOTIFIER_HTTP_PORT']}"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [*NOTIFIER, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, log_file.read_text()
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"notifier serve did not answer in {timeout} s"
                time.sleep(0.1)
            yield Service(base, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
