"""Many clinics, one installation: a manager and a token of one clinic (north) try every
console page, API route and CLI command against the other clinic's (cova's) ids. Each gets 404
(or, for a list, nothing of cova's); none changes anything. And within one clinic, only those
who see patients (``Actor.sees_patients``) read their names and addresses: a viewer and a token
without ``--sees-patients`` are refused (403, a CLI error). On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from notifier.bootstrap import App
from notifier.cli import main
from notifier.domain.actors import ActorKind, Role
from notifier.domain.consent import Source
from notifier.errors import ForbiddenError, NotFoundError
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER
from tests.support.web import (
    PASSWORD,
    SECRET,
    Web,
    broadcast_sms,
    csrf_of,
    new_message_sid,
    sign_in,
)

NOW = "2025-02-18T18:00:00-05:00"
NORTH_MANAGER = "north.manager@clinics.example"
NORTH_PATIENTS = f"{HEADER}\nn1,Nora,North,540-555-0199,nora@example.org,en,north,yes,yes\n"


@dataclass
class Clinics:
    web: Web
    cova_notice: int
    cova_delivery: int
    north_notice: int
    token: str  # north's, send scope, may see patients
    console: httpx.Client  # north's manager, signed in
    cova_conversation: int  # Maria's text to cova


@pytest.fixture
def clinics(web: Web) -> Iterator[Clinics]:
    app = web.app
    app.locations.save(OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00")
    app.patients.import_patients(OPERATOR, io.StringIO(NORTH_PATIENTS))
    cova_notice = broadcast_sms(app, FakeChannel())
    cova_delivery = app.deliveries.log(OPERATOR, cova_notice)[0].id
    app.replies.set_auto_reply(OPERATOR, "cova", False)
    conversation = app.replies.receive(
        "sms", "+15405550111", "+15005550006", "are you open?", new_message_sid()
    )
    assert conversation is not None
    north_notice = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="north",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms",),
        ),
    ).id
    app.accounts.create_user(NORTH_MANAGER, "manager", PASSWORD, ["north"])
    token = app.accounts.create_token("north desk", True, ["north"], "send")
    console = sign_in(web, NORTH_MANAGER)
    try:
        yield Clinics(web, cova_notice, cova_delivery, north_notice, token, console, conversation)
    finally:
        console.close()


def cova_untouched(c: Clinics) -> None:
    app = c.web.app
    view = app.notices.get(OPERATOR, c.cova_notice)
    assert view.status == "active" and view.version == 1 and view.approved_by is None
    assert len(app.notices.all(OPERATOR, "cova")) == 1
    talk = app.replies.conversation(OPERATOR, c.cova_conversation)
    assert not talk.done and talk.assigned_to is None and talk.unread == 1
    assert [m.author for m in talk.messages] == ["patient"]  # nobody answered
    assert [p.auto_reply for p in app.replies.locations(OPERATOR) if p.slug == "cova"] == [False]
    assert [loc.public_feeds for loc in app.locations.all(OPERATOR) if loc.slug == "cova"] == [True]


def test_the_users_and_tokens_actor_has_its_locations_only(clinics: Clinics) -> None:
    app = clinics.web.app
    actor = app.accounts.actor_for_email(NORTH_MANAGER)
    assert actor.kind is ActorKind.USER and actor.role is Role.MANAGER
    assert actor.locations is not None and len(actor.locations) == 1
    [north] = actor.locations
    assert not actor.sees(north + 1) and not actor.every_location
    with pytest.raises(NotFoundError):
        app.accounts.actor_for_email("nobody@clinics.example")
    token = app.accounts.token_actor(clinics.token)
    assert token is not None and token.locations == frozenset({north})
    assert token.kind is ActorKind.TOKEN and token.role is Role.MANAGER
    listed = {u.email: u.locations for u in app.accounts.users()}
    assert listed[NORTH_MANAGER] == "north"


CONSOLE_GETS = [
    "/console/notices/{notice}",
    "/console/notices/{notice}/summary",
    "/console/notices/{notice}/deliveries.csv",
    "/console/notices/{notice}/not-reached",
    "/console/notices/{notice}/not-reached.csv",
    "/console/deliveries/{delivery}",
    "/console/inbox/{conversation}",
    "/console/inbox?location=cova",
    "/console/locations/cova",
    "/console/notices?location=cova",
    "/console/patients?location=cova",
    "/console/audit",
]
CONSOLE_POSTS = [
    ("/console/notices/{notice}/cancel", {}),
    ("/console/notices/{notice}/send", {"send_mode": "now"}),
    ("/console/notices/{notice}/retry", {}),
    ("/console/notices/{notice}/approve", {}),
    ("/console/inbox/{conversation}/answer", {"message": "We open at 8."}),
    ("/console/inbox/{conversation}/assign", {"email": NORTH_MANAGER}),
    ("/console/inbox/{conversation}/done", {"done": "yes"}),
    ("/console/inbox/auto-reply", {"location": "cova", "on": "on"}),
    ("/console/locations/cova/feeds", {"on": "off"}),
    ("/console/notices/{notice}/update", {"reason": "gone", "starts": "", "ends": ""}),
    (
        "/console/locations",
        {
            "slug": "cova",
            "name": "Taken",
            "timezone": "America/New_York",
            "hours": "Mon-Fri 08:00-17:00",
        },
    ),
]


def test_every_console_page_of_another_clinic_is_not_found(clinics: Clinics) -> None:
    ids = {
        "notice": clinics.cova_notice,
        "delivery": clinics.cova_delivery,
        "conversation": clinics.cova_conversation,
    }
    for path in CONSOLE_GETS:
        answer = clinics.console.get(path.format(**ids))
        assert answer.status_code == 404, path
    csrf = csrf_of(clinics.console.get("/console/notices"))
    for path, form in CONSOLE_POSTS:
        answer = clinics.console.post(path.format(**ids), data=form | {"csrf": csrf})
        assert answer.status_code == 404, (path, answer.status_code)
    cova_untouched(clinics)


def test_the_console_lists_only_the_users_locations(clinics: Clinics) -> None:
    notices = clinics.console.get("/console/notices").text
    assert f"/console/notices/{clinics.north_notice}" in notices
    assert f"/console/notices/{clinics.cova_notice}" not in notices
    patients = clinics.console.get("/console/patients").text
    # External ids as the table's cells hold them (a CSRF token may contain "p1" by chance).
    ids = re.findall(r'<td class="mono">([a-z]+\d+)</td>', patients)
    assert "n1" in ids and "p1" not in ids and "Maria" not in patients
    inbox = clinics.console.get("/console/inbox").text
    assert f"/console/inbox/{clinics.cova_conversation}" not in inbox
    locations = clinics.console.get("/console/locations").text
    assert "North Clinic" in locations and "COVA" not in locations
    # A new notice for cova: the location does not exist for this user.
    csrf = csrf_of(clinics.console.get("/console/notices/new"))
    form = {
        "csrf": csrf,
        "location": "cova",
        "starts": "2025-02-19T12:30",
        "ends": "2025-02-21T00:00",
        "reason": "ice",
        "channels": "sms",
        "send_mode": "now",
    }
    answer = clinics.console.post("/console/notices", data=form)
    assert answer.status_code == 422 and "no location &#39;cova&#39;" in answer.text
    cova_untouched(clinics)


API_CALLS = [
    ("GET", "/api/v1/notices/{notice}", None),
    ("GET", "/api/v1/notices/{notice}/summary", None),
    ("GET", "/api/v1/notices/{notice}/preview", None),
    ("GET", "/api/v1/notices/{notice}/not-reached", None),
    ("GET", "/api/v1/notices/{notice}/plan", None),
    ("GET", "/api/v1/notices/{notice}/history", None),
    ("GET", "/api/v1/deliveries/{delivery}", None),
    ("GET", "/api/v1/conversations?location=cova", None),
    ("GET", "/api/v1/deliveries?notice={notice}", None),
    ("GET", "/api/v1/notices?location=cova", None),
    ("GET", "/api/v1/audit", None),
    ("POST", "/api/v1/notices/{notice}/cancel", None),
    ("POST", "/api/v1/notices/{notice}/send", {"send_at": "now"}),
    ("POST", "/api/v1/notices/{notice}/retry", None),
    ("POST", "/api/v1/notices/{notice}/approve", None),
    ("POST", "/api/v1/conversations/{conversation}/messages", {"message": "We open at 8."}),
    (
        "POST",
        "/api/v1/notices",
        {
            "location": "cova",
            "starts": "2025-02-19 12:30",
            "ends": "2025-02-21 00:00",
            "reason": "x",
        },
    ),
    (
        "POST",
        "/api/v1/notices/preview",
        {
            "location": "cova",
            "starts": "2025-02-19 12:30",
            "ends": "2025-02-21 00:00",
            "reason": "x",
        },
    ),
    ("POST", "/api/v1/opt-outs/remove", {"channel": "sms", "address": "540-555-0111"}),
    ("PUT", "/api/v1/locations/cova", {"name": "Taken", "timezone": "America/New_York"}),
]


def test_every_api_route_with_another_clinics_ids_is_not_found(clinics: Clinics) -> None:
    web = clinics.web
    web.app.consent.opt_out("sms", "+15405550111", Source.API)
    bearer = {"Authorization": f"Bearer {clinics.token}"}
    for method, path, body in API_CALLS:
        url = path.format(
            notice=clinics.cova_notice,
            conversation=clinics.cova_conversation,
            delivery=clinics.cova_delivery,
        )
        answer = web.client.request(method, url, json=body, headers=bearer)
        assert answer.status_code == 404, (method, url, answer.status_code, answer.text)
    assert web.app.consent.is_opted_out("sms", "+15405550111")  # not lifted
    lists = {
        "/api/v1/notices": [
            n["id"] for n in web.client.get("/api/v1/notices", headers=bearer).json()
        ],
        "/api/v1/locations": [
            loc["slug"] for loc in web.client.get("/api/v1/locations", headers=bearer).json()
        ],
    }
    assert lists == {"/api/v1/notices": [clinics.north_notice], "/api/v1/locations": ["north"]}
    log = web.client.get("/api/v1/deliveries", headers=bearer).json()
    assert log == []  # cova's messages are not in north's log
    assert web.client.get("/api/v1/conversations", headers=bearer).json() == []
    imported = web.client.post(
        "/api/v1/patients/import",
        content=f"{HEADER}\np1,Evil,Twin,540-555-0100,,en,cova,yes,no\n",
        headers=bearer | {"Content-Type": "text/csv"},
    )
    assert imported.status_code == 422 and imported.json()["imported"] == 0
    assert web.app.patients.page(OPERATOR, "cova")[0][0].name == "Maria Lopez"
    cova_untouched(clinics)


def test_a_read_token_may_read_its_locations_but_change_nothing(clinics: Clinics) -> None:
    web = clinics.web
    reader = web.app.accounts.create_token("north wall", False, ["north"], "read")
    bearer = {"Authorization": f"Bearer {reader}"}
    assert web.client.get(f"/api/v1/notices/{clinics.north_notice}", headers=bearer).is_success
    cancel = web.client.post(f"/api/v1/notices/{clinics.north_notice}/cancel", headers=bearer)
    assert cancel.status_code == 403
    assert web.app.notices.get(OPERATOR, clinics.north_notice).status == "active"


def cli(web: Web, *args: str) -> Result:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    env = {
        "NOTIFIER_DATABASE_URL": web.app.settings.database_url,
        "NOTIFIER_NOW": NOW,
        "NOTIFIER_SECRET_KEY": SECRET,
    }
    try:
        return CliRunner().invoke(main, list(args), env=env)
    finally:
        root.handlers[:], root.level = handlers, level


CLI_COMMANDS = [
    ["notice", "cancel", "{notice}"],
    ["notice", "send", "{notice}", "--send-at", "now"],
    ["notice", "retry", "{notice}"],
    ["notice", "update", "{notice}", "--reason", "gone"],
    ["notice", "preview", "{notice}"],
    ["notice", "affected", "{notice}"],
    ["notice", "not-reached", "{notice}"],
    ["notice", "watch", "{notice}"],
    ["notice", "plan", "{notice}"],
    ["notice", "approve", "{notice}"],
    ["notice", "history", "{notice}"],
    ["notice", "list", "--location", "cova"],
    ["notice", "create", "--location", "cova", "--starts", "2025-02-19 12:30", "--ends",
     "2025-02-21 00:00", "--reason", "x"],
    ["deliveries", "--notice", "{notice}"],
    ["deliveries", "retry", "--notice", "{notice}"],
    ["deliveries", "show", "{delivery}"],
    ["location", "add", "--slug", "cova", "--name", "Taken", "--timezone", "America/New_York"],
    ["location", "feeds", "cova", "off"],
    ["replies", "list", "--location", "cova"],
    ["replies", "answer", "{conversation}", "--message", "We open at 8."],
    ["replies", "done", "{conversation}"],
    ["replies", "assign", "{conversation}", NORTH_MANAGER],
    ["replies", "auto-reply", "cova", "on"],
    ["patients", "forget", "p1"],
    ["audit"],
]  # fmt: skip


def test_every_cli_command_as_another_clinics_manager_is_not_found(clinics: Clinics) -> None:
    web = clinics.web
    for command in CLI_COMMANDS:
        ids = {
            "notice": clinics.cova_notice,
            "conversation": clinics.cova_conversation,
            "delivery": clinics.cova_delivery,
        }
        args = [part.format(**ids) for part in command]
        result = cli(web, *args, "--as", NORTH_MANAGER)
        assert result.exit_code != 0, (args, result.output)
        assert "error: no " in result.output, (args, result.output)
    listed = cli(web, "notice", "list", "--json", "--as", NORTH_MANAGER)
    assert listed.exit_code == 0 and f'"id": {clinics.cova_notice}' not in listed.output
    log = cli(web, "deliveries", "--format", "json", "--as", NORTH_MANAGER)
    assert log.exit_code == 0 and log.output.strip() == "[]"
    locations = cli(web, "location", "list", "--as", NORTH_MANAGER)
    assert locations.output.startswith("north") and "cova" not in locations.output
    replies = cli(web, "replies", "list", "--json", "--as", NORTH_MANAGER)
    assert replies.exit_code == 0 and replies.output.strip() == "[]", replies.output
    cova_untouched(clinics)
    assert web.app.patients.page(OPERATOR, "cova")[0][0].name == "Maria Lopez"
    # Without --as the command line is the operator: it sees cova.
    assert cli(web, "notice", "preview", str(clinics.cova_notice)).exit_code == 0


def test_use_cases_refuse_outside_the_actors_locations(clinics: Clinics) -> None:
    app = clinics.web.app
    north = app.accounts.actor_for_email(NORTH_MANAGER)
    for attempt in (
        lambda: app.notices.get(north, clinics.cova_notice),
        lambda: app.notices.cancel(north, clinics.cova_notice),
        lambda: app.deliveries.history(north, clinics.cova_delivery),
        lambda: app.deliveries.summary(north, clinics.cova_notice),
        lambda: app.previews.of_notice(north, clinics.cova_notice),
        lambda: app.consent.opt_in(north, "sms", "+15405550111", Source.API),
    ):
        with pytest.raises(NotFoundError):
            attempt()
    assert app.deliveries.retry_failed(north) == 0
    assert [p.external_id for p in app.patients.page(north)[0]] == ["n1"]
    viewer = app.accounts.actor_for_email(_viewer(app))
    with pytest.raises(ForbiddenError):
        app.notices.cancel(viewer, clinics.north_notice)


def _viewer(app: App) -> str:
    email = "north.viewer@clinics.example"
    app.accounts.create_user(email, "viewer", PASSWORD, ["north"])
    return email


def test_lifting_an_opt_out_names_the_actor_and_needs_a_patient_of_theirs(
    clinics: Clinics,
) -> None:
    app = clinics.web.app
    north = app.accounts.actor_for_email(NORTH_MANAGER)
    assert app.consent.opt_out("sms", "+15405550199", Source.KEYWORD)  # Nora, of north
    assert app.consent.opt_out("sms", "+15405550111", Source.KEYWORD)  # Maria, of cova
    with pytest.raises(NotFoundError):
        app.consent.opt_in(north, "sms", "+15405550111", Source.API)
    assert app.consent.opt_in(north, "sms", "+15405550199", Source.API)
    with app.db.engine.connect() as connection:
        detail = connection.execute(
            text(
                "SELECT detail FROM consent_events WHERE address = '+15405550199' "
                "AND new = 'opted_in' ORDER BY id DESC"
            )
        ).scalar()
    assert detail == f"lifted by user:{north.id}"
    assert app.consent.is_opted_out("sms", "+15405550111")


# --- Patients' names and addresses: only for those who see patients ------------------------

COVA_VIEWER, COVA_MANAGER = "cova.viewer@clinics.example", "cova.manager@clinics.example"
APPOINTMENTS = (
    "external_id,patient_external_id,location,starts_at,duration_minutes,provider,status\n"
    "a1,p1,cova,2025-02-19 14:00,30,Dr. Patel,scheduled\n"
)
REFUSED = "viewers may not see patients' names or addresses"


@dataclass
class Desk:
    """Cova's own staff: a viewer and a manager of cova, and an appointment in the closure."""

    clinics: Clinics
    viewer: httpx.Client
    manager: httpx.Client


