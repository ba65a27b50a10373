"""The JSON API over real HTTP: bearer tokens, the notice life cycle, filters, errors."""

from __future__ import annotations

import httpx
import pytest

from notifier.storage.models import ApiToken
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.web import Web, broadcast_sms

NOTICE = {
    "location": "cova",
    "starts": "2025-02-19 12:30",
    "ends": "2025-02-21 00:00",
    "reason": "inclement weather",
    "channels": ["sms", "email"],
}


@pytest.fixture
def api(web: Web) -> httpx.Client:
    token = web.app.accounts.create_token("clinic website")
    web.client.headers["Authorization"] = f"Bearer {token}"
    return web.client


@pytest.mark.parametrize(
    "authorization", [None, "Bearer ntf_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer"]
)
def test_the_api_refuses_requests_without_a_valid_token(
    web: Web, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/api/v1/notices"), ("POST", "/api/v1/notices")]:
        response = web.client.request(method, path, headers=headers, json=NOTICE)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert web.app.notices.all(OPERATOR) == []


def test_tokens_are_stored_only_as_a_digest(web: Web) -> None:
    token = web.app.accounts.create_token("phones")
    with web.app.db.session() as s:
        stored = s.query(ApiToken).one()
        assert stored.name == "phones" and token not in stored.token_sha256
        assert len(stored.token_sha256) == 64


def test_the_notice_life_cycle(api: httpx.Client, web: Web) -> None:
    created = api.post("/api/v1/notices", json=NOTICE | {"urgent": True})
    assert created.status_code == 201, created.text
    notice = created.json()
    assert notice["kind"] == "closure" and notice["broadcasts"][0]["urgent"] is True
    assert notice["starts"] == "2025-02-19T12:30:00-05:00"

    assert [n["id"] for n in api.get("/api/v1/notices").json()] == [notice["id"]]
    assert api.get("/api/v1/notices", params={"location": "cova"}).json()[0]["id"] == notice["id"]
    assert api.get(f"/api/v1/notices/{notice['id']}").json() == notice

    preview = api.get(f"/api/v1/notices/{notice['id']}/preview", params={"channel": "sms"})
    assert preview.status_code == 200
    assert (
        "closing early Wednesday, 2/19/2025 at 12:30 PM"
        in preview.json()["messages"]["sms"][0]["text"]
    )

    web.app.fanout.fire_due()
    summary = api.get(f"/api/v1/notices/{notice['id']}/summary").json()
    assert summary == {"sms": {"pending": 2, "skipped": 2}, "email": {"pending": 3, "skipped": 1}}

    cancelled = api.post(f"/api/v1/notices/{notice['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/notices/{notice['id']}/cancel")
    assert again.status_code == 422 and "already cancelled" in again.json()["detail"]
    summary = api.get(f"/api/v1/notices/{notice['id']}/summary").json()
    assert summary["sms"] == {"cancelled": 2, "skipped": 2}


def test_deliveries_can_be_filtered_by_notice_state_and_channel(
    api: httpx.Client, web: Web
) -> None:
    notice_id = broadcast_sms(web.app, FakeChannel())
    every = api.get("/api/v1/deliveries", params={"notice": notice_id}).json()
    assert len(every) == 4 and all("*" in d["address"] for d in every)
    sent = api.get("/api/v1/deliveries", params={"state": "sent", "channel": "sms"}).json()
    assert [d["state"] for d in sent] == ["sent", "sent"]
    assert api.get("/api/v1/deliveries", params={"channel": "email"}).json() == []
    page = api.get("/api/v1/deliveries", params={"limit": 1, "offset": 1}).json()
    assert [d["id"] for d in page] == [every[1]["id"]]

    history = api.get(f"/api/v1/deliveries/{sent[0]['id']}").json()
    assert history["delivery"]["id"] == sent[0]["id"] and "*" in history["delivery"]["address"]
    assert history["events"][0]["kind"] == "queued" and history["events"][-1]["state"] == "sent"
    assert history["events"][0]["at"] <= history["events"][-1]["at"]
    assert api.get("/api/v1/deliveries/999999").status_code == 404


def test_unknown_ids_are_404_and_bad_input_422_with_our_message(api: httpx.Client) -> None:
    assert api.get("/api/v1/notices/999").status_code == 404
    assert "no notice with id 999" in api.get("/api/v1/notices/999").json()["detail"]
    assert api.post("/api/v1/notices/999/cancel").status_code == 404
    assert api.get("/api/v1/notices/999/summary").status_code == 404
    missing = api.post("/api/v1/notices", json=NOTICE | {"location": "nowhere"})
    assert missing.status_code == 404
    backwards = api.post("/api/v1/notices", json=NOTICE | {"ends": "2025-02-19 10:00"})
    assert backwards.status_code == 422
    assert backwards.json()["detail"].startswith("the closure ends (2025-02-19 10:00)")
    assert api.post("/api/v1/notices", json=NOTICE | {"reason": "a\x00b"}).status_code == 422
    assert api.get("/api/v1/deliveries", params={"state": "lost"}).status_code == 422


def test_opt_outs_can_be_recorded_and_lifted_through_the_api(api: httpx.Client, web: Web) -> None:
    body = {"channel": "sms", "address": "(540) 555-0111"}
    added = api.post("/api/v1/opt-outs", json=body).json()
    assert added == {"channel": "sms", "address": "+1******0111", "changed": True}
    assert api.post("/api/v1/opt-outs", json=body).json()["changed"] is False
    channel = FakeChannel()
    broadcast_sms(web.app, channel)
    assert [m.to for m in channel.sent] == ["+15405550112"]
    assert api.post("/api/v1/opt-outs/remove", json=body).json()["changed"] is True
    bad = api.post("/api/v1/opt-outs", json={"channel": "sms", "address": "555-01"})
    assert bad.status_code == 422


def test_the_openapi_schema_is_served(web: Web) -> None:
    schema = web.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/v1/notices", "/api/v1/deliveries", "/webhooks/twilio/status"} <= paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
