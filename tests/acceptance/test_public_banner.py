"""The website banner in a real browser (Chromium driven by Playwright): a clinic's static
page, served from another origin (its own loopback port), embeds ``banner.js`` from the
service and shows the closure in the page's language, dismissibly — and nothing when no
closure is current or ahead.

Screenshots go to ``test-artifacts/public/`` (git-ignored); ``docs/operate/img/banner.png``
is one of them."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from notifier.usecases.notice_requests import NoticeRequest
from tests.acceptance.test_console_browser import browser  # noqa: F401  (the fixture)
from tests.support.actors import OPERATOR
from tests.support.peers import NEW_YORK
from tests.support.web import Web

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "public"
PAGE = """<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
<style>
  body {{ margin: 0; font: 17px/1.5 Georgia, serif; color: #222; }}
  header {{ background: #0f3d5e; color: #fff; padding: 18px 24px; font: 600 22px system-ui; }}
  main {{ padding: 24px; max-width: 720px; }}
</style></head>
<body>
<header>{title}</header>
<main><h1>{welcome}</h1><p>{body}</p></main>
<script src="{service}/public/cova/banner.js" async></script>
</body>
</html>
"""
WORDS = {
    "en": ("COVA Spine and Pain Center", "Welcome", "Spine care and pain management."),
    "es": ("COVA Spine and Pain Center", "Bienvenidos", "Cuidado de la columna y del dolor."),
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def website(web: Web, tmp_path: Path) -> Iterator[str]:
    """A clinic's static website on another loopback port (another origin): en.html, es.html."""
    for lang, (title, welcome, body) in WORDS.items():
        html = PAGE.format(
            lang=lang, title=title, welcome=welcome, body=body, service=web.server.url
        )
        (tmp_path / f"{lang}.html").write_text(html)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def visit(page: Page, url: str) -> None:
    """Open ``url`` and wait until the banner's data request has been answered."""
    with page.expect_response(lambda r: "/public/cova.json" in r.url) as answered:
        page.goto(url)
    assert answered.value.status == 200


def test_the_banner_shows_the_closure_on_another_origin_in_its_language(
    web: Web,
    website: str,
    browser: Browser,  # noqa: F811
) -> None:
    assert website.rsplit(":", 1)[1] != web.server.url.rsplit(":", 1)[1]  # another origin
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather", channels=("sms",)
        ),
    )
    context = browser.new_context(viewport={"width": 900, "height": 420})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    visit(page, f"{website}/en.html")
    banner = page.get_by_role("status")
    expect(banner).to_contain_text(
        "COVA Spine and Pain Center will be closing early Wednesday, 2/19/2025 at 12:30 PM"
    )
    expect(banner).to_have_attribute("lang", "en")
    expect(banner.get_by_role("link", name="Details")).to_have_attribute(
        "href", f"{web.server.url}/public/cova?lang=en"
    )
    shot(page, "banner")
    banner.get_by_role("button", name="Dismiss this notice").click()
    expect(page.get_by_role("status")).to_have_count(0)
    assert context.cookies() == []

    visit(page, f"{website}/es.html")
    expect(page.get_by_role("status")).to_contain_text(
        "cerrará temprano el miércoles 19 de febrero de 2025 a las 12:30 p. m."
    )
    expect(page.get_by_role("button", name="Cerrar este aviso")).to_be_visible()
    shot(page, "banner-es")

    context.close()

    # During the closure (Thursday morning, closed all day): a new visitor sees it as current.
    web.app.clock.set(datetime(2025, 2, 20, 9, 0, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    with page.expect_response(lambda r: "/public/cova.json" in r.url) as answered:
        page.goto(f"{website}/en.html")
    assert [c["state"] for c in answered.value.json()["closures"]] == ["current"]
    expect(page.get_by_role("status")).to_contain_text(
        "will be closed all day Thursday, 2/20/2025. We reopen Friday, 2/21/2025 at 8:00 AM."
    )
    context.close()

    # The closure is over: the script stays silent (a new visitor: the browser may reuse the
    # data it fetched for up to a minute, as Cache-Control allows).
    web.app.clock.set(datetime(2025, 2, 21, 0, 0, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    visit(page, f"{website}/en.html")
    page.wait_for_timeout(200)  # let the answered request's handler run
    expect(page.get_by_role("status")).to_have_count(0)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    assert errors == []
    context.close()


def test_no_banner_when_no_closure_is_current_or_ahead(
    web: Web,
    website: str,
    browser: Browser,  # noqa: F811
) -> None:
    created = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather", channels=("sms",)
        ),
    )
    web.app.notices.cancel(OPERATOR, created.notice.id)  # called off: open after all
    page = browser.new_page()
    visit(page, f"{website}/es.html")
    page.wait_for_timeout(200)
    expect(page.get_by_role("status")).to_have_count(0)
    assert page.evaluate("document.querySelectorAll('.notifier-banner').length") == 0
    page.close()
