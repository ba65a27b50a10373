"""The API docs: off by default; with NOTIFIER_API_DOCS=true, Swagger UI from this server's own
assets under the console's script policy, never from a CDN. /redoc stays off."""

from __future__ import annotations

import re
from pathlib import Path

from notifier.clock import FrozenClock
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.web import served


def test_docs_are_off_by_default_and_the_schema_is_served(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    with served(f"sqlite:///{tmp_path / 'n.db'}", fake_twilio, fake_smtp, clock) as web:
        assert web.client.get("/docs").status_code == 404
        assert web.client.get("/redoc").status_code == 404
        assert web.client.get("/openapi.json").status_code == 200


def test_docs_when_asked_for_load_nothing_from_elsewhere(
    tmp_path: Path, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    with served(url, fake_twilio, fake_smtp, clock, api_docs=True) as web:
        page = web.client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
        assert "<script>" not in page.text  # no inline script: the page policy forbids it
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "cdn" not in policy
        for source in sources:
            asset = web.client.get(source)
            assert asset.status_code == 200 and len(asset.content) > 20, source
        assert "SwaggerUIBundle" in web.client.get("/docs/assets/swagger-ui-bundle.js").text
        assert web.client.get("/docs/assets/../../../etc/passwd").status_code == 404
        assert web.client.get("/redoc").status_code == 404
