"""Shared fixtures: isolated settings, frozen time, SQLite and PostgreSQL, real test peers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.settings import Settings, load_settings
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio

NEW_YORK = ZoneInfo("America/New_York")
# The evening before the reference closure: the storm is forecast, the clinic decides.
EVENING_BEFORE = datetime(2025, 2, 18, 18, 0, tzinfo=NEW_YORK)
POSTGRES_URL = os.environ.get(
    "NOTIFIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

PATIENTS_CSV = """\
external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent
p1,Maria,Lopez,540-555-0111,maria@example.org,en,cova,yes,yes
p2,John,Smith,(540) 555-0112,,en,cova,yes,no
p3,Jane,Smith,540-555-0112,jane@example.org,en,cova,yes,yes
p4,Ana,Ruiz,540-555-0114,ana@example.org,en,cova,no,yes
p5,Tom,Reed,540-555-0115,tom@example.org,en,cova,no,no
"""
"""Five patients: p2 and p3 share a phone; p4 wants email only; p5 agreed to nothing."""


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIFIER_* variable, .env or config file from the developer's machine leaks in."""
    for name in list(os.environ):
        if name.startswith("NOTIFIER_") and name != "NOTIFIER_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    for name in ("TWILIO_REGION", "TWILIO_EDGE", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOTIFIER_CONFIG_FILE", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(EVENING_BEFORE)


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {problem}"
        if IN_CI:
            pytest.fail(message + " (CI must run the PostgreSQL tests)")
        pytest.skip(message + " (set NOTIFIER_TEST_POSTGRES_URL to run these tests)")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh schema per test on the shared server, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = postgres_server.replace("postgresql://", "postgresql+psycopg://", 1)
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def peer_settings(
    database_url: str, twilio: FakeTwilio | None, smtp: FakeSmtp | None, **extra: Any
) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "retry_base_seconds": 1.0}
    if twilio is not None:
        values |= {
            "twilio_account_sid": twilio.account_sid,
            "twilio_auth_token": twilio.auth_token,
            "twilio_from_number": twilio.from_number,
            "twilio_api_base_url": twilio.base_url,
            "twilio_timeout_seconds": 5.0,
        }
    if smtp is not None:
        values |= {
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "email_from": "closures@cova.example",
            "smtp_timeout_seconds": 5.0,
        }
    return load_settings(**(values | extra))


@pytest.fixture
def app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = build_app(peer_settings(database_url, fake_twilio, fake_smtp), clock=clock)
    yield built
    built.close()


@pytest.fixture
def cova(app: App) -> str:
    app.service.add_location(
        "cova",
        "COVA Spine and Pain Center",
        "America/New_York",
        "Mon-Fri 08:00-17:00",
        "540-555-0100",
    )
    return "cova"


def service_env(
    tmp_path: Path,
    database_url: str,
    twilio: dict[str, Any] | None = None,
    smtp: tuple[str, int] | None = None,
    **settings: str,
) -> dict[str, str]:
    """The environment of a ``notifier`` subprocess: the caller's environment without any
    NOTIFIER_* of its own, the Twilio-compatible server (``FakeTwilio.info()`` or a
    ``FakeTwilioProcess.info``), the SMTP server, the evening-before clock, a fast poll, HTTP on a
    free port; ``settings`` (names without the prefix) override or add to that."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    values = {
        "DATABASE_URL": database_url,
        "CONFIG_FILE": str(tmp_path / "absent.toml"),
        "NOW": EVENING_BEFORE.isoformat(),
        "POLL_INTERVAL_SECONDS": "0.2",
        "HTTP_PORT": "0",
    }
    if twilio is not None:
        values |= {
            "TWILIO_ACCOUNT_SID": twilio["account_sid"],
            "TWILIO_AUTH_TOKEN": twilio["auth_token"],
            "TWILIO_FROM_NUMBER": twilio["from_number"],
            "TWILIO_API_BASE_URL": twilio["base_url"],
        }
    if smtp is not None:
        values |= {
            "SMTP_HOST": smtp[0],
            "SMTP_PORT": str(smtp[1]),
            "SMTP_STARTTLS": "false",
            "EMAIL_FROM": "closures@cova.example",
        }
    env.update({f"NOTIFIER_{name}": value for name, value in (values | settings).items()})
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env