@pytest.fixture
def desk(clinics: Clinics) -> Iterator[Desk]:
    app = clinics.web.app
    app.accounts.create_user(COVA_VIEWER, "viewer", PASSWORD, ["cova"])
    app.accounts.create_user(COVA_MANAGER, "manager", PASSWORD, ["cova"])
    assert app.patients.import_appointments(OPERATOR, io.StringIO(APPOINTMENTS)).imported == 1
    viewer, manager = sign_in(clinics.web, COVA_VIEWER), sign_in(clinics.web, COVA_MANAGER)
    try:
        yield Desk(clinics, viewer, manager)
    finally:
        viewer.close()
        manager.close()


def test_who_sees_patients_is_one_property_of_the_actor(desk: Desk) -> None:
    app = desk.clinics.web.app
    blind = app.accounts.create_token("cova wall", False, ["cova"], "send")
    reader = app.accounts.create_token("cova reader", True, ["cova"], "read")
    own = app.accounts.create_token("own desk", True, scope="read", user=COVA_MANAGER)
    own_plain = app.accounts.create_token("own plain", user=COVA_MANAGER)
    actors = {
        "operator": OPERATOR,
        "manager": app.accounts.actor_for_email(COVA_MANAGER),
        "viewer": app.accounts.actor_for_email(COVA_VIEWER),
        "token --sees-patients": app.accounts.token_actor(desk.clinics.token),
        "read token --sees-patients": app.accounts.token_actor(reader),
        "send token without": app.accounts.token_actor(blind),
        "manager's read token --sees-patients": app.accounts.token_actor(own),
        "manager's token without": app.accounts.token_actor(own_plain),
    }
    seen = {name: actor is not None and actor.sees_patients for name, actor in actors.items()}
    assert seen == {
        "operator": True,
        "manager": True,
        "viewer": False,
        "token --sees-patients": True,
        "read token --sees-patients": True,
        "send token without": False,
        "manager's read token --sees-patients": True,
        "manager's token without": False,
    }


