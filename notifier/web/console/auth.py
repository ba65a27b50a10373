"""Console sessions in signed cookies, CSRF tokens, and who may do what.

The cookie holds only ``{"uid": user id or None, "csrf": token}``, signed and timestamped with
``NOTIFIER_SECRET_KEY`` (itsdangerous); the user is looked up on every request, so a disabled
user is out at once. Every POST carries the session's CSRF token, as a form field or the
``X-CSRF-Token`` header, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from notifier.bootstrap import App
from notifier.usecases.accounts import UserView
from notifier.web.deps import get_app

COOKIE = "notifier_console"
COOKIE_PATH = "/console"
SESSION_SECONDS = 12 * 3600


@dataclass
class ConsoleSession:
    """The signed cookie's content for this request; ``dirty`` means it must be sent again."""

    uid: int | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    dirty: bool = True
    user: UserView | None = None

    def sign_in(self, user: UserView) -> None:
        self.uid, self.user = user.id, user
        self.csrf = secrets.token_urlsafe(32)  # a fresh token for the signed-in session
        self.dirty = True

    def sign_out(self) -> None:
        self.uid, self.user = None, None
        self.csrf = secrets.token_urlsafe(32)
        self.dirty = True


def _serializer(app: App) -> URLSafeTimedSerializer:
    if app.settings.secret_key is None:
        raise HTTPException(
            503, "the console needs NOTIFIER_SECRET_KEY (at least 16 characters) to sign sessions"
        )
    return URLSafeTimedSerializer(
        app.settings.secret_key.get_secret_value(), salt="notifier.console.session"
    )


def load_session(request: Request, app: App) -> ConsoleSession:
    raw = request.cookies.get(COOKIE)
    session = ConsoleSession()
    if raw:
        try:
            data: dict[str, Any] = _serializer(app).loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return session
        session = ConsoleSession(uid=data.get("uid"), csrf=str(data.get("csrf")), dirty=False)
        if session.uid is not None:
            session.user = app.accounts.user(int(session.uid))
            if session.user is None:
                session.sign_out()
    return session


def save_session(response: Response, request: Request, app: App, session: ConsoleSession) -> None:
    if not session.dirty:
        return
    response.set_cookie(
        COOKIE,
        _serializer(app).dumps({"uid": session.uid, "csrf": session.csrf}),
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def console_session(request: Request, app: Annotated[App, Depends(get_app)]) -> ConsoleSession:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    if session is None:
        session = load_session(request, app)
        request.state.console_session = session
    return session


Session = Annotated[ConsoleSession, Depends(console_session)]


def signed_in(request: Request, session: Session) -> UserView:
    """The signed-in user, or a redirect to the sign-in page (back here afterwards)."""
    if session.user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/console/login?next={quote(target)}"})
    return session.user


def manager(user: Annotated[UserView, Depends(signed_in)]) -> UserView:
    if not user.can_manage:
        raise HTTPException(403, "managers only: ask a manager to do this")
    return user


async def csrf_checked(request: Request, session: Session) -> None:
    """Refuse a POST whose token is not this session's."""
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise HTTPException(403, "the form expired or did not come from this site: reload it")


class SignInThrottle:
    """At most ``limit`` failed sign-ins per email in ``window``; then that email waits.

    Per process, in memory: enough to make guessing a password slow, with no table to clean."""

    def __init__(self, limit: int = 5, window: timedelta = timedelta(minutes=15)) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def wait(self, email: str, now: datetime) -> timedelta | None:
        """How long this email must wait before trying again, or None."""
        with self._lock:
            recent = self._recent(email.strip().lower(), now)
            if len(recent) < self.limit:
                return None
            return recent[0] + self.window - now

    def failed(self, email: str, now: datetime) -> None:
        with self._lock:
            key = email.strip().lower()
            self._recent(key, now).append(now)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(email.strip().lower(), None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures


_THROTTLE_LOCK = threading.Lock()


def sign_in_throttle(request: Request) -> SignInThrottle:
    """The web app's one throttle (made on first use)."""
    state = request.app.state
    with _THROTTLE_LOCK:
        if not hasattr(state, "console_throttle"):
            state.console_throttle = SignInThrottle()
        throttle: SignInThrottle = state.console_throttle
    return throttle


def safe_next(target: str | None) -> str:
    """Only redirect within the console after sign-in."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/notices"


SignedIn = Annotated[UserView, Depends(signed_in)]
Manager = Annotated[UserView, Depends(manager)]
CsrfChecked = Depends(csrf_checked)
