"""An unhandled exception's 500 (sent by Starlette's error middleware, outside every middleware
the app adds) carries the security headers like every other answer."""

from __future__ import annotations

import httpx

from tests.support.web import Web


def test_a_500_from_an_unhandled_exception_carries_the_security_headers(web: Web) -> None:
    def broken() -> None:
        raise RuntimeError("a bug")

    web.server.web.add_api_route("/probe/broken", broken)
    with httpx.Client(base_url=web.server.url, timeout=10) as client:
        answer = client.get("/probe/broken")
    assert answer.status_code == 500
    assert answer.headers.get("x-frame-options") == "DENY"
    assert answer.headers.get("x-content-type-options") == "nosniff"
    assert answer.headers.get("referrer-policy") == "no-referrer"
    assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
