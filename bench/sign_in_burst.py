"""20 concurrent wrong console sign-ins against a real ``notifier serve``: how much the server's
memory grows (argon2id takes 64 MiB per check) and how long an unrelated API write takes
meanwhile. ``python -m bench.sign_in_burst [--postgres URL] [--checks N]``.

Prints the server's resident memory before, its peak (VmHWM) after, the growth, the sign-in
answers by status, the API write latencies before and during the burst, and the server's CPU
seconds. ``--checks`` sets NOTIFIER_SIGN_IN_CHECKS_AT_ONCE (20: effectively no limit).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support.processes import NOTIFIER, free_port

BURST = 20
PASSWORD = "correct horse battery"


def _kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*NOTIFIER, *args], env=env, input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sign_in_burst")
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: a new SQLite file)")
    parser.add_argument("--checks", type=int, default=2, help="NOTIFIER_SIGN_IN_CHECKS_AT_ONCE")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="signin-burst-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")} | {
        "NOTIFIER_DATABASE_URL": args.postgres or f"sqlite:///{workdir / 'n.db'}",
        "NOTIFIER_CONFIG_FILE": str(workdir / "absent.toml"),
        "NOTIFIER_HTTP_PORT": str(port),
        "NOTIFIER_SIGN_IN_CHECKS_AT_ONCE": str(args.checks),
        "NOTIFIER_LOG_LEVEL": "WARNING",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    _run(env, "db", "upgrade")
    _run(env, "user", "create", "--email", "manager@cova.example", "--role", "manager",
         stdin=PASSWORD + "\n")  # fmt: skip
    token = _run(env, "token", "create", "--name", "bench").strip().split()[-1]
    server = subprocess.Popen([*NOTIFIER, "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})

        def write() -> float:
            started = time.perf_counter()
            answer = api.put(
                "/api/v1/locations/cova",
                json={"name": "COVA", "timezone": "America/New_York"},
            )
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

        before_writes = [write() for _ in range(5)]
        rss_before, cpu_before = _kib(server.pid, "VmRSS"), _cpu_seconds(server.pid)
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(BURST)]
        tokens = [
            re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)  # type: ignore[union-attr]
            for c in clients
        ]
        gate, statuses = threading.Barrier(BURST), [0] * BURST

        def guess(i: int) -> None:
            gate.wait()
            form = {"email": f"user{i}@cova.example", "password": "wrong", "csrf": tokens[i]}
            statuses[i] = clients[i].post("/console/login", data=form).status_code

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(BURST)]
        for thread in threads:
            thread.start()
        during = []
        while any(t.is_alive() for t in threads):
            during.append(write())
            time.sleep(0.05)
        for thread in threads:
            thread.join()
        peak = _kib(server.pid, "VmHWM")
        cpu = _cpu_seconds(server.pid) - cpu_before
        database = "PostgreSQL" if args.postgres else "SQLite"
        print(f"{database}, NOTIFIER_SIGN_IN_CHECKS_AT_ONCE={args.checks}, {BURST} sign-ins")
        print(f"  server RSS before {rss_before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB, "
              f"growth {(peak - rss_before) / 1024:.0f} MiB")  # fmt: skip
        print(f"  sign-in answers: {dict(sorted((s, statuses.count(s)) for s in set(statuses)))}")
        print(f"  API write before: median {statistics.median(before_writes) * 1000:.0f} ms; "
              f"during: median {statistics.median(during) * 1000:.0f} ms, "
              f"max {max(during) * 1000:.0f} ms ({len(during)} writes)")  # fmt: skip
        print(f"  server CPU during the burst: {cpu:.2f} s")
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
