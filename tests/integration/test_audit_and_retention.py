"""The audit trail (a row per action and bulk read, never patients' data, never changed), the
retention run (old addresses gone from the database, totals unchanged) and forgetting a
patient (their opt-out still holds when they are imported again). On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from notifier.bootstrap import build_app
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.domain.actors import Role
from notifier.domain.consent import Source
from notifier.errors import NotFoundError
from notifier.runtime import Runtime
from notifier.storage.engine import Database
from notifier.storage.models import Base, ConsentEvent
from notifier.usecases.accounts import token_digest
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER
from tests.support.peers import EVENING_BEFORE, peer_settings
from tests.support.web import PASSWORD, Web, broadcast_sms, csrf_of, sign_in

MANAGER = "manager@cova.example"
ADMIN = "admin@clinics.example"
# Every patient's data the reference list holds: none may reach an audit row.
PATIENT_DATA = [
    "Maria", "Lopez", "John", "Smith", "Jane", "Ruiz", "Reed",
    "maria@example.org", "jane@example.org", "ana@example.org", "tom@example.org",
    "555-0111", "555-0112", "555-0114", "555-0115", "5550111", "5550112",
]  # fmt: skip


def audit_rows(web: Web) -> list[str]:
    """Every audit row, every column, as one line of text."""
    with web.app.db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_events ORDER BY id")).all()
    return [" | ".join(str(value) for value in row) for row in rows]


def test_each_action_and_bulk_read_leaves_one_audit_row_without_patients_data(web: Web) -> None:
    app = web.app
    app.accounts.create_user(MANAGER, "manager", PASSWORD)
    token = app.accounts.create_token("desk", sees_patients=True)
    bearer = {"Authorization": f"Bearer {token}"}
    failed = web.client.get("/console/login")
    web.client.post(
        "/console/login",
        data={"email": MANAGER, "password": "wrong password!", "csrf": csrf_of(failed)},
    )
    console = sign_in(web, MANAGER)
    try:
        notice = broadcast_sms(app, FakeChannel())
        created = web.client.post(
            "/api/v1/notices",
            json={
                "location": "cova",
                "starts": "2025-02-20 12:30",
                "ends": "2025-02-21 00:00",
                "reason": "ice",
            },
            headers=bearer,
        ).json()["id"]
        csrf = csrf_of(console.get("/console/notices"))
        assert console.post(f"/console/notices/{created}/cancel", data={"csrf": csrf}).is_redirect
        assert console.get("/console/patients").is_success
        assert console.get(f"/console/notices/{notice}/deliveries.csv").is_success
        assert console.get(f"/console/notices/{notice}/not-reached.csv").is_success
        web.client.get(f"/api/v1/deliveries?notice={notice}&show_patients=true", headers=bearer)
        web.client.post(
            "/api/v1/patients/import",
            content=f"{HEADER}\np9,Noel,Park,540-555-0119,,en,cova,yes,no\n",
            headers=bearer | {"Content-Type": "text/csv"},
        )
        app.notices.affected(OPERATOR, notice)
        app.notices.update(OPERATOR, notice, reason="ice and snow")
        app.deliveries.retry_failed(OPERATOR)
        app.accounts.revoke_token(name="desk")
        app.accounts.create_user(ADMIN, "admin", PASSWORD)
        admin = app.accounts.actor_for_email(ADMIN)
        events = app.audit.events(admin)
    finally:
        console.close()
    actions = [e.action for e in events]
    for wanted in (
        "user_create",
        "token_create",
        "signin_failed",
        "signin",
        "notice_create",
        "notice_cancel",
        "patients_list",
        "delivery_log_export",
        "not_reached_export",
        "patients_import",
        "affected_export",
        "token_revoke",
        "notice_update",
        "deliveries_retry",
        "location_create",
    ):
        assert wanted in actions, (wanted, actions)
    cancel = next(e for e in events if e.action == "notice_cancel")
    assert cancel.target == f"notice:{created}" and cancel.actor.startswith("user:")
    assert cancel.ip == "127.0.0.1"
    listed = next(e for e in events if e.action == "patients_list")
    assert listed.count == 5  # the reference five (Noel came later)
    stored = "\n".join(audit_rows(web))
    for value in [*PATIENT_DATA, "Noel", "Park", "555-0119", "@"]:
        assert value not in stored, value
    assert app.audit.events(admin)[-1].action == "audit_read"  # reading it is audited too


def test_approvals_sends_accounts_retention_feeds_and_imports_are_in_the_trail_too(
    web: Web,
) -> None:
    """The rest of the actions, read back as an admin reads them: the console's audit page and
    ``notifier audit --since``."""
    app = web.app
    app.accounts.create_user(MANAGER, "manager", PASSWORD)
    app.accounts.create_user("ben@cova.example", "manager", PASSWORD)
    app.accounts.create_user(ADMIN, "admin", PASSWORD)
    manager, ben = (app.accounts.actor_for_email(e) for e in (MANAGER, "ben@cova.example"))
    app.settings.approval_threshold = 0  # every broadcast needs a second manager
    held = app.notices.create(
        manager, NoticeRequest("cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice")
    ).notice.id
    app.notices.approve(ben, held)
    draft = app.notices.create(
        manager, NoticeRequest("cova", "2025-02-24 08:00", "2025-02-24 12:00", "ice", send_at=None)
    ).notice.id
    app.notices.send(manager, draft, "now")
    app.accounts.disable_user(MANAGER)
    app.accounts.enable_user(MANAGER)
    app.patients.import_appointments(
        OPERATOR,
        io.StringIO(
            "external_id,patient_external_id,location,starts_at,duration_minutes,provider,status\n"
            "a1,p1,cova,2025-02-20 10:30,30,Dr. Patel,scheduled\n"
        ),
    )
    app.locations.set_public_feeds(OPERATOR, "cova", False)
    app.retention.forget(OPERATOR, "p4")
    app.retention.run()

    admin = sign_in(web, ADMIN)
    try:
        page = admin.get("/console/audit")
    finally:
        admin.close()
    assert page.status_code == 200
    wanted = (
        "notice_approve", "notice_send", "user_disable", "user_enable", "appointments_import",
        "location_feeds", "patient_forget", "retention_run",
    )  # fmt: skip
    for action in wanted:
        assert action in page.text, action
    approved = next(e for e in app.audit.events(OPERATOR) if e.action == "notice_approve")
    assert approved.target == f"notice:{held}" and approved.actor == f"user:{ben.id}"
    stored = "\n".join(audit_rows(web))
    for value in PATIENT_DATA:
        assert value not in stored, value

    env = {"NOTIFIER_DATABASE_URL": app.settings.database_url}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        later = CliRunner().invoke(main, ["audit", "--since", "2999-01-01"], env=env)
        every = CliRunner().invoke(
            main, ["audit", "--since", "2000-01-01", "--format", "csv"], env=env
        )
        wrong = CliRunner().invoke(main, ["audit", "--since", "last week"], env=env)
    finally:
        root.handlers[:], root.level = handlers, level
    assert later.exit_code == 0 and not any(a in later.output for a in wanted)
    assert every.exit_code == 0 and all(a in every.output for a in wanted)
    assert wrong.exit_code != 0 and "is not an ISO date or time" in wrong.output


def test_the_audit_trail_is_for_admins_of_every_location_only(web: Web) -> None:
    web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
    with pytest.raises(NotFoundError):
        web.app.audit.events(web.app.accounts.actor_for_email(MANAGER))


def test_audit_rows_cannot_be_changed_or_deleted(web: Web) -> None:
    web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
    before = audit_rows(web)
    assert before
    for statement in ("UPDATE audit_events SET action = 'nothing'", "DELETE FROM audit_events"):
        with (
            pytest.raises(DBAPIError, match="append-only"),
            web.app.db.engine.begin() as connection,
        ):
            connection.execute(text(statement))
    assert audit_rows(web) == before


def everything_stored(web: Web) -> str:
    """Every value of every table, as text (what a copy of the database would show)."""
    lines = []
    with web.app.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                lines.append(" | ".join(str(value) for value in row))
    return "\n".join(lines)


def totals(web: Web, notice: int) -> tuple[dict[str, dict[str, int]], list[tuple[int, str]]]:
    app = web.app
    log = [(d.id, d.state) for d in app.deliveries.log(OPERATOR)]
    return app.deliveries.summary(OPERATOR, notice), log


def test_after_a_retention_run_no_old_address_remains_and_totals_do_not_change(
    web: Web, clock: FrozenClock
) -> None:
    app = web.app
    notice = broadcast_sms(app, FakeChannel())
    # Maria changes her number and address: the old ones are only in what was sent her.
    app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            f"{HEADER}\np1,Maria,Lopez,540-555-0191,maria.new@example.org,en,cova,yes,yes\n"
        ),
    )
    old = ["+15405550111", "maria@example.org"]
    assert "+15405550111" in everything_stored(web)
    before = totals(web, notice)
    clock.advance(timedelta(days=app.settings.retention_days - 1).total_seconds())
    assert app.retention.run().deliveries == 0  # not old enough yet
    clock.advance(timedelta(days=2).total_seconds())
    done = app.retention.run()
    assert done.deliveries == sum(before[0]["sms"].values()) and done.ledger > 0
    assert totals(web, notice) == before
    stored = everything_stored(web)
    for address in old:
        assert address not in stored, address
    assert "+15405550191" in stored  # today's number is kept: it is the patient's
    assert {d.address for d in app.deliveries.log(OPERATOR)} == {"erased"}
    url = app.settings.database_url
    if url.startswith("sqlite"):
        app.db.dispose()  # checkpoint: everything is in the file itself
        data = Path(url.removeprefix("sqlite:///")).read_bytes()
        for address in old:
            assert address.encode() not in data, address


def test_without_a_secret_key_old_ledger_addresses_stay_and_retention_says_so(
    web: Web, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """No key, no keyed hash (an unkeyed hash of a phone number is reversed by trying every
    number): the opt-out keeps working on its address, and the run warns instead of staying
    silent."""
    app = web.app
    assert app.consent.opt_out("sms", "+15405550111", Source.KEYWORD)
    app.settings.secret_key = None
    clock.advance(timedelta(days=app.settings.retention_days + 1).total_seconds())
    with caplog.at_level(logging.WARNING, logger="notifier.usecases.retention"):
        done = app.retention.run()
    with app.db.session() as s:
        entries = s.scalar(select(func.count()).select_from(ConsentEvent))
    assert entries and (done.ledger, done.ledger_kept) == (0, entries)  # the opt-out among them
    assert "NOTIFIER_SECRET_KEY" in caplog.text and "+1540" not in caplog.text
    assert app.consent.is_opted_out("sms", "+15405550111")

    env = {
        "NOTIFIER_DATABASE_URL": app.settings.database_url,
        "NOTIFIER_NOW": (clock.now() + timedelta(days=1)).isoformat(),
    }
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(main, ["retention", "run"], env=env)
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert f"warning: {entries} consent-ledger entries that old keep their addresses" in (
        result.output
    )


def test_the_scheduler_runs_retention_at_start_and_then_hourly(
    web: Web, clock: FrozenClock
) -> None:
    app = web.app
    broadcast_sms(app, FakeChannel())
    clock.advance(timedelta(days=app.settings.retention_days + 1).total_seconds())
    with Runtime(app, "scheduler") as runtime:
        job = runtime.scheduler.get_job("retention")
        assert job is not None and job.trigger.interval == timedelta(hours=1)
        deadline = time.monotonic() + 30
        while not any(e.action == "retention_run" for e in app.audit.events(OPERATOR)):
            assert time.monotonic() < deadline, "no retention run at start"
            time.sleep(0.05)
    assert {d.address for d in app.deliveries.log(OPERATOR)} == {"erased"}


def test_a_forgotten_patient_who_opted_out_is_not_texted_when_imported_again(web: Web) -> None:
    app = web.app
    assert app.consent.opt_out("sms", "+15405550111", Source.KEYWORD)
    done = app.retention.forget(OPERATOR, "p1")
    assert done.suppressed == 1
    stored = everything_stored(web)
    for value in ("+15405550111", "maria@example.org", "Maria", "Lopez"):
        assert value not in stored, value
    assert not app.consent.is_opted_out("sms", "+15405550111")  # no plain address is kept
    # The clinic's next export brings Maria back, with her consent ticked.
    app.patients.import_patients(
        OPERATOR,
        io.StringIO(f"{HEADER}\np1,Maria,Lopez,540-555-0111,,en,cova,yes,no\n"),
    )
    assert app.consent.is_opted_out("sms", "+15405550111")
    channel = FakeChannel()
    broadcast_sms(app, channel)
    texted = {m.to for m in channel.sent}
    assert "+15405550111" not in texted
    assert "+15405550112" in texted  # the others were texted: the send did happen


def test_forgetting_a_patient_clears_every_channels_consent_and_the_phone_type(web: Web) -> None:
    app = web.app
    app.patients.import_patients(OPERATOR, io.StringIO(
        f"{HEADER},voice_consent,phone_type\n"
        "p1,Maria,Lopez,540-555-0111,maria@example.org,en,cova,yes,yes,yes,landline\n"
    ))  # fmt: skip
    consents = [spec.consent_field for spec in app.deps.channels.values()]
    assert "voice_consent" in consents
    query = text(f"SELECT {', '.join(consents)}, phone_type FROM patients WHERE external_id='p1'")
    with app.db.engine.connect() as connection:
        assert tuple(connection.execute(query).one()) == (True,) * len(consents) + ("landline",)
    app.retention.forget(OPERATOR, "p1")
    with app.db.engine.connect() as connection:
        assert tuple(connection.execute(query).one()) == (False,) * len(consents) + (None,)


def test_forgetting_needs_the_patient_to_be_the_actors(web: Web) -> None:
    web.app.locations.save(
        OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    web.app.accounts.create_user("north@clinics.example", "manager", PASSWORD, ["north"])
    north = web.app.accounts.actor_for_email("north@clinics.example")
    with pytest.raises(NotFoundError):
        web.app.retention.forget(north, "p1")
    assert web.app.patients.page(OPERATOR, "cova")[0][0].name == "Maria Lopez"


def test_the_trail_reads_through_the_api_and_the_command_line(web: Web) -> None:
    web.app.accounts.create_user(MANAGER, "manager", PASSWORD)
    every = web.app.accounts.create_token("ops")  # every location, send: acts as an admin
    answer = web.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {every}"})
    assert answer.status_code == 200
    actions = [row["action"] for row in answer.json()]
    assert actions[:2] == ["location_create", "patients_import"]  # the fixture's cova
    assert actions[2:] == ["user_create", "token_create"]
    env = {"NOTIFIER_DATABASE_URL": web.app.settings.database_url}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            main, ["audit", "--format", "csv", "--actor", "operator"], env=env
        )
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "id,at,actor,ip,action,target,count,outcome,via"
    rows = [line.split(",") for line in lines[1:]]
    # The token's read above is not the operator's: left out.
    assert [row[4] for row in rows] == [
        "location_create",
        "patients_import",
        "user_create",
        "token_create",
    ]
    assert {row[2] for row in rows} == {"operator"}


def test_users_and_tokens_made_before_scopes_keep_every_location(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upgrade("0011")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, email, role, password_hash, created_at) "
                    "VALUES (1, 'old@cova.example', 'manager', 'x', :at)"
                ),
                {"at": datetime(2025, 2, 18, tzinfo=UTC)},
            )
            connection.execute(
                text(
                    "INSERT INTO api_tokens (id, name, token_sha256, created_at, sees_patients) "
                    "VALUES (1, 'old', :digest, :at, false)"
                ),
                {"digest": token_digest("ntf_old"), "at": datetime(2025, 2, 18, tzinfo=UTC)},
            )
        db.upgrade()
    finally:
        db.dispose()
    app = build_app(peer_settings(database_url, None, None), clock=FrozenClock(EVENING_BEFORE))
    try:
        user = app.accounts.actor_for_email("old@cova.example")
        assert user.every_location and user.role is Role.MANAGER
        token = app.accounts.token_actor("ntf_old")
        assert token is not None and token.every_location and token.can_manage
        assert [t.scope for t in app.accounts.tokens()] == ["send"]
    finally:
        app.close()