def test_the_use_cases_refuse_a_viewer_patients_data_and_audit_nothing(desk: Desk) -> None:
    app, notice = desk.clinics.web.app, desk.clinics.cova_notice
    viewer = app.accounts.actor_for_email(COVA_VIEWER)
    manager = app.accounts.actor_for_email(COVA_MANAGER)
    reads = {
        "patients": lambda actor: app.patients.page(actor)[0],
        "not reached": lambda actor: app.deliveries.not_reached(actor, notice),
        "affected": lambda actor: app.notices.affected(actor, notice),
        "log with patients": lambda actor: app.deliveries.log(actor, notice, show_patients=True),
    }
    for name, read in reads.items():
        with pytest.raises(ForbiddenError, match=REFUSED):
            read(viewer)
        assert read(manager), name  # the manager of the same location reads them
    trail = app.audit.events(OPERATOR)
    assert [e.action for e in trail if e.actor == viewer.label] == ["signin"]  # no read
    assert [e.action for e in trail if e.actor == manager.label] == [
        "signin",
        "patients_list",
        "not_reached_export",
        "affected_export",
        "delivery_log_export",
    ]
    # What a viewer does read: notices, the log with masked addresses, the counts.
    log = app.deliveries.log(viewer, notice)
    assert log and all(row.patient_name is None and "555" not in row.address for row in log)
    assert app.deliveries.summary(viewer, notice)["sms"]
    assert app.notices.get(viewer, notice).id == notice
    # Another clinic's notice is still "not found" for a viewer, not "forbidden".
    north_viewer = app.accounts.actor_for_email(_viewer(app))
    with pytest.raises(NotFoundError):
        app.deliveries.not_reached(north_viewer, notice)


