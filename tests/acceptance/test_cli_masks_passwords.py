"""``notifier`` never prints a password it was given in a URL: not in ``notifier config``, not in
the error about a database URL it cannot read."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import run_notifier, service_env

DATABASE_URL = (
    "postgresql://notifier:hunter2@db.example:5432/notifier?password=hunter3&sslmode=require"
)


def test_notifier_config_masks_the_passwords_in_its_urls(tmp_path: Path) -> None:
    env = service_env(
        tmp_path,
        DATABASE_URL,
        migrated=False,
        PUBLIC_BASE_URL="https://ops:hunter4@notices.example.org",
    )
    result = run_notifier(env, "config", check=False)
    assert result.returncode == 3  # the database cannot be reached: said in one line
    assert "hunter" not in result.stdout + result.stderr
    assert "cannot use database postgresql://notifier:***@db.example" in result.stderr
    assert (
        "database: postgresql://notifier:***@db.example:5432/notifier?password=***&sslmode=require"
        in result.stdout
    )
    assert "public URL: https://ops:***@notices.example.org" in result.stdout


def test_an_unreadable_database_url_is_reported_without_its_password(tmp_path: Path) -> None:
    env = service_env(
        tmp_path, "postgresql://u:hunter2@db.example:notaport/n?password=hunter3", migrated=False
    )
    result = run_notifier(env, "db", "upgrade", check=False)
    assert result.returncode == 3
    assert "hunter" not in result.stdout + result.stderr
    assert "u:***@db.example:notaport/n?password=***" in result.stderr
