"""The deployment files, checked statically (no image can be built or composed here): the
compose file's services, health gates, start order and settings; the Dockerfile's stages, user,
listening address, health check and locked install; the lock file; .env.example covering every
setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.settings import ENV_PREFIX, OTHER_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
KNOWN = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {
    ENV_PREFIX + name for name in OTHER_VARIABLES
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_compose_runs_postgres_a_migration_a_scheduler_and_two_workers(
    compose: dict[str, Any],
) -> None:
    s = services(compose)
    assert set(s) == {"postgres", "migrate", "scheduler", "worker-1", "worker-2", "sandbox"}
    assert s["migrate"]["command"] == ["db", "upgrade"]
    assert s["scheduler"]["command"] == ["serve", "--role", "scheduler"]
    assert s["worker-1"]["command"] == s["worker-2"]["command"] == ["serve", "--role", "worker"]
    for name in ("migrate", "scheduler", "worker-1", "worker-2"):
        assert s[name]["build"] == "." and s[name]["image"] == "notifier:latest", name
    assert s["migrate"]["restart"] == "no"


def test_postgres_is_health_gated_and_everything_waits_for_it_and_the_migration(
    compose: dict[str, Any],
) -> None:
    s = services(compose)
    check = s["postgres"]["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "pg_isready" in check["test"][1]
    assert check["retries"] >= 3
    assert s["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("scheduler", "worker-1", "worker-2"):
        assert s[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
        assert s[name]["stop_grace_period"] == "60s"  # in-flight sends finish on SIGTERM


def test_compose_settings_point_every_process_at_postgres_and_are_real_settings(
    compose: dict[str, Any],
) -> None:
    s = services(compose)
    for name in ("migrate", "scheduler", "worker-1", "worker-2"):
        env = s[name]["environment"]
        assert env["NOTIFIER_DATABASE_URL"].startswith("postgresql://notifier:${POSTGRES_PASSWORD")
        assert env["NOTIFIER_DATABASE_URL"].endswith("@postgres:5432/notifier")
        assert env["NOTIFIER_HTTP_HOST"] == "0.0.0.0"
        assert set(env) <= KNOWN, set(env) - KNOWN
        assert s[name]["env_file"] == [{"path": ".env", "required": False}]
    assert ":?" in s["postgres"]["environment"]["POSTGRES_PASSWORD"]  # no default password
    # Only the scheduler's HTTP is published, and only on loopback (a TLS proxy goes in front).
    assert s["scheduler"]["ports"] == ["127.0.0.1:8000:8000"]
    assert all("ports" not in s[n] for n in ("postgres", "migrate", "worker-1", "worker-2"))


def test_the_sandbox_is_an_opt_in_profile_built_apart(compose: dict[str, Any]) -> None:
    s = services(compose)
    assert s["sandbox"]["profiles"] == ["sandbox"]
    assert s["sandbox"]["build"] == "./sandbox"
    assert all("profiles" not in s[n] for n in s if n != "sandbox")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_is_multi_stage_non_root_listening_and_health_checked() -> None:
    steps = dockerfile()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build")
    final = steps[[i for i, (op, _) in enumerate(steps) if op == "FROM"][-1] :]
    env = " ".join(args for op, args in final if op == "ENV")
    assert "NOTIFIER_HTTP_HOST=0.0.0.0" in env
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    (check,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert "/healthz" in check and "CMD" in check
    copies = " ".join(args for op, args in steps if op == "COPY")
    assert "sandbox" not in copies and "tests" not in copies
    assert "--from=build /opt/notifier /opt/notifier" in copies
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "--require-hashes" in runs and "requirements.lock" in runs
    assert ("ENTRYPOINT", '["notifier"]') in steps and ("CMD", '["serve"]') in steps


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", lock, re.MULTILINE))
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock (make lock)"
    blocks = re.split(r"\n(?=[a-z0-9])", lock.split("\n\n", 1)[-1].strip())
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    assert "aiosmtpd" not in pins and "notifier-sandbox" not in pins
    assert "pytest" not in pins  # the test tools stay out of the image


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"\b(NOTIFIER_[A-Z0-9_]+)=", text))
    missing = {ENV_PREFIX + name.upper() for name in Settings.model_fields} - named
    assert missing == set(), f"add to .env.example: {sorted(missing)}"
    assert named <= KNOWN, named - KNOWN
