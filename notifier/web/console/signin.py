"""Static assets, signing in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, Response

from notifier.web.console.auth import (
    CsrfChecked,
    Session,
    load_session,
    safe_next,
    sign_in_throttle,
)
from notifier.web.console.pages import page, redirect, web_dir
from notifier.web.deps import Application

router = APIRouter()
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        web_dir() / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/login")
def login_page(request: Request, app: Application, next: str | None = None) -> Response:
    session = load_session(request, app)
    if session.user is not None:
        return redirect(safe_next(next), request, app, session)
    return page(request, app, session, "login.html", next=safe_next(next), email="", error=None)


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    app: Application,
    session: Session,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "",
) -> Response:
    throttle, now = sign_in_throttle(request), app.clock.now()
    wait = throttle.wait(email, now)
    if wait is not None:
        minutes = max(1, -(-int(wait.total_seconds()) // 60))
        return page(
            request,
            app,
            session,
            "login.html",
            status=429,
            next=safe_next(next),
            email=email,
            error=f"Too many failed attempts for this email: try again in {minutes} min.",
        )
    user = app.accounts.authenticate(email, password)
    if user is None:
        throttle.failed(email, now)
        return page(
            request,
            app,
            session,
            "login.html",
            status=401,
            next=safe_next(next),
            email=email,
            error="That email and password do not match a console user.",
        )
    throttle.succeeded(email)
    session.sign_in(user)
    return redirect(safe_next(next), request, app, session)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, app: Application, session: Session) -> Response:
    session.sign_out()
    return redirect("/console/login", request, app, session)