CONSOLE_PATIENT_PAGES = [
    "/console/patients",
    "/console/patients?location=cova",
    "/console/notices/{notice}/not-reached",
    "/console/notices/{notice}/not-reached.csv",
]


def test_the_console_refuses_a_viewer_patients_data(desk: Desk) -> None:
    notice = desk.clinics.cova_notice
    for path in CONSOLE_PATIENT_PAGES:
        url = path.format(notice=notice)
        refused = desk.viewer.get(url)
        assert refused.status_code == 403 and REFUSED in refused.json()["detail"], url
        allowed = desk.manager.get(url)
        assert allowed.status_code == 200 and "Ruiz" in allowed.text, url  # Ana: not reached
    # The delivery log with patients: the manager's notice page names them, the viewer's does
    # not, and neither the viewer's page nor the CSV export shows a name or a whole number.
    assert "Maria Lopez" in desk.manager.get(f"/console/notices/{notice}").text
    for url in (f"/console/notices/{notice}", f"/console/notices/{notice}/deliveries.csv"):
        seen = desk.viewer.get(url)
        assert seen.status_code == 200, url
        assert "Lopez" not in seen.text and "5405550111" not in seen.text, url
        assert "******0111" in seen.text, url  # masked, as every export
    assert 'href="/console/patients"' not in desk.viewer.get("/console/notices").text
    assert 'href="/console/patients"' in desk.manager.get("/console/notices").text


