"""One-click unsubscribe links (RFC 8058).

``GET /unsubscribe/{token}`` only shows a confirmation page: link scanners prefetch GETs, so a
GET never unsubscribes. ``POST /unsubscribe/{token}`` (the mail client's one-click POST with
``List-Unsubscribe=One-Click``, or the page's button) opts out at once: no auth, no redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from notifier.domain.contacts import mask_address
from notifier.unsubscribe import Subscriber
from notifier.web.deps import Application

router = APIRouter(prefix="/unsubscribe", tags=["unsubscribe"])
Token = Annotated[str, Path(max_length=2000)]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto;">
<h1>{title}</h1>{body}</body></html>"""
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "the link is not genuine", "content": {"text/html": {}}}
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _invalid() -> HTMLResponse:
    return _page(
        "Link not recognised",
        "<p>This unsubscribe link is not valid. Please use the link from your email.</p>",
        404,
    )


def _answer(subscriber: Subscriber | None, title: str, body: Callable[[str], str]) -> HTMLResponse:
    """The page for a genuine link (``body`` of the masked, escaped address), or "not
    recognised"."""
    if subscriber is None:
        return _invalid()
    return _page(title, body(escape(mask_address(subscriber.address))))


@router.get("/{token}", response_class=HTMLResponse, responses=_NOT_FOUND)
def confirm_page(token: Token, app: Application) -> HTMLResponse:
    """A confirmation page; changes nothing."""
    return _answer(
        app.consent.subscriber(token),
        "Unsubscribe from closure emails?",
        lambda address: (
            f"<p>Stop closure emails to {address}?</p>"
            f'<form method="post" action="/unsubscribe/{escape(token)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        ),
    )


@router.post("/{token}", response_class=HTMLResponse, responses=_NOT_FOUND)
def unsubscribe_now(token: Token, app: Application) -> HTMLResponse:
    """Opt the address out at once (RFC 8058 one-click POST)."""
    return _answer(
        app.consent.unsubscribe(token),
        "You are unsubscribed",
        lambda address: f"<p>We will not send closure emails to {address} any more.</p>",
    )
