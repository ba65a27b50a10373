"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from notifier.domain.urls import mask_url_secrets
from notifier.errors import ConfigurationError

MIGRATIONS = "notifier.storage:migrations"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 10, create: bool = True) -> Engine:
    """An engine for ``url``; with ``create`` False a missing SQLite file is refused, not made."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            f"NOTIFIER_DATABASE_URL {mask_url_secrets(url)!r} is not a database URL"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        file = sqlite_file(parsed.database, parsed.query)
        if file is not None and not create and not file.exists():
            raise ConfigurationError(
                f"database {mask_url_secrets(url)} does not exist: create it with "
                "`notifier db upgrade` (or point NOTIFIER_DATABASE_URL at the right one)"
            )
        return _sqlite_engine(url, file)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,  # bound values are patients' data: never in an error or log
        )
    raise ConfigurationError(
        f"NOTIFIER_DATABASE_URL uses {parsed.get_backend_name()!r}: SQLite and PostgreSQL work"
    )


def sqlite_file(database: str | None, query: Mapping[str, Any]) -> Path | None:
    """The file a SQLite URL names, in any of its forms (``sqlite:///var/n.db``,
    ``sqlite:////abs/n.db``, ``sqlite:///file:var/n.db?mode=rwc&uri=true``,
    ``sqlite:///file:///abs/n.db?uri=true``); None for an in-memory database."""
    if not database or database == ":memory:" or query.get("mode") == "memory":
        return None
    if query.get("uri") != "true" or not database.startswith("file:"):
        return Path(database)
    path = unquote(database.removeprefix("file:").partition("?")[0])
    if path.startswith("//"):  # file://host/path: only an empty host or localhost is local
        host, _, rest = path[2:].partition("/")
        path = "/" + rest if host in ("", "localhost") else ""
    return Path(path) if path and path != ":memory:" else None


def _sqlite_engine(url: str, file: Path | None) -> Engine:
    if file is not None:
        create_private(file)
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        hide_parameters=True,  # bound values are patients' data: never in an error or log
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a deferred transaction that
        # reads and then writes can fail with SQLITE_BUSY without waiting for the lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Erased patients' data (retention, forget) is overwritten in the file, not left in
        # free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_private(database: Path) -> None:
    """A new SQLite file 0600 (SQLite gives its -wal, -shm and -journal files the same mode) in
    new directories 0700, made before SQLite writes a byte and whatever the umask; a file or
    directory that already exists is left as it is."""
    missing = [d for d in (database.parent, *database.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        directory.chmod(0o700)  # the umask may have taken bits away
    try:
        fd = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def unreachable(url: str, exc: DBAPIError) -> ConfigurationError:
    """One line naming the database (password masked) and the driver's first line of reason."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return ConfigurationError(f"cannot use database {mask_url_secrets(url)}: {reason}")


class Database:
    """The engine plus a session factory; ``session()`` is one transaction."""

    def __init__(self, url: str, pool_size: int = 10, create: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size, create)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision``."""
        self.ping()
        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)

    def require_current(self) -> None:
        """Raise a one-line ``ConfigurationError`` unless the database answers and its schema
        is at the code's migration head (nothing is created or migrated here)."""
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except DBAPIError as exc:
            raise unreachable(self.url, exc) from None
        head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
        if current == head:
            return
        where = mask_url_secrets(self.url)
        if current is None:
            raise ConfigurationError(
                f"database {where} has no Notifier schema: run `notifier db upgrade` first"
            )
        raise ConfigurationError(
            f"database {where} is at migration {current}, this version of Notifier needs "
            f"{head}: run `notifier db upgrade` (back up first; see docs/operate/deploy.md)"
        )

    def downgrade(self, revision: str) -> None:
        with self.engine.begin() as connection:
            command.downgrade(_alembic_config(connection), revision)

    def ping(self) -> None:
        """Raise a one-line ``ConfigurationError`` unless the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise unreachable(self.url, exc) from None

    def dispose(self) -> None:
        self.engine.dispose()