CLI_PATIENT_COMMANDS = {
    ("notice", "not-reached", "{notice}"): "Ruiz",
    ("notice", "affected", "{notice}"): "Lopez",
    ("notice", "affected", "{notice}", "--format", "csv"): "Lopez",
    ("deliveries", "--show-patients"): "Lopez",
    ("deliveries", "--notice", "{notice}", "--show-patients", "--format", "csv"): "Lopez",
}


def test_the_cli_refuses_a_viewer_patients_data(desk: Desk) -> None:
    web, notice = desk.clinics.web, str(desk.clinics.cova_notice)
    for command, name in CLI_PATIENT_COMMANDS.items():
        args = [part.format(notice=notice) for part in command]
        refused = cli(web, *args, "--as", COVA_VIEWER)
        assert refused.exit_code == 1, (args, refused.output)
        assert f"error: {REFUSED}" in refused.output and name not in refused.output, args
        allowed = cli(web, *args, "--as", COVA_MANAGER)
        assert allowed.exit_code == 0 and name in allowed.output, (args, allowed.output)
    log = cli(web, "deliveries", "--notice", notice, "--format", "csv", "--as", COVA_VIEWER)
    assert log.exit_code == 0 and "******0111" in log.output and "Lopez" not in log.output


API_PATIENT_ROUTES = [
    "/api/v1/notices/{notice}/not-reached",
    "/api/v1/deliveries?notice={notice}&show_patients=true",
    "/api/v1/deliveries?show_patients=true",
    "/api/v1/conversations",
]


@pytest.mark.parametrize("scope", ["read", "send"])
def test_the_api_refuses_patients_data_to_a_token_without_the_right(desk: Desk, scope: str) -> None:
    web, notice = desk.clinics.web, desk.clinics.cova_notice
    blind = web.app.accounts.create_token("cova wall", False, ["cova"], scope)
    trusted = web.app.accounts.create_token("cova desk", True, ["cova"], scope)
    for path in API_PATIENT_ROUTES:
        url = path.format(notice=notice)
        refused = web.client.get(url, headers={"Authorization": f"Bearer {blind}"})
        assert refused.status_code == 403, (url, refused.text)
        assert "--sees-patients" in refused.json()["detail"] and "Lopez" not in refused.text
        allowed = web.client.get(url, headers={"Authorization": f"Bearer {trusted}"})
        assert allowed.status_code == 200 and allowed.json(), (url, allowed.text)
    masked = web.client.get(
        f"/api/v1/deliveries?notice={notice}", headers={"Authorization": f"Bearer {blind}"}
    )
    assert masked.status_code == 200 and masked.json()
    assert all(row["patient_name"] is None for row in masked.json())
