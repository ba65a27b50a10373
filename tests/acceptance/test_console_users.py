"""``notifier user create`` as an admin runs it: the password from stdin, never echoed."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import run_notifier, service_env


def test_users_are_created_once_with_a_long_enough_password(
    database_url: str, tmp_path: Path
) -> None:
    env = service_env(tmp_path, database_url)
    made = run_notifier(env, "user", "create", "--email", "Ops@Cova.example", "--role", "manager",
                        stdin="a long passphrase\n", check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "user 1 created: Ops@cova.example (manager)"
    assert "a long passphrase" not in made.stdout + made.stderr

    again = run_notifier(env, "user", "create", "--email", "ops@cova.example", "--role", "viewer",
                         stdin="another passphrase\n", check=False)  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.strip() == "error: a user o***@cova.example already exists"

    short = run_notifier(env, "user", "create", "--email", "desk@cova.example", "--role", "viewer",
                         stdin="short\n", check=False)  # fmt: skip
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr

    role = run_notifier(env, "user", "create", "--email", "desk@cova.example", "--role", "owner",
                        stdin="a long passphrase\n", check=False)  # fmt: skip
    assert role.returncode == 2 and "'owner' is not one of" in role.stderr
