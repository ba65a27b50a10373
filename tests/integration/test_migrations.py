"""Migrations: one straight history whose result is exactly what the models describe."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from notifier.storage.engine import MIGRATIONS, Database, _alembic_config
from notifier.storage.models import Base, Notice

AT = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)
STARTS = datetime(2025, 2, 19, 17, 30, tzinfo=UTC)
ENDS = datetime(2025, 2, 21, 5, 0, tzinfo=UTC)


def test_history_has_a_single_head() -> None:
    with Database("sqlite://").engine.connect() as connection:
        script = ScriptDirectory.from_config(_alembic_config(connection))
    assert len(script.get_heads()) == 1, script.get_heads()
    assert MIGRATIONS == "notifier.storage:migrations"


def test_upgraded_schema_matches_the_models_and_round_trips(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        db.downgrade("base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.upgrade()
        assert {"deliveries", "delivery_events", "notices", "patients"} <= set(
            inspect(db.engine).get_table_names()
        )
    finally:
        db.dispose()


def test_notices_stored_before_revision_0005_take_their_locations_zone_and_hours(
    database_url: str,
) -> None:
    """Upgrading an existing database: each notice gets the zone and hours of its location (the
    best record there is) and, if it had none, its envelope as its one interval."""
    db = Database(database_url)
    try:
        db.upgrade("0004")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO locations (id, slug, name, timezone, business_hours, "
                    "default_language, created_at) VALUES (1, 'cova', 'COVA', "
                    "'America/New_York', :hours, 'en', :at)"
                ),
                {"hours": json.dumps({"mon": ["08:00", "17:00"]}), "at": AT},
            )
            connection.execute(
                text(
                    "INSERT INTO notices (id, location_id, kind, starts_at, ends_at, reason, "
                    "status, version, intervals, audience, change, created_at, updated_at) "
                    "VALUES (1, 1, 'closure', :starts, :ends, 'ice', 'active', 1, NULL, "
                    "'everyone', 'original', :at, :at)"
                ),
                {"starts": STARTS, "ends": ENDS, "at": AT},
            )
        db.upgrade()
        with db.session() as s:
            notice = s.get(Notice, 1)
            assert notice is not None
            assert notice.timezone == "America/New_York"
            assert notice.business_hours == {"mon": ["08:00", "17:00"]}
            [[starts, ends]] = notice.intervals
            assert datetime.fromisoformat(starts) == STARTS
            assert datetime.fromisoformat(ends) == ENDS
    finally:
        db.dispose()
