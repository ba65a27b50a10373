"""Only `db upgrade` and `serve` create or migrate a database. Every other command refuses one
that is missing, unreachable or not migrated with one line naming it (password masked) and exit
status 3, and creates nothing; the default SQLite file is one absolute path, whatever the working
directory; a misspelt NOTIFIER_* variable is named with the setting it was probably meant to be."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from notifier.storage.engine import Database, normalize_url
from tests.support.processes import NOTIFIER, run_notifier, service_env

READERS = [
    ("location", "list"),
    ("deliveries",),
    ("notice", "list"),
    ("user", "list"),
    ("config",),
]


def tables(url: str) -> list[str]:
    engine = create_engine(normalize_url(url))
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_command_refuses_a_missing_sqlite_file_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    database = tmp_path / "elsewhere" / "notifier.db"
    env = service_env(tmp_path, f"sqlite:///{database}", migrated=False)
    result = run_notifier(env, *command, check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert f"database sqlite:///{database} does not exist" in line
    assert "notifier db upgrade" in line
    assert not database.parent.exists()


def test_a_command_refuses_a_database_without_the_schema_and_adds_no_table(
    tmp_path: Path, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # an empty file
    env = service_env(tmp_path, database_url, migrated=False)
    result = run_notifier(env, "location", "list", check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "has no Notifier schema: run `notifier db upgrade` first" in one_error_line(
        result.stderr
    )
    assert tables(database_url) == []


def test_a_command_refuses_a_database_behind_the_code_until_db_upgrade(
    tmp_path: Path, database_url: str
) -> None:
    old = Database(database_url)
    old.upgrade("0008")
    old.dispose()
    env = service_env(tmp_path, database_url, migrated=False)
    refused = run_notifier(env, "deliveries", check=False)
    assert refused.returncode == 3
    assert "is at migration 0008, this version of Notifier needs" in one_error_line(refused.stderr)
    upgraded = run_notifier(env, "db", "upgrade")
    assert "database is up to date" in upgraded.stdout
    assert run_notifier(env, "deliveries").returncode == 0


@pytest.mark.parametrize("command", [("db", "upgrade"), ("location", "list"), ("config",)])
def test_an_unreachable_server_is_one_line_with_the_password_masked(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    url = "postgresql://notifier:s3cret@127.0.0.1:9/notifier?connect_timeout=3"
    env = service_env(tmp_path, url, migrated=False)
    result = run_notifier(env, *command, check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert line.startswith(
        "configuration error: cannot use database postgresql://notifier:***@127.0.0.1:9/"
    ), line
    assert "s3cret" not in result.stdout + result.stderr


def test_a_missing_postgresql_database_is_one_line(tmp_path: Path, postgres_server: str) -> None:
    url = postgres_server.rsplit("/", 1)[0] + "/no_such_database_here"
    env = service_env(tmp_path, url, migrated=False)
    result = run_notifier(env, "db", "upgrade", check=False)
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "cannot use database" in line
    assert "no_such_database_here" in line


def test_config_reports_a_reachable_migrated_database(tmp_path: Path, database_url: str) -> None:
    env = service_env(tmp_path, database_url)
    result = run_notifier(env, "config")
    assert "database: reachable, schema up to date" in result.stdout


def test_the_default_database_is_one_absolute_file_whatever_the_directory(
    tmp_path: Path,
) -> None:
    env = service_env(tmp_path, "unused", migrated=False)
    del env["NOTIFIER_DATABASE_URL"]
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_DATA_HOME", None)
    expected = tmp_path / "home" / ".local" / "share" / "notifier" / "notifier.db"
    upgraded = run_notifier(env, "db", "upgrade")
    assert f"database: sqlite:///{expected}" in upgraded.stdout  # announced
    assert expected.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = subprocess.run(
        [*NOTIFIER, "location", "list"], env=env, cwd=elsewhere, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert list(elsewhere.iterdir()) == []  # no var/notifier.db made here


def test_a_relative_sqlite_path_is_made_absolute_and_announced(tmp_path: Path) -> None:
    env = service_env(tmp_path, "sqlite:///var/n.db", migrated=False)
    result = subprocess.run(
        [*NOTIFIER, "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert f"database: sqlite:///{tmp_path / 'var' / 'n.db'}" in result.stdout


def test_a_misspelt_variable_is_named_with_its_closest_setting(tmp_path: Path) -> None:
    env = service_env(tmp_path, f"sqlite:///{tmp_path / 'n.db'}")
    env["NOTIFIER_SMS_RATE_PER_SECONDS"] = "5"
    env["NOTIFIER_TOTALLY_UNRELATED"] = "x"
    result = run_notifier(env, "location", "list")
    assert (
        "unknown setting NOTIFIER_SMS_RATE_PER_SECONDS is ignored: did you mean "
        "NOTIFIER_SMS_RATE_PER_SECOND?" in result.stderr
    )
    assert "unknown setting NOTIFIER_TOTALLY_UNRELATED is ignored" in result.stderr
    assert "NOTIFIER_CONFIG_FILE" not in result.stderr  # read, not by Settings: not a typo
