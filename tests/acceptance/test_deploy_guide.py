"""docs/operate/deploy.md, followed where this machine can: the systemd unit runs real commands
with safe settings; the nginx file keeps the body limit, the timeouts and an overwritten
X-Forwarded-For; the backup and restore commands, taken from the guide's own lines, bring a
database back with its data on SQLite and PostgreSQL."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from notifier.cli import main
from notifier.settings import Settings
from tests.support.processes import run_notifier, service_env

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "operate" / "deploy.md").read_text()


def guide_lines(start: str) -> list[str]:
    """The guide's shell lines (in its code blocks) that begin with ``start``."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE, flags=re.DOTALL)
    found = [line for block in blocks for line in block.splitlines() if line.startswith(start)]
    assert found, f"the guide has no line starting {start!r}"
    return found


def test_the_systemd_unit_runs_real_commands_safely() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "deploy" / "systemd" / "notifier.service").read_text())
    service = unit["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        program, *args = shlex.split(service[key])
        assert program == "/opt/notifier/bin/notifier"
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (key, result.output)
    assert shlex.split(service["ExecStartPre"])[1:] == ["db", "upgrade"]
    assert shlex.split(service["ExecStart"])[1:] == ["serve"]
    assert service["User"] == "notifier" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 30
    database = service["Environment"].split("=", 1)[1]
    assert database.startswith("sqlite:////var/lib/notifier/")
    assert service["ReadWritePaths"] == "/var/lib/notifier"
    assert service["ProtectSystem"] == "strict"


def test_the_nginx_file_keeps_the_limits_timeouts_and_forwarded_headers() -> None:
    conf = (ROOT / "deploy" / "nginx" / "notifier.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert size and int(size.group(1)) * 1024 * 1024 >= Settings().http_upload_max_bytes
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf  # overwritten
    assert "proxy_add_x_forwarded_for" not in conf  # never appended
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    for directive in ("proxy_read_timeout", "client_body_timeout", "client_header_timeout"):
        assert re.search(rf"{directive} \d+s;", conf), directive
    metrics = re.search(r"location = /metrics \{(.*?)\}", conf, flags=re.DOTALL)
    assert metrics and "deny all;" in metrics.group(1)


def shell(command: str, **paths: str) -> None:
    for old, new in paths.items():
        command = command.replace(old, new)
    subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=120)


def locations(env: dict[str, str]) -> str:
    return run_notifier(env, "location", "list").stdout


def add_location(env: dict[str, str]) -> None:
    run_notifier(
        env, "location", "add", "--slug", "cova", "--name", "COVA Spine and Pain Center",
        "--timezone", "America/New_York",
    )  # fmt: skip


def test_sqlite_backup_and_restore_as_the_guide_says(tmp_path: Path) -> None:
    live, backups = tmp_path / "lib", tmp_path / "backups"
    live.mkdir()
    backups.mkdir()
    env = service_env(tmp_path, f"sqlite:///{live / 'notifier.db'}")
    add_location(env)
    paths = {"/var/lib/notifier": str(live), "/backups": str(backups)}
    for line in guide_lines("sqlite3 ") + guide_lines("chmod 600 /backups"):
        shell(line, **paths)
    (backup,) = backups.glob("notifier-*.db")
    assert backup.stat().st_mode & 0o777 == 0o600
    (live / "notifier.db").unlink()  # the disaster
    for line in guide_lines("install -m 600"):
        line = line.replace(" -o notifier", "").replace("notifier-2027-01-14.db", backup.name)
        shell(line, **paths)
    for line in guide_lines("rm -f /var/lib/notifier"):
        shell(line, **paths)
    assert "COVA Spine and Pain Center" in locations(env)


@pytest.fixture
def scratch_databases(postgres_server: str) -> Iterator[tuple[str, str]]:
    """Two empty databases (the live one and the one restored into), dropped afterwards."""
    names = [f"notifier_{uuid.uuid4().hex[:10]}", f"notifier_{uuid.uuid4().hex[:10]}"]
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{names[0]}"')
    base = postgres_server.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}", names[1]
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_backup_and_restore_as_the_guide_says(
    tmp_path: Path, scratch_databases: tuple[str, str]
) -> None:
    live_url, restored = scratch_databases
    env = service_env(tmp_path, live_url)
    add_location(env)
    backups = tmp_path / "backups"
    backups.mkdir()
    paths = {"/backups": str(backups), '"$DATABASE_URL"': live_url}
    for line in guide_lines("pg_dump --format=custom"):
        shell(line, **paths)
    (dump,) = backups.glob("notifier-*.dump")
    host = live_url.rsplit("/", 1)[0]  # postgresql://user@host:port
    for line in guide_lines("createdb notifier_restored") + guide_lines("pg_restore "):
        line = line.replace("notifier_restored", restored).replace(
            "notifier-2027-01-14.dump", dump.name
        )
        line = line.replace("createdb ", f"createdb --maintenance-db={host}/postgres ")
        line = line.replace(f"--dbname={restored}", f"--dbname={host}/{restored}")
        shell(line, **paths)
    restored_env = service_env(tmp_path, f"{host}/{restored}", migrated=False)
    assert "COVA Spine and Pain Center" in locations(restored_env)  # schema and data, current


def test_the_guides_install_lines_are_the_images_tested_build_steps() -> None:
    """The systemd path installs exactly as the image's build stage does, which
    test_packaging.py runs in a fresh virtualenv."""
    dockerfile = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    image_steps = [
        step.strip()
        for line in build_stage.splitlines()
        if line.startswith("RUN ")
        for step in line.removeprefix("RUN ").split("&&")
    ]
    guide_steps = [line.removeprefix("sudo ") for line in guide_lines("sudo /opt/notifier/bin/pip")]
    assert guide_steps == [s for s in image_steps if s.startswith("/opt/notifier/bin/pip install")]
    assert guide_lines("sudo python3.11 -m venv /opt/notifier")
    assert "RUN python -m venv /opt/notifier" in build_stage
