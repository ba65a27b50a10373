"""Personal API tokens (``notifier token create --user EMAIL``): a token that acts as its
console user, within the user's role and locations narrowed by the token's, that a read scope
keeps from writing and that stops working the moment the user is disabled. On SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest

from notifier.domain.actors import ActorKind, Role
from notifier.errors import NotFoundError, ValidationError
from tests.support.actors import OPERATOR
from tests.support.web import PASSWORD, Web, sign_in

NOTICE = {
    "location": "cova",
    "starts": "2025-02-19 12:30",
    "ends": "2025-02-21 00:00",
    "reason": "inclement weather",
    "channels": ["email"],
}


@pytest.fixture
def web_with_north(web: Web) -> Web:
    web.app.locations.save(
        OPERATOR, "north", "North Clinic", "America/New_York", "Mon-Fri 08:00-17:00"
    )
    web.app.accounts.create_user("ana@cova.example", "manager", PASSWORD, ["cova", "north"])
    web.app.accounts.create_user("root@cova.example", "admin", PASSWORD)
    return web


def test_a_personal_token_acts_as_its_user_within_the_tokens_locations(
    web_with_north: Web,
) -> None:
    accounts = web_with_north.app.accounts
    ana = accounts.actor_for_email("ana@cova.example")
    token = accounts.create_token("ana laptop", locations=["cova"], user="ana@cova.example")
    actor = accounts.token_actor(token, "192.0.2.7")
    assert actor is not None
    assert (actor.kind, actor.id, actor.name, actor.role) == (
        ActorKind.USER,
        ana.id,
        "ana@cova.example",
        Role.MANAGER,
    )
    assert ana.locations is not None and len(ana.locations) == 2
    assert actor.locations is not None and len(actor.locations) == 1
    assert actor.locations < ana.locations
    shown = web_with_north.client.get(
        "/api/v1/locations", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert [loc["slug"] for loc in shown] == ["cova"]
    assert actor.label == f"user:{ana.id}" and actor.ip == "192.0.2.7"
    listing = {t.name: t for t in accounts.tokens()}["ana laptop"]
    assert actor.via == f"token:{listing.id}" and listing.user == "ana@cova.example"

    # An admin's token of one location acts as that location's manager, not as an admin.
    scoped = accounts.create_token("root kiosk", locations=["cova"], user="root@cova.example")
    root = accounts.token_actor(scoped)
    assert root is not None and root.role is Role.MANAGER and not root.every_location
    unscoped = accounts.token_actor(accounts.create_token("root", user="root@cova.example"))
    assert unscoped is not None and unscoped.is_admin and unscoped.every_location


def test_a_token_never_reaches_beyond_its_users_locations(web_with_north: Web) -> None:
    accounts = web_with_north.app.accounts
    accounts.create_user("desk@cova.example", "manager", PASSWORD, ["north"])
    with pytest.raises(ValidationError, match="does not have these locations: cova"):
        accounts.create_token("desk", locations=["cova"], user="desk@cova.example")
    with pytest.raises(NotFoundError, match="no active user"):
        accounts.create_token("ghost", user="ghost@cova.example")
    assert [t.name for t in accounts.tokens()] == []

    token = accounts.create_token("desk", user="desk@cova.example")
    api = {"Authorization": f"Bearer {token}"}
    shown = web_with_north.client.get("/api/v1/locations", headers=api).json()
    assert [loc["slug"] for loc in shown] == ["north"]
    refused = web_with_north.client.post("/api/v1/notices", json=NOTICE, headers=api)
    assert refused.status_code == 404, refused.text  # cova is not desk's


def test_a_read_scope_personal_token_never_writes(web_with_north: Web) -> None:
    accounts = web_with_north.app.accounts
    token = accounts.create_token("ana board", scope="read", user="ana@cova.example")
    actor = accounts.token_actor(token)
    assert actor is not None and actor.kind is ActorKind.USER and actor.role is Role.VIEWER
    api = {"Authorization": f"Bearer {token}"}
    assert web_with_north.client.get("/api/v1/notices", headers=api).status_code == 200
    refused = web_with_north.client.post("/api/v1/notices", json=NOTICE, headers=api)
    assert refused.status_code == 403, refused.text
    assert web_with_north.app.notices.all(OPERATOR) == []


def test_a_disabled_users_token_stops_at_once_and_a_revoked_one_for_good(
    web_with_north: Web,
) -> None:
    app = web_with_north.app
    token = app.accounts.create_token("ana laptop", user="ana@cova.example")
    api = {"Authorization": f"Bearer {token}"}
    client = web_with_north.client
    assert client.get("/api/v1/notices", headers=api).status_code == 200
    app.accounts.disable_user("ana@cova.example")
    assert client.get("/api/v1/notices", headers=api).status_code == 401
    assert client.post("/api/v1/notices", json=NOTICE, headers=api).status_code == 401
    app.accounts.enable_user("ana@cova.example")
    assert client.get("/api/v1/notices", headers=api).status_code == 200
    app.accounts.revoke_token(name="ana laptop")
    assert client.get("/api/v1/notices", headers=api).status_code == 401


def test_what_a_personal_token_does_is_audited_as_its_user_and_the_token(
    web_with_north: Web,
) -> None:
    app = web_with_north.app
    token = app.accounts.create_token("ana laptop", user="ana@cova.example")
    token_id = app.accounts.tokens()[0].id
    ana = app.accounts.actor_for_email("ana@cova.example")
    created = web_with_north.client.post(
        "/api/v1/notices", json=NOTICE, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == f"user:ana@cova.example via token:{token_id}"
    [row] = [e for e in app.audit.events(OPERATOR) if e.action == "notice_create"]
    assert (row.actor, row.via, row.ip) == (f"user:{ana.id}", f"token:{token_id}", "127.0.0.1")
    made = [e for e in app.audit.events(OPERATOR) if e.action == "token_create"]
    assert [(e.actor, e.target, e.via) for e in made] == [("operator", f"token:{token_id}", None)]
    root = sign_in(web_with_north, "root@cova.example")
    try:
        page = root.get("/console/audit").text
    finally:
        root.close()
    assert f"user:{ana.id} via token:{token_id}" in page


def test_a_viewers_token_never_sees_patients(web_with_north: Web) -> None:
    accounts = web_with_north.app.accounts
    accounts.create_user("vic@cova.example", "viewer", PASSWORD, ["cova"])
    with pytest.raises(ValidationError, match="a viewer's token cannot --sees-patients"):
        accounts.create_token("vic", sees_patients=True, user="vic@cova.example")
    manager = accounts.create_token("ana desk", sees_patients=True, user="ana@cova.example")
    plain = accounts.create_token("ana plain", user="ana@cova.example")
    assert accounts.token_sees_patients(manager) and not accounts.token_sees_patients(plain)
    accounts.disable_user("ana@cova.example")
    assert not accounts.token_sees_patients(manager)
