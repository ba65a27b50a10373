"""How every console page is made: one Jinja2 environment over ``templates/web/``, the session
cookie sent back, never cached."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from notifier.bootstrap import App
from notifier.domain.closures import zone
from notifier.domain.estimates import duration
from notifier.rendering.renderer import default_templates_dir
from notifier.web.console.auth import SignIn, actor_of, save_sign_in

# Pages hold patient data: never cached. The security headers come from notifier.web.headers.
PAGE_HEADERS = {"Cache-Control": "no-store"}
FIELDS = (
    "location",
    "kind",
    "starts",
    "ends",
    "reason",
    "reason_code",
    "reason_texts",
    "message",
    "message_texts",
    "channels",
    "send_at",
    "reminder_at",
    "reminder_audience",
    "urgent",
    "fallback",
    "emergency",
)
"""The notice form's fields; an error about anything else is shown for the whole form."""


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(web_dir())),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local
    env.filters["duration"] = duration
    env.globals["FIELDS"] = FIELDS
    return env


def web_dir() -> Path:
    return default_templates_dir() / "web"


def local(iso: str | None, fmt: str = "%a %Y-%m-%d %H:%M", tz: str | None = None) -> str:
    """An ISO time as the clinic reads it: in ``tz`` when given, else as stored."""
    if not iso:
        return "–"
    instant = datetime.fromisoformat(iso)
    return (instant.astimezone(zone(tz)) if tz else instant).strftime(fmt)


def channel_labels(app: App) -> dict[str, str]:
    """Each registered channel's name as a heading shows it ("SMS", "Email")."""
    return {
        name: spec.label[:1].upper() + spec.label[1:] for name, spec in app.deps.channels.items()
    }


def fragment(template: str, **context: Any) -> HTMLResponse:
    """A piece of a page (the live preview, the summary bar)."""
    return HTMLResponse(templates().get_template(template).render(**context), headers=PAGE_HEADERS)


def page(
    request: Request,
    app: App,
    sign_in: SignIn,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = (
        templates()
        .get_template(template)
        .render(
            request=request,
            user=sign_in.user,
            csrf=sign_in.csrf,
            labels=channel_labels(app),
            unread=(
                app.replies.unread(actor_of(request, sign_in))
                if sign_in.user and sign_in.user.sees_patients
                else 0
            ),
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    save_sign_in(response, request, app, sign_in)
    return response


def redirect(url: str, request: Request, app: App, sign_in: SignIn) -> Response:
    response = RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)
    save_sign_in(response, request, app, sign_in)
    return response


def not_found(request: Request, app: App, sign_in: SignIn, what: str) -> HTMLResponse:
    return page(request, app, sign_in, "error.html", status=404, title="Not found", message=what)
