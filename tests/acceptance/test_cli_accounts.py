"""Account administration as an admin runs it: ``notifier user list|disable|enable``,
``notifier token list|revoke`` and ``notifier secret generate``, each a separate process; and
their effect on a running ``notifier serve``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, run_notifier, service_env
from tests.support.serving import serving

PASSWORD = "a long passphrase"
STRONG_KEY = "Xq7_pLr2-M0nVb8cT4zKj1sW6yHd3aFe9uGiN5oR-tQ_wEx0ZlYmBvC4kJ2hPg7s"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return service_env(tmp_path, database_url)


def add_user(env: dict[str, str], email: str, role: str) -> None:
    run_notifier(env, "user", "create", "--email", email, "--role", role, stdin=PASSWORD + "\n")


def test_users_are_listed_disabled_and_enabled(env: dict[str, str]) -> None:
    add_user(env, "ops@cova.example", "manager")
    add_user(env, "desk@cova.example", "viewer")

    listed = run_notifier(env, "user", "list").stdout.splitlines()
    assert listed[0].split() == [
        "id",
        "email",
        "role",
        "locations",
        "status",
        "created",
        "last_sign_in",
    ]
    assert listed[1].split()[:5] == ["1", "ops@cova.example", "manager", "all", "active"]
    assert listed[2].split()[:5] == ["2", "desk@cova.example", "viewer", "all", "active"]
    assert PASSWORD not in "\n".join(listed) and "argon2" not in "\n".join(listed)

    disabled = run_notifier(env, "user", "disable", "--email", "OPS@cova.example")
    assert disabled.stdout.strip() == "user 1 disabled: ops@cova.example (0 sessions ended)"
    users = json.loads(run_notifier(env, "user", "list", "--json").stdout)
    assert [(u["email"], u["status"]) for u in users] == [
        ("ops@cova.example", "disabled"),
        ("desk@cova.example", "active"),
    ]

    enabled = run_notifier(env, "user", "enable", "--email", "ops@cova.example")
    assert enabled.stdout.strip() == "user 1 enabled: ops@cova.example"
    assert "active" in run_notifier(env, "user", "list").stdout.splitlines()[1]

    unknown = run_notifier(env, "user", "disable", "--email", "nobody@cova.example", check=False)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no user n***@cova.example"


def test_tokens_are_listed_and_revoked_by_name_or_id(env: dict[str, str]) -> None:
    first = run_notifier(env, "token", "create", "--name", "clinic website").stdout.strip()
    run_notifier(env, "token", "create", "--name", "kiosk")
    run_notifier(env, "token", "create", "--name", "kiosk")

    listed = run_notifier(env, "token", "list").stdout
    assert listed.splitlines()[0].split() == [
        "id",
        "name",
        "user",
        "scope",
        "locations",
        "status",
        "created",
        "revoked",
    ]
    assert first not in listed and first[4:] not in listed
    rows = json.loads(run_notifier(env, "token", "list", "--json").stdout)
    assert [(t["id"], t["name"], t["status"]) for t in rows] == [
        (1, "clinic website", "live"),
        (2, "kiosk", "live"),
        (3, "kiosk", "live"),
    ]
    assert all(
        set(t) == {"id", "name", "user", "scope", "locations", "status", "created", "revoked"}
        for t in rows
    )
    assert {(t["scope"], t["locations"], t["user"]) for t in rows} == {("send", "all", None)}

    revoked = run_notifier(env, "token", "revoke", "--name", "clinic website")
    assert revoked.stdout.strip() == "token 1 revoked: clinic website"
    again = run_notifier(env, "token", "revoke", "--name", "clinic website", check=False)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: no live token named 'clinic website'"

    ambiguous = run_notifier(env, "token", "revoke", "--name", "kiosk", check=False)
    assert ambiguous.returncode == 2
    assert "2 live tokens are named 'kiosk' (ids 2, 3): revoke one with --id" in ambiguous.stderr
    assert run_notifier(env, "token", "revoke", "--id", "3").stdout.strip() == (
        "token 3 revoked: kiosk"
    )
    statuses = [
        t["status"] for t in json.loads(run_notifier(env, "token", "list", "--json").stdout)
    ]
    assert statuses == ["revoked", "live", "revoked"]

    neither = run_notifier(env, "token", "revoke", check=False)
    assert neither.returncode == 2 and "--name or --id" in neither.stderr


def test_a_personal_token_is_listed_with_its_user(env: dict[str, str]) -> None:
    add_user(env, "ana@cova.example", "manager")
    run_notifier(env, "token", "create", "--name", "ana laptop", "--user", "ANA@cova.example")
    run_notifier(env, "token", "create", "--name", "website")
    rows = json.loads(run_notifier(env, "token", "list", "--json").stdout)
    assert [(t["name"], t["user"]) for t in rows] == [
        ("ana laptop", "ana@cova.example"),
        ("website", None),
    ]
    table = run_notifier(env, "token", "list").stdout.splitlines()
    assert "ana@cova.example" in table[1] and "ana@cova.example" not in table[2]

    unknown = run_notifier(
        env, "token", "create", "--name", "x", "--user", "nobody@cova.example", check=False
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no active user n***@cova.example"
    run_notifier(env, "user", "disable", "--email", "ana@cova.example")
    disabled = run_notifier(
        env, "token", "create", "--name", "x", "--user", "ana@cova.example", check=False
    )
    assert disabled.returncode == 2 and "no active user" in disabled.stderr


def test_secret_generate_prints_a_strong_key_that_the_settings_accept(
    env: dict[str, str],
) -> None:
    keys = {run_notifier(env, "secret", "generate").stdout.strip() for _ in range(2)}
    assert len(keys) == 2
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{64}", key)
        checked = run_notifier(env | {"NOTIFIER_SECRET_KEY": key}, "config")
        assert "secret key: set" in checked.stdout


@pytest.mark.parametrize("weak", ["passwordpassword", " " * 16, "x" * 40])
def test_a_weak_secret_key_stops_every_command(env: dict[str, str], weak: str) -> None:
    refused = run_notifier(env | {"NOTIFIER_SECRET_KEY": weak}, "config", check=False)
    assert refused.returncode == 3
    assert "NOTIFIER_SECRET_KEY" in refused.stderr
    if weak.strip():
        assert weak not in refused.stderr


def test_a_running_service_refuses_a_revoked_token_and_a_disabled_users_session(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(
        tmp_path,
        database_url,
        HTTP_PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY=STRONG_KEY,
    )
    add_user(env, "ops@cova.example", "manager")
    token = run_notifier(env, "token", "create", "--name", "clinic website").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with (
        serving(env, tmp_path / "serve.log") as service,
        httpx.Client(base_url=service.url) as browser,
    ):
        assert httpx.get(f"{service.url}/api/v1/notices", headers=auth).status_code == 200
        login = browser.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf is not None
        signed = browser.post(
            "/console/login",
            data={"email": "ops@cova.example", "password": PASSWORD, "csrf": csrf.group(1)},
        )
        assert signed.status_code == 303
        assert browser.get("/console/notices").status_code == 200

        run_notifier(env, "token", "revoke", "--name", "clinic website")
        assert httpx.get(f"{service.url}/api/v1/notices", headers=auth).status_code == 401

        disabled = run_notifier(env, "user", "disable", "--email", "ops@cova.example")
        assert "(1 session ended)" in disabled.stdout
        answer = browser.get("/console/notices")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login")
