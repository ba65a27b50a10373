"""Security headers on every response we serve, HSTS behind an https public URL, and forwarded
headers believed only from a trusted proxy."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import Request

from notifier.clock import FrozenClock
from notifier.errors import ConfigurationError
from notifier.settings import load_settings
from notifier.web.proxies import client_ip
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import PASSWORD, Web, served, sign_in

FORWARDED = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}


@pytest.fixture
def api(web: Web) -> Iterator[httpx.Client]:
    token = web.app.accounts.create_token("headers")
    with httpx.Client(
        base_url=web.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield client


def every_route_family(web: Web, api: httpx.Client) -> dict[str, httpx.Response]:
    """One response of each kind we serve: health, API (good, refused, invalid), webhooks,
    unsubscribe pages, console pages, redirects and assets, docs, 404 and 413."""
    web.app.accounts.create_user("viewer@cova.example", "viewer", PASSWORD)
    viewer = sign_in(web, "viewer@cova.example")
    get, post = web.client.get, web.client.post
    try:
        return {
            "healthz": get("/healthz"),
            "readyz": get("/readyz"),
            "api": api.get("/api/v1/notices"),
            "api invalid": api.post("/api/v1/opt-outs", json={"channel": "pigeon"}),
            "api without token": get("/api/v1/notices"),
            "api body without token": post("/api/v1/opt-outs", json={}),
            "openapi": get("/openapi.json"),
            "docs": get("/docs"),
            "webhook unsigned": post("/webhooks/twilio/status", data={"MessageSid": "SM1"}),
            "unsubscribe page": get("/unsubscribe/not-a-token"),
            "unsubscribe post": post("/unsubscribe/not-a-token"),
            "console login": get("/console/login"),
            "console redirect": get("/console/notices"),
            "console page": viewer.get("/console/notices"),
            "console forbidden": viewer.get("/console/patients/import"),
            "console asset": get("/console/static/console.css"),
            "not found": get("/nowhere"),
            "too large": post("/webhooks/twilio/status", content=b"x" * 70_000),
        }
    finally:
        viewer.close()


def test_every_response_carries_the_security_headers(web: Web, api: httpx.Client) -> None:
    responses = every_route_family(web, api)
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses["too large"] == 413 and statuses["webhook unsigned"] == 403
    assert statuses["api body without token"] == 401 and statuses["console redirect"] == 303
    for name, response in responses.items():
        headers = response.headers
        assert headers.get("x-frame-options") == "DENY", name
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), name
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("referrer-policy") == "no-referrer", name  # tokens ride in URLs
        assert "strict-transport-security" not in headers, name  # served over plain http


@pytest.mark.parametrize("name", ["unsubscribe page", "console login", "console page"])
def test_our_pages_may_run_only_our_own_scripts(web: Web, api: httpx.Client, name: str) -> None:
    policy = every_route_family(web, api)[name].headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["base-uri"] == "'none'" and directives["form-action"] == "'self'"


def test_hsts_is_sent_when_the_public_url_is_https(web: Web) -> None:
    web.app.settings.public_base_url = "https://notifier.example.org"
    for path in ("/healthz", "/console/login", "/unsubscribe/not-a-token"):
        assert web.client.get(path).headers["strict-transport-security"] == "max-age=31536000"


def probe(web: Web) -> dict[str, str]:
    """Who the app believes is calling: the client IP other parts use, and the scheme."""

    def peer(request: Request) -> dict[str, str]:
        return {"ip": client_ip(request), "scheme": request.url.scheme}

    web.server.web.add_api_route("/probe/peer", peer)
    answer = web.client.get("/probe/peer", headers=FORWARDED)
    assert answer.status_code == 200, answer.text
    result: dict[str, str] = answer.json()
    return result


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        (None, {"ip": "127.0.0.1", "scheme": "http"}),  # the default: believe no proxy
        ("10.0.0.0/8, 192.0.2.1", {"ip": "127.0.0.1", "scheme": "http"}),  # not our peer
        ("127.0.0.1", {"ip": "203.0.113.7", "scheme": "https"}),
        ("10.0.0.0/8,127.0.0.0/8", {"ip": "203.0.113.7", "scheme": "https"}),
    ],
)
def test_forwarded_headers_are_believed_only_from_a_trusted_proxy(
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
    trusted: str | None,
    expected: dict[str, str],
) -> None:
    extra = {} if trusted is None else {"trusted_proxies": trusted}
    with served(database_url, fake_twilio, fake_smtp, clock, **extra) as web:
        assert probe(web) == expected


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.300", "127.0.0.1,,"])
def test_a_trusted_proxy_that_is_not_an_address_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="NOTIFIER_TRUSTED_PROXIES"):
        load_settings(trusted_proxies=value)


def test_trusted_proxies_are_kept_normalised() -> None:
    assert load_settings(trusted_proxies=" 10.0.0.1 , 10.1.0.0/16 ").trusted_proxies == (
        "10.0.0.1,10.1.0.0/16"
    )
    assert load_settings(trusted_proxies="*").trusted_proxies == "*"
    assert load_settings().trusted_proxies == ""
