"""Migrations: one straight history whose result is exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from notifier.db import MIGRATIONS, Database, _alembic_config
from notifier.models import Base


def test_history_has_a_single_head() -> None:
    with Database("sqlite://").engine.connect() as connection:
        script = ScriptDirectory.from_config(_alembic_config(connection))
    assert len(script.get_heads()) == 1, script.get_heads()
    assert MIGRATIONS == "notifier:migrations"


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
