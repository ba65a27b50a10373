"""Console sessions, CSRF tokens, and who may do what.

Signed in, the ``notifier_console`` cookie holds a random session id that the database knows
only by its SHA-256 (``usecases.sessions``), with the session's CSRF token beside it. Before
sign-in, the ``notifier_csrf`` cookie holds a random token that the sign-in form must repeat
(double submit: only our own pages can put it in a form). That token is signed with a server
key and dated (``pre_sign_in_csrf``): a value planted in a victim's browser (login CSRF: signing
them in to the planter's account) is refused unless this server made it in the last
``CSRF_MAX_AGE``. Every POST carries the token, as a form field or the ``X-CSRF-Token`` header,
compared in constant time.

Both cookies: HttpOnly, path ``/console``, no Max-Age (gone when the browser closes; the server
ends sessions anyway), Secure whenever ``NOTIFIER_PUBLIC_BASE_URL`` is https, whatever scheme
the request arrived with. SameSite=Lax, not Strict: a link to a notice in an email or a chat
opens signed in, and Strict would add nothing since no GET changes anything and every POST needs
the CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from itsdangerous import BadData, TimestampSigner

from notifier.bootstrap import App
from notifier.clock import Clock
from notifier.domain.actors import Actor
from notifier.usecases.accounts import UserView
from notifier.usecases.sessions import NewSession
from notifier.web.deps import get_app
from notifier.web.proxies import client_ip

COOKIE = "notifier_console"
CSRF_COOKIE = "notifier_csrf"
COOKIE_PATH = "/console"
CSRF_MAX_AGE = 12 * 3600  # seconds a sign-in form stays usable
_CSRF_SALT = "notifier.console.pre-sign-in-csrf"
# Without NOTIFIER_SECRET_KEY (the console works without it) a key for this process's life:
# a restart only asks for the sign-in form to be reloaded.
_PROCESS_KEY = secrets.token_urlsafe(32)


class _DatedSigner(TimestampSigner):
    """Dates its tokens by the application's clock (frozen in tests, NOTIFIER_NOW in demos)."""

    def __init__(self, key: str, clock: Clock) -> None:
        super().__init__(key, salt=_CSRF_SALT)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())


def _csrf_signer(app: App) -> TimestampSigner:
    key = app.settings.secret_key
    return _DatedSigner(key.get_secret_value() if key is not None else _PROCESS_KEY, app.clock)


def pre_sign_in_csrf(app: App) -> str:
    """A new token for the sign-in form: random, dated and signed with a server key."""
    return _csrf_signer(app).sign(secrets.token_urlsafe(32)).decode()


def genuine_csrf(app: App, token: str) -> bool:
    """Whether ``token`` is one this server made (``pre_sign_in_csrf``) and not too old."""
    try:
        _csrf_signer(app).unsign(token, max_age=CSRF_MAX_AGE)
    except BadData:
        return False
    return True


@dataclass
class SignIn:
    """This request's sign-in, signed in (``token``) or not, and the cookies to send back
    (a value sets one, None deletes it)."""

    csrf: str
    user: UserView | None = None
    token: str | None = None
    cookies: dict[str, str | None] = field(default_factory=dict)

    def signed_in(self, result: NewSession) -> None:
        self.user, self.token, self.csrf = result.user, result.token, result.csrf
        self.cookies[COOKIE] = result.token

    def signed_out(self, csrf: str) -> None:
        self.user, self.token, self.csrf = None, None, csrf
        self.cookies |= {COOKIE: None, CSRF_COOKIE: csrf}


def load_sign_in(request: Request, app: App) -> SignIn:
    raw = request.cookies.get(COOKIE)
    if raw:
        live = app.sessions.current(raw)
        if live is not None:
            return SignIn(csrf=live.csrf, user=live.user, token=raw)
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) < 200 and genuine_csrf(app, token):
        sign_in = SignIn(csrf=token)
    else:
        sign_in = SignIn(csrf=pre_sign_in_csrf(app))
        sign_in.cookies[CSRF_COOKIE] = sign_in.csrf
    if raw:
        sign_in.cookies[COOKIE] = None  # ended, unknown or from before server-side sessions
    return sign_in


def save_sign_in(response: Response, request: Request, app: App, sign_in: SignIn) -> None:
    base = app.settings.public_base_url
    secure = base is not None and base.startswith("https://")
    for name, value in sign_in.cookies.items():
        if value is None:
            response.delete_cookie(
                name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
            )
        else:
            response.set_cookie(
                name, value, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
            )
    sign_in.cookies.clear()


def current_sign_in(request: Request, app: Annotated[App, Depends(get_app)]) -> SignIn:
    sign_in: SignIn | None = getattr(request.state, "current_sign_in", None)
    if sign_in is None:
        sign_in = load_sign_in(request, app)
        request.state.current_sign_in = sign_in
    return sign_in


CurrentSignIn = Annotated[SignIn, Depends(current_sign_in)]


def signed_in(request: Request, sign_in: CurrentSignIn) -> UserView:
    """The signed-in user, or a redirect to the sign-in page (back here afterwards)."""
    if sign_in.user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/console/login?next={quote(target)}"})
    return sign_in.user


def actor_of(request: Request, sign_in: SignIn) -> Actor:
    """Who acts in this request: the signed-in user, from the client's address (the use cases
    scope everything by it)."""
    if sign_in.user is None:
        raise HTTPException(303, headers={"Location": "/console/login"})
    return sign_in.user.actor(client_ip(request))


def manager(user: Annotated[UserView, Depends(signed_in)]) -> UserView:
    if not user.can_manage:
        raise HTTPException(403, "managers only: ask a manager to do this")
    return user


async def csrf_checked(request: Request, sign_in: CurrentSignIn) -> None:
    """Refuse a POST whose token is not this session's."""
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), sign_in.csrf.encode()):
        raise HTTPException(403, "the form expired or did not come from this site: reload it")


def safe_next(target: str | None) -> str:
    """Only redirect within the console after sign-in."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/notices"


SignedIn = Annotated[UserView, Depends(signed_in)]
Manager = Annotated[UserView, Depends(manager)]
CsrfChecked = Depends(csrf_checked)
