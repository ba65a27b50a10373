"""Static assets, signing in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, Response

from notifier.usecases.sessions import Busy, Refused, Throttled
from notifier.web.console.auth import (
    CsrfChecked,
    CurrentSignIn,
    load_sign_in,
    pre_sign_in_csrf,
    safe_next,
)
from notifier.web.console.pages import page, redirect, web_dir
from notifier.web.deps import Application
from notifier.web.proxies import client_ip

router = APIRouter()
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        web_dir() / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "max-age=300"},  # nosniff: web.headers, on every response
    )


@router.get("/login")
def login_page(request: Request, app: Application, next: str | None = None) -> Response:
    sign_in = load_sign_in(request, app)
    if sign_in.user is not None:
        return redirect(safe_next(next), request, app, sign_in)
    return page(request, app, sign_in, "login.html", next=safe_next(next), email="", error=None)


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "",
) -> Response:
    # Every attempt is recorded and counted per client address before the password is checked.
    outcome = app.sessions.sign_in(email, password, client_ip(request), replacing=sign_in.token)
    if isinstance(outcome, Throttled | Refused | Busy):
        headers = {}
        if isinstance(outcome, Throttled):
            minutes = max(1, -(-int(outcome.wait.total_seconds()) // 60))
            status, error = 429, f"Too many failed sign-ins from here: try again in {minutes} min."
            headers["Retry-After"] = str(int(outcome.wait.total_seconds()) + 1)
        elif isinstance(outcome, Busy):
            status, error = 429, "The server is checking other sign-ins: try again in a moment."
            headers["Retry-After"] = str(outcome.retry_after_seconds)
        else:
            status, error = 401, "That email and password do not match a console user."
        response = page(
            request,
            app,
            sign_in,
            "login.html",
            status=status,
            next=safe_next(next),
            email=email,
            error=error,
        )
        response.headers.update(headers)
        return response
    sign_in.signed_in(outcome)
    return redirect(safe_next(next), request, app, sign_in)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, app: Application, sign_in: CurrentSignIn) -> Response:
    """End the session on the server too: its cookie, replayed, signs nobody in."""
    if sign_in.token is not None:
        app.sessions.sign_out(sign_in.token)
    sign_in.signed_out(pre_sign_in_csrf(app))
    return redirect("/console/login", request, app, sign_in)
