"""HELP from a number no patient has must name the program and a contact (carriers require it):
with several locations no one clinic can answer, so `serve` warns, with the fix, unless
NOTIFIER_PROGRAM_NAME and NOTIFIER_HELP_PHONE are set."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import run_notifier, service_env


def _two_locations(tmp_path: Path) -> dict[str, str]:
    env = service_env(tmp_path, f"sqlite:///{tmp_path / 'n.db'}")
    run_notifier(env, "db", "upgrade")
    for slug in ("cova", "roanoke"):
        run_notifier(
            env, "location", "add", "--slug", slug, "--name", slug, "--timezone", "America/New_York"
        )
    return env


def test_serve_warns_when_help_would_name_no_program_and_no_phone(tmp_path: Path) -> None:
    env = _two_locations(tmp_path)
    served = run_notifier(env, "serve", "--until-idle", "--no-http")
    warning = [line for line in served.stderr.splitlines() if "help_unnamed" in line]
    assert len(warning) == 1 and " WARNING " in warning[0]
    assert "NOTIFIER_PROGRAM_NAME and NOTIFIER_HELP_PHONE" in warning[0]
    assert "2 locations" in warning[0]


def test_serve_is_quiet_about_help_once_both_are_set(tmp_path: Path) -> None:
    env = _two_locations(tmp_path) | {
        "NOTIFIER_PROGRAM_NAME": "COVA closure alerts",
        "NOTIFIER_HELP_PHONE": "540-555-0100",
    }
    served = run_notifier(env, "serve", "--until-idle", "--no-http")
    assert "help_unnamed" not in served.stderr
