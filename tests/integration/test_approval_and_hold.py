"""Two people before a mass send, and an undo window before the first provider request: the
threshold, no self-approval, an edit voids the approval, the emergency path is recorded, a late
approval waits out the hold, and a cancel in the hold sends nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.domain.actors import Actor
from notifier.errors import ForbiddenError, ValidationError
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.peers import NEW_YORK, peer_settings
from tests.support.web import PASSWORD as WEB_PASSWORD
from tests.support.web import add_cova, csrf_of, served, sign_in

PASSWORD = "correct horse battery"
REFERENCE = NoticeRequest(
    location="cova",
    starts="2025-02-19 12:30",
    ends="2025-02-21 00:00",
    reason="inclement weather",
)
SIX_PM = datetime(2025, 2, 18, 18, 0, tzinfo=NEW_YORK)


def gated_app(
    database_url: str, twilio: FakeTwilio, smtp: FakeSmtp, clock: FrozenClock, **settings: object
) -> App:
    values = {"approval_threshold": 2, "send_hold_seconds": 0.0} | settings
    app = build_app(peer_settings(database_url, twilio, smtp, **values), clock=clock)
    add_cova(app)  # five patients: four get a message (Maria, the Smiths, Ana by email)
    for email, role in (("ana@clinic.example", "manager"), ("ben@clinic.example", "manager")):
        app.accounts.create_user(email, role, PASSWORD)
    app.accounts.create_user("vic@clinic.example", "viewer", PASSWORD)
    return app


@pytest.fixture
def app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = gated_app(database_url, fake_twilio, fake_smtp, clock)
    yield built
    built.close()


def who(app: App, email: str) -> Actor:
    return app.accounts.actor_for_email(email)


def test_above_the_threshold_nothing_goes_until_another_manager_approves(app: App) -> None:
    ana, ben = who(app, "ana@clinic.example"), who(app, "ben@clinic.example")
    created = app.notices.create(ana, REFERENCE)
    view = created.notice
    assert view.needs_approval and view.state.startswith("awaiting approval")
    assert "approve" in view.actions
    assert app.fanout.fire_due() == 0 and app.deliveries.log(OPERATOR, view.id) == []

    with pytest.raises(ValidationError, match="another manager must approve"):
        app.notices.approve(ana, view.id)
    with pytest.raises(ForbiddenError, match="approval needs a person"):
        app.notices.approve(Actor.operator(), view.id)
    with pytest.raises(ForbiddenError, match="approval needs a manager"):
        app.notices.approve(who(app, "vic@clinic.example"), view.id)
    assert app.fanout.fire_due() == 0

    approved = app.notices.approve(ben, view.id)
    assert approved.approved_by == "user:ben@clinic.example"
    assert app.fanout.fire_due() == 1
    assert app.deliveries.log(OPERATOR, view.id)
    with pytest.raises(ValidationError, match="does not await approval"):
        app.notices.approve(ben, view.id)
    history = [(e.action, e.by) for e in app.notices.history(OPERATOR, view.id)]
    assert history == [
        ("created", "user:ana@clinic.example"),
        ("approved", "user:ben@clinic.example"),
    ]


def test_at_or_under_the_threshold_it_is_scheduled_at_once(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    app = gated_app(database_url, fake_twilio, fake_smtp, clock, approval_threshold=4)
    try:
        view = app.notices.create(OPERATOR, REFERENCE).notice  # four patients: not above four
        assert not view.needs_approval and view.broadcasts[0].status == "scheduled"
        assert app.fanout.fire_due() == 1
    finally:
        app.close()


def test_threshold_zero_gates_every_broadcast(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    app = gated_app(database_url, fake_twilio, fake_smtp, clock, approval_threshold=0)
    try:
        view = app.notices.create(OPERATOR, replace(REFERENCE, channels=("email",))).notice
        assert view.broadcasts[0].status == "awaiting_approval"
    finally:
        app.close()


def test_an_edit_voids_the_approval(app: App) -> None:
    ana, ben = who(app, "ana@clinic.example"), who(app, "ben@clinic.example")
    view = app.notices.create(ana, replace(REFERENCE, send_at="2025-02-19 07:00")).notice
    app.notices.approve(ben, view.id)
    edited = app.notices.update(ana, view.id, reason="a snow storm")
    assert edited.id != view.id and edited.created_by == "user:ana@clinic.example"
    assert edited.needs_approval and edited.approved_by is None
    assert edited.broadcasts[0].status == "awaiting_approval"
    assert app.notices.get(OPERATOR, view.id).broadcasts[0].status == "cancelled"
    with pytest.raises(ValidationError, match="another manager"):
        app.notices.approve(ana, edited.id)
    assert app.notices.approve(ben, edited.id).approved_by == "user:ben@clinic.example"


def test_an_emergency_send_goes_alone_recorded_and_flagged(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    ana = who(app, "ana@clinic.example")
    with pytest.raises(ValidationError, match="needs a reason"):
        app.notices.create(ana, replace(REFERENCE, emergency_reason="  "))
    with pytest.raises(ForbiddenError, match="managers only"):  # a viewer: refused as any change
        app.notices.create(
            who(app, "vic@clinic.example"), replace(REFERENCE, emergency_reason="fire")
        )
    with caplog.at_level(logging.WARNING, logger="notifier"):
        view = app.notices.create(
            ana, replace(REFERENCE, emergency_reason="the building is flooding")
        ).notice
    assert not view.needs_approval and view.emergency_reason == "the building is flooding"
    flagged = [r for r in caplog.records if getattr(r, "action", None) == "notice_emergency"]
    assert len(flagged) == 1 and flagged[0].levelno == logging.WARNING
    assert app.fanout.fire_due() == 1
    actions = [(e.action, e.by, e.detail) for e in app.notices.history(OPERATOR, view.id)]
    assert (
        "emergency send (no second manager)",
        "user:ana@clinic.example",
        "the building is flooding",
    ) in actions


def test_a_late_approval_sends_after_the_hold_and_never_after_the_closure(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    app = gated_app(database_url, fake_twilio, fake_smtp, clock, send_hold_seconds=60.0)
    try:
        ana, ben = who(app, "ana@clinic.example"), who(app, "ben@clinic.example")
        view = app.notices.create(ana, replace(REFERENCE, send_at="2025-02-18 19:00")).notice
        late = datetime(2025, 2, 18, 21, 0, tzinfo=NEW_YORK)
        clock.set(late)
        approved = app.notices.approve(ben, view.id)
        assert approved.broadcasts[0].send_at == late.isoformat()
        assert approved.hold_seconds_left == 60
        clock.set(late + timedelta(seconds=59))
        assert app.fanout.fire_due() == 0
        clock.set(late + timedelta(seconds=60))
        assert app.fanout.fire_due() == 1

        other = app.notices.create(ana, replace(REFERENCE, reason="ice")).notice
        clock.set(datetime(2025, 2, 21, 0, 0, tzinfo=NEW_YORK))
        with pytest.raises(ValidationError, match="closure ended"):
            app.notices.approve(ben, other.id)
    finally:
        app.close()


def test_a_cancel_in_the_undo_window_sends_nothing(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    app = gated_app(
        database_url,
        fake_twilio,
        fake_smtp,
        clock,
        send_hold_seconds=60.0,
        approval_threshold=1000,
    )
    try:
        kept = app.notices.create(OPERATOR, replace(REFERENCE, reason="ice")).notice
        view = app.notices.create(OPERATOR, REFERENCE).notice
        clock.set(SIX_PM + timedelta(seconds=20))
        listed = app.notices.get(OPERATOR, view.id)
        assert listed.hold_seconds_left == 40
        assert listed.held_until == (SIX_PM + timedelta(seconds=60)).isoformat()
        assert app.fanout.fire_due() == 0
        cancelled = app.notices.cancel(who(app, "ben@clinic.example"), view.id)
        assert cancelled.cancelled_by == "user:ben@clinic.example"
        clock.set(SIX_PM + timedelta(seconds=61))
        assert app.fanout.fire_due() == 1  # the other notice, its window over
        app.dispatcher().drain()
        assert app.deliveries.log(OPERATOR, view.id) == []
        assert fake_twilio.received_creates()  # the kept notice went out
        assert all(
            d.state == "sent" for d in app.deliveries.log(OPERATOR, kept.id) if d.state != "skipped"
        )
        history = [(e.action, e.by) for e in app.notices.history(OPERATOR, view.id)]
        assert ("cancelled", "user:ben@clinic.example") in history
    finally:
        app.close()


def test_the_console_and_the_api_show_the_plan_approve_and_history(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with served(
        database_url,
        fake_twilio,
        fake_smtp,
        clock,
        approval_threshold=2,
        send_hold_seconds=60.0,
    ) as web:
        add_cova(web.app)
        for role in ("ana", "ben"):
            web.app.accounts.create_user(f"{role}@cova.example", "manager", WEB_PASSWORD)
        token = web.app.accounts.create_token("clinic website")
        api = {"Authorization": f"Bearer {token}"}
        body = {
            "location": "cova",
            "starts": "2025-02-19 12:30",
            "ends": "2025-02-21 00:00",
            "reason": "inclement weather",
        }
        created = web.client.post("/api/v1/notices", json=body, headers=api)
        assert created.status_code == 201, created.text
        notice = created.json()
        assert notice["broadcasts"][0]["status"] == "awaiting_approval"
        assert notice["created_by"] == "token:clinic website"
        plan = web.client.get(f"/api/v1/notices/{notice['id']}/plan", headers=api).json()
        assert {c["channel"]: c["send"] for c in plan["channels"]} == {"sms": 2, "email": 3}
        assert plan["needs_approval"] and plan["patients"] == 4

        ana = sign_in(web, "ana@cova.example")
        try:
            page = ana.get(f"/console/notices/{notice['id']}")
            assert 'id="plan"' in page.text and 'id="approve-button"' in page.text
            approved = ana.post(
                f"/console/notices/{notice['id']}/approve", data={"csrf": csrf_of(page)}
            )
            assert approved.status_code == 303, approved.text
            page = ana.get(f"/console/notices/{notice['id']}")
            assert 'id="hold-countdown" data-seconds="60"' in page.text
            who = page.text[page.text.index('id="history-heading"') :]
            assert "created by token:clinic website" in who
            assert "approved by user:ana@cova.example" in who
            assert "sends in 60 s" in ana.get("/console/notices").text
        finally:
            ana.close()
        assert web.app.notices.get(OPERATOR, notice["id"]).approved_by == "user:ana@cova.example"
        history = web.client.get(f"/api/v1/notices/{notice['id']}/history", headers=api).json()
        assert [(e["action"], e["by"]) for e in history] == [
            ("created", "token:clinic website"),
            ("approved", "user:ana@cova.example"),
        ]
        ben = web.app.accounts.create_token("ben laptop", user="ben@cova.example")
        again = web.client.post(
            f"/api/v1/notices/{notice['id']}/approve", headers={"Authorization": f"Bearer {ben}"}
        )
        assert again.status_code == 422 and "does not await approval" in again.text


def test_the_api_approves_only_as_the_person_whose_personal_token_calls(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    """The hole this closes: any token named any manager in the body and approved as them."""
    with served(
        database_url, fake_twilio, fake_smtp, clock, approval_threshold=2, send_hold_seconds=0.0
    ) as web:
        app = web.app
        add_cova(app)
        app.locations.save(
            OPERATOR,
            "covb",
            "COVA North",
            "America/New_York",
            "Mon-Fri 08:00-17:00",
            "540-555-0199",
        )
        for email, locations in (
            ("ana@cova.example", ["cova"]),
            ("ben@cova.example", ["cova"]),
            ("dan@cova.example", ["cova"]),
            ("otto@covb.example", ["covb"]),
        ):
            app.accounts.create_user(email, "manager", WEB_PASSWORD, locations)
        tokens = {
            "service send": app.accounts.create_token("website"),
            "service read": app.accounts.create_token("board", scope="read"),
            "ana send": app.accounts.create_token("ana laptop", user="ana@cova.example"),
            "ben read": app.accounts.create_token("ben ro", scope="read", user="ben@cova.example"),
            "ben send": app.accounts.create_token("ben laptop", user="ben@cova.example"),
            "dan send": app.accounts.create_token("dan laptop", user="dan@cova.example"),
            "otto send": app.accounts.create_token("otto laptop", user="otto@covb.example"),
        }
        ids = {t.name: t.id for t in app.accounts.tokens()}

        def call(who: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return web.client.post(f"/api/v1/notices{path}", headers=headers, **kwargs)

        body = {
            "location": "cova",
            "starts": "2025-02-19 12:30",
            "ends": "2025-02-21 00:00",
            "reason": "inclement weather",
        }
        created = call("ana send", "", json=body)
        assert created.status_code == 201, created.text
        notice = created.json()
        assert notice["created_by"] == f"user:ana@cova.example via token:{ids['ana laptop']}"
        assert notice["broadcasts"][0]["status"] == "awaiting_approval"
        approve = f"/{notice['id']}/approve"

        for service in ("service send", "service read"):
            refused = call(service, approve)
            assert refused.status_code == 403, refused.text
            assert "approval needs a person: a personal token" in refused.json()["detail"]
            assert "--user EMAIL" in refused.json()["detail"]
        refused = call("ben read", approve)
        assert refused.status_code == 403 and "needs a manager" in refused.text
        refused = call("ana send", approve)
        assert refused.status_code == 422 and "another manager must approve" in refused.text
        assert call("otto send", approve).status_code == 404  # not confirmed to another clinic
        app.accounts.disable_user("dan@cova.example")
        assert call("dan send", approve).status_code == 401
        # The old way, naming a manager in the body, is refused whoever calls.
        named = call("ben send", approve, json={"approver": "ben@cova.example"})
        assert named.status_code == 422 and "`approver` was removed" in named.text
        assert "--user EMAIL" in named.text
        assert app.notices.get(OPERATOR, notice["id"]).approved_by is None
        assert app.fanout.fire_due() == 0
        refusals = [
            (e.actor, e.via)
            for e in app.audit.events(OPERATOR)
            if (e.action, e.outcome) == ("notice_approve", "refused")
        ]
        ana_id = app.accounts.actor_for_email("ana@cova.example").id
        ben_id = app.accounts.actor_for_email("ben@cova.example").id
        assert refusals == [
            (f"token:{ids['website']}", None),
            (f"token:{ids['board']}", None),
            (f"user:{ben_id}", f"token:{ids['ben ro']}"),
            (f"user:{ana_id}", f"token:{ids['ana laptop']}"),
        ]

        approved = call("ben send", approve)
        assert approved.status_code == 200, approved.text
        by_ben = f"user:ben@cova.example via token:{ids['ben laptop']}"
        assert approved.json()["approved_by"] == by_ben
        assert approved.json()["broadcasts"][0]["status"] == "scheduled"
        history = web.client.get(
            f"/api/v1/notices/{notice['id']}/history",
            headers={"Authorization": f"Bearer {tokens['ben read']}"},
        )
        assert [(e["action"], e["by"]) for e in history.json()] == [
            ("created", f"user:ana@cova.example via token:{ids['ana laptop']}"),
            ("approved", by_ben),
        ]
        rows = [
            (e.actor, e.via, e.action, e.target)
            for e in app.audit.events(OPERATOR, of=f"token:{ids['ben laptop']}")
        ]
        assert rows == [
            (
                f"user:{ben_id}",
                f"token:{ids['ben laptop']}",
                "notice_approve",
                f"notice:{notice['id']}",
            )
        ]
        assert ("notice_approve", f"token:{ids['ben laptop']}") in [
            (e.action, e.via) for e in app.audit.events(OPERATOR, of=f"user:{ben_id}")
        ]
        assert app.fanout.fire_due() == 1
