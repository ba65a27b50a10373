"""The JSON API refuses what it does not understand, naming it, and never answers 500 to a
body it cannot echo (infinity, a lone surrogate)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.actors import OPERATOR
from tests.support.web import Web

NOTICE = {
    "location": "cova",
    "starts": "2025-02-19 12:30",
    "ends": "2025-02-21 00:00",
    "reason": "inclement weather",
    "channels": ["sms"],
}


@pytest.fixture
def api(web: Web) -> httpx.Client:
    web.client.headers["Authorization"] = f"Bearer {web.app.accounts.create_token('site')}"
    return web.client


def _raw(api: httpx.Client, path: str, body: str) -> httpx.Response:
    return api.post(path, content=body.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/notices", NOTICE | {"audiance": "affected"}, "audiance"),
        ("/api/v1/notices", NOTICE | {"send_after": "2025-02-19 08:00"}, "send_after"),
        ("/api/v1/opt-outs", {"channel": "sms", "address": "+15405550111", "why": "x"}, "why"),
    ],
)
def test_an_unknown_field_is_refused_with_422_naming_it(
    api: httpx.Client, web: Web, path: str, body: dict[str, object], field: str
) -> None:
    answer = api.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert web.app.notices.all(OPERATOR) == []


def test_an_affected_only_notice_is_taken_as_asked(api: httpx.Client) -> None:
    created = api.post("/api/v1/notices", json=NOTICE | {"audience": "affected"})
    assert created.status_code == 201, created.text
    assert created.json()["audience"] == "affected"
    wrong = api.post("/api/v1/notices", json=NOTICE | {"audience": "some"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "audience"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"urgent": 1e999}', "urgent"),
        ('{"urgent": -1e999}', "urgent"),
        ('{"reason": "\\ud800"}', "reason"),
        ('{"location": "\\udfff\\ud800"}', "location"),
        ('{"\\ud800": 1}', None),  # a name that is not text: pydantic cannot say which
    ],
)
def test_bodies_the_old_422_could_not_echo_get_a_422(
    api: httpx.Client, body: str, field: str | None
) -> None:
    notice = '{"location": "cova", "starts": "2025-02-19 12:30", "ends": "2025-02-21 00:00", '
    notice += '"reason": "weather", ' + body[1:]
    answer = _raw(api, "/api/v1/notices", notice)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
