"""Security headers on every response we serve (pages, API, webhooks, errors, 413s).

Pages may run only our own script; styles may be inline because the console's email preview
shows the email's own HTML (inline styles) in a sandboxed ``srcdoc`` frame, which inherits
this policy. Nothing may frame us. Referrers are never sent: unsubscribe URLs carry tokens.
HSTS is sent once ``NOTIFIER_PUBLIC_BASE_URL`` is https. The API docs, when on, are served
from local assets under the same policy (``web.docs``).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifier.settings import Settings

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)
COMMON = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HSTS = "max-age=31536000"


class SecurityHeaders:
    """ASGI middleware: sets the headers on every HTTP response start."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(COMMON)
                headers["Content-Security-Policy"] = PAGE_POLICY
                public = self.settings.public_base_url or ""
                if public.startswith("https://"):
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
