"""A new SQLite database is readable by its owner only — the file 0600, its -wal and -shm files
too, and the directory 0700 when Notifier creates it — whatever the process umask; a directory
that already existed keeps its mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from notifier.bootstrap import build_app
from notifier.clock import FrozenClock
from notifier.settings import load_settings
from tests.support.processes import run_notifier, service_env


@pytest.fixture(params=[0o022, 0o002, 0o000], ids=["umask022", "umask002", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_build_app_creates_a_private_database_in_a_private_directory(
    tmp_path: Path, umask: int, clock: FrozenClock
) -> None:
    database = tmp_path / "var" / "notifier.db"
    app = build_app(load_settings(database_url=f"sqlite:///{database}"), clock=clock)
    try:
        with app.db.engine.connect() as connection:  # WAL files exist while connected
            connection.execute(text("SELECT count(*) FROM locations"))
            wal = [database.with_name(database.name + s) for s in ("-wal", "-shm")]
            assert all(p.exists() for p in wal)
            assert {p.name: mode(p) for p in wal} == {p.name: 0o600 for p in wal}
        assert mode(database) == 0o600
        assert mode(database.parent) == 0o700
    finally:
        app.close()


def test_a_directory_that_already_existed_keeps_its_mode(
    tmp_path: Path, umask: int, clock: FrozenClock
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    app = build_app(load_settings(database_url=f"sqlite:///{shared / 'n.db'}"), clock=clock)
    app.close()
    assert (mode(shared), mode(shared / "n.db")) == (0o755, 0o600)


def test_notifier_db_upgrade_creates_the_default_database_private(
    tmp_path: Path, umask: int
) -> None:
    env = service_env(tmp_path, "sqlite:///var/notifier.db", migrated=False)
    result = run_notifier(env, "db", "upgrade")
    assert "database is up to date" in result.stdout
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "notifier.db") == 0o600


@pytest.mark.parametrize(
    "url_of",
    [
        lambda p: f"sqlite:///file:{p}?mode=rwc&uri=true",
        lambda p: f"sqlite:///file://{p}?uri=true",
        lambda p: f"sqlite+pysqlite:///{p}",
    ],
    ids=["uri-form", "file-url", "driver-named"],
)
def test_every_sqlite_url_form_creates_a_private_database(
    tmp_path: Path, umask: int, clock: FrozenClock, url_of: Callable[[Path], str]
) -> None:
    database = tmp_path / "uri" / "notifier.db"
    app = build_app(load_settings(database_url=url_of(database)), clock=clock)
    try:
        with app.db.engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM locations"))
        assert mode(database) == 0o600
        assert mode(database.parent) == 0o700
    finally:
        app.close()
