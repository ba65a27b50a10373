"""``notifier user create`` as an admin runs it: the password from stdin, never echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOTIFIER = [sys.executable, "-m", "notifier.cli"]


def create(
    env: dict[str, str], email: str, role: str, password: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOTIFIER, "user", "create", "--email", email, "--role", role],
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_users_are_created_once_with_a_long_enough_password(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {"NOTIFIER_DATABASE_URL": database_url, "NOTIFIER_CONFIG_FILE": str(tmp_path / "x")}
    made = create(env, "Ops@Cova.example", "manager", "a long passphrase")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "user 1 created: Ops@cova.example (manager)"
    assert "a long passphrase" not in made.stdout + made.stderr

    again = create(env, "ops@cova.example", "viewer", "another passphrase")
    assert again.returncode == 2
    assert again.stderr.strip() == "error: a user o***@cova.example already exists"

    short = create(env, "desk@cova.example", "viewer", "short")
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr

    role = create(env, "desk@cova.example", "admin", "a long passphrase")
    assert role.returncode == 2 and "'admin' is not one of" in role.stderr
