"""Request bodies are bounded while they are read, and checked callers come first.

Each path gets a byte limit (``NOTIFIER_HTTP_*_MAX_BYTES``): a declared ``Content-Length`` over
it is answered 413 before anything is read; a chunked body is counted as it streams and
answered 413 the moment it passes the limit. Paths that take large bodies or need a caller
(the API, the console's CSV upload) first check the bearer token or the manager's session,
before a byte of the body is read: FastAPI reads a route's body before its dependencies run.
A response to a request whose body was not read to the end closes the connection, so the
server never drains what it did not want.

``body_rules`` is the table; ``BodyLimits`` is the pure ASGI middleware that applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from fastapi import HTTPException
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier.bootstrap import App
from notifier.web.api import TOKEN_REQUIRED
from notifier.web.console.auth import current_sign_in, manager, signed_in
from notifier.web.proxies import client_ip

Gate = Callable[[Request], Response | None]
"""Who may send a body here: None lets the request in, a response refuses it unread."""
HTML_PREFIXES = ("/console", "/unsubscribe")  # browsers read these answers
FORM_OVERHEAD = 64 * 1024  # a multipart form's boundaries, headers and CSRF field


@dataclass(frozen=True)
class BodyRule:
    """Bodies on paths this rule ``matches`` are at most ``max_bytes``, after ``gate``."""

    matches: Callable[[str], bool]
    max_bytes: int
    gate: Gate | None = None


def body_rules(app: App) -> list[BodyRule]:
    """The limits from the settings, most specific first; anything else gets the form limit."""
    s = app.settings

    def is_api(path: str) -> bool:
        return path.startswith("/api/")

    def is_upload(path: str) -> bool:
        return path.endswith("/import") and path.startswith(("/api/v1/", "/console/"))

    token, session = bearer_token(app), signed_in_manager(app)
    return [
        BodyRule(lambda path: path.startswith("/webhooks/"), s.http_webhook_max_bytes),
        BodyRule(lambda path: is_upload(path) and is_api(path), s.http_upload_max_bytes, token),
        # A console upload is a multipart form: room for its headers, so that a file just over
        # the limit gets the import page's own explanation rather than a bare 413.
        BodyRule(is_upload, s.http_upload_max_bytes + FORM_OVERHEAD, session),
        BodyRule(is_api, s.http_api_max_bytes, token),
        BodyRule(lambda path: True, s.http_form_max_bytes),
    ]


def bearer_token(app: App) -> Gate:
    """Refuse (401) a request without a live API token, as the API's own dependency would."""

    def gate(request: Request) -> Response | None:
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        found = (
            app.accounts.token_actor(token, client_ip(request))
            if scheme.lower() == "bearer" and token
            else None
        )
        if found is not None:
            request.state.api_actor = found  # the route's own check reads it: one lookup
            return None
        return refusal(request.url.path, 401, TOKEN_REQUIRED, {"WWW-Authenticate": "Bearer"})

    return gate


def signed_in_manager(app: App) -> Gate:
    """Send a stranger to the sign-in page and refuse a viewer, as the console's routes do."""

    def gate(request: Request) -> Response | None:
        try:
            manager(signed_in(request, current_sign_in(request, app)))  # kept for the route
        except HTTPException as exc:
            return refusal(request.url.path, exc.status_code, str(exc.detail), exc.headers)
        return None

    return gate


def refusal(
    path: str, status: int, reason: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A short answer: a page for the console and unsubscribe links, JSON elsewhere."""
    if path.startswith(HTML_PREFIXES):
        page = f"<!doctype html><title>{status}</title><p>{escape(reason)}</p>"
        return HTMLResponse(page, status, headers)
    return JSONResponse({"detail": reason}, status, headers)


class BodyTooLarge(HTTPException):
    """Raised into the app reading the body; the 413 has already been sent by then."""

    def __init__(self, reason: str) -> None:
        super().__init__(413, reason)


class BodyLimits:
    """ASGI middleware applying ``body_rules``; requests without a body pass untouched."""

    def __init__(self, app: ASGIApp, rules: Sequence[BodyRule]) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rule = next(rule for rule in self.rules if rule.matches(path))
        exchange = _Exchange(scope, receive, send, rule.max_bytes)
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > rule.max_bytes:
            await exchange.answer(exchange.too_large())
            return
        if rule.gate is not None:
            refused = await run_in_threadpool(rule.gate, Request(scope))
            if refused is not None:
                await exchange.answer(refused)
                return
        try:
            await self.app(scope, exchange.receive_counted, exchange.send_from_app)
        except BodyTooLarge:
            if not exchange.answered:
                raise


class _Exchange:
    """One request: its body counted as the app reads it, and who has answered."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.max_bytes = max_bytes
        self.reason = f"the request body is larger than {max_bytes} bytes"
        self.read = 0
        self.finished = self.started = self.answered = False

    def too_large(self) -> Response:
        return refusal(self.scope["path"], 413, self.reason)

    async def answer(self, response: Response) -> None:
        await response(self.scope, self._receive, self.send_closing)
        self.answered = True

    async def send_closing(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if not self.finished:  # hang up rather than drain a body nobody wants
                MutableHeaders(scope=message)["Connection"] = "close"
        await self._send(message)

    async def send_from_app(self, message: Message) -> None:
        if not self.answered:  # after our 413 the app's own answer comes too late
            await self.send_closing(message)

    async def receive_counted(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.max_bytes:
                if not self.started:
                    await self.answer(self.too_large())
                raise BodyTooLarge(self.reason)
            self.finished = not message.get("more_body", False)
        return message


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or (_content_length(headers) or 0) > 0


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None
