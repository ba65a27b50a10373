"""Shared fixtures: isolated settings, frozen time, SQLite and PostgreSQL, real test peers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.peers import EVENING_BEFORE, peer_settings
from tests.support.web import Web, add_cova, save_cova, served

POSTGRES_URL = os.environ.get(
    "NOTIFIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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


@pytest.fixture
def app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = build_app(peer_settings(database_url, fake_twilio, fake_smtp), clock=clock)
    yield built
    built.close()


@pytest.fixture
def cova(app: App) -> str:
    return save_cova(app)


@pytest.fixture
def web(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[Web]:
    """The real HTTP app served by uvicorn on loopback, with the reference location and its
    five patients."""
    with served(database_url, fake_twilio, fake_smtp, clock) as w:
        add_cova(w.app)
        yield w
