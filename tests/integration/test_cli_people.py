"""Users and patients from the command line, in process (``click.testing.CliRunner``) on the
test database: a user made for some locations is scoped to them, and a patient is forgotten on
request by the operator or a manager of their location only; a second manager approves, the
history says who, an emergency send goes alone with its reason. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from notifier.bootstrap import App
from notifier.cli import main
from notifier.storage.models import Patient
from tests.support.actors import OPERATOR
from tests.support.peers import EVENING_BEFORE
from tests.support.web import PASSWORD, add_cova


@pytest.fixture
def cli(app: App) -> Iterator[App]:
    add_cova(app)
    app.locations.save(OPERATOR, "north", "COVA North", "America/New_York", "Mon-Fri 08:00-17:00")
    yield app


def run(app: App, *args: str, stdin: str | None = None, **settings: str) -> Result:
    env = {
        "NOTIFIER_DATABASE_URL": app.settings.database_url,
        "NOTIFIER_SECRET_KEY": "kF3v9QmZt0r1xYpL2wHs8uNcJd6Ea5Bg-Tz4",
        "NOTIFIER_NOW": EVENING_BEFORE.isoformat(),
    } | {f"NOTIFIER_{name.upper()}": value for name, value in settings.items()}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(main, list(args), env=env, input=stdin)
    finally:
        root.handlers[:], root.level = handlers, level


def test_a_user_made_for_some_locations_sees_only_those(cli: App) -> None:
    made = run(
        cli, "user", "create", "--email", "desk@north.example", "--role", "manager",
        "--locations", "north", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.output.startswith("user ") and "desk@north.example (manager)" in made.output
    listed = json.loads(run(cli, "user", "list", "--json").output)
    [desk] = [u for u in listed if u["email"] == "desk@north.example"]
    assert desk["locations"] in (["north"], "north")
    notices = run(cli, "notice", "list", "--location", "cova", "--as", "desk@north.example")
    assert notices.exit_code != 0 and "no location 'cova'" in notices.output
    unknown = run(
        cli, "user", "create", "--email", "x@y.example", "--role", "viewer",
        "--locations", "nowhere", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.exit_code != 0 and "no location 'nowhere'" in unknown.output


def test_a_patient_is_forgotten_by_a_manager_of_their_location_only(cli: App) -> None:
    run(
        cli, "user", "create", "--email", "desk@north.example", "--role", "manager",
        "--locations", "north", stdin=PASSWORD + "\n",
    )  # fmt: skip
    elsewhere = run(cli, "patients", "forget", "p1", "--as", "desk@north.example")
    assert elsewhere.exit_code != 0 and "no patient 'p1'" in elsewhere.output
    forgotten = run(cli, "patients", "forget", "p1")
    assert forgotten.exit_code == 0, forgotten.output
    assert forgotten.output.startswith("patient p1 forgotten:")
    with cli.db.session() as s:
        maria = s.scalars(select(Patient).where(Patient.external_id == "p1")).one()
        assert (maria.first_name, maria.phone, maria.email) == ("", None, None)


def test_a_second_manager_approves_from_the_command_line_and_the_history_says_who(
    cli: App,
) -> None:
    held = {"approval_threshold": "0", "send_hold_seconds": "60"}
    for email in ("ann@cova.example", "ben@cova.example"):
        made = run(
            cli, "user", "create", "--email", email, "--role", "manager", "--locations", "cova",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert made.exit_code == 0, made.output
    closure = ("--location", "cova", "--starts", "2025-02-19 12:30", "--ends", "2025-02-21 00:00")
    created = run(
        cli, "notice", "create", *closure, "--reason", "ice", "--send-at", "now", "--json",
        "--as", "ann@cova.example", **held,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    notice = str(json.loads(created.output)["id"])
    own = run(cli, "notice", "approve", notice, "--as", "ann@cova.example", **held)
    assert own.exit_code != 0 and "another manager must approve it" in own.output
    # A minute later (each command's clock starts at NOTIFIER_NOW).
    later = {"now": (EVENING_BEFORE + timedelta(minutes=1)).isoformat()}
    approved = run(cli, "notice", "approve", notice, "--as", "ben@cova.example", **held, **later)
    assert approved.exit_code == 0, approved.output
    history = json.loads(run(cli, "notice", "history", notice, "--json").output)
    assert [(e["action"], e["by"]) for e in history][:2] == [
        ("created", "user:ann@cova.example"),
        ("approved", "user:ben@cova.example"),
    ]

    alone = run(
        cli, "notice", "create", *closure, "--reason", "ice", "--send-at", "now",
        "--emergency", "--emergency-reason", "the roof is leaking now", "--as", "ann@cova.example",
        **held,
    )  # fmt: skip
    assert alone.exit_code == 0, alone.output
    assert "emergency send without approval, recorded: the roof is leaking now" in alone.output
    # Ten seconds later (each command's clock starts at its NOTIFIER_NOW): in the undo window.
    soon = {"now": (EVENING_BEFORE + timedelta(seconds=10)).isoformat()}
    listed = run(cli, "notice", "list", **held, **soon)
    assert re.search(r"sends in \d+ s \(undo window until [0-9:]{8}\): notifier notice cancel 2",
                     listed.output), listed.output  # fmt: skip
