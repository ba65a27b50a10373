"""Who is calling: the client's address and scheme as the app may believe them.

``X-Forwarded-For``/``-Proto`` rewrite the client address and scheme (uvicorn's
``ProxyHeadersMiddleware``) only when the connection comes from ``NOTIFIER_TRUSTED_PROXIES``
(default: nobody, so a client cannot claim another address or https); everything else reads
the already-checked values.

Forwarded headers from a peer that is not trusted are ignored, and that is logged once per
peer: behind a proxy that is not listed, every client shares the proxy's address, so one
stranger's wrong sign-ins throttle everybody (the manager with the right password too) and
links are built as http. ``*`` (any peer) is warned about when the app starts.
"""

from __future__ import annotations

import logging
import threading

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

log = logging.getLogger(__name__)
FORWARDED = {b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"}
REMEMBERED_PEERS = 1024  # peers already warned about; beyond that, warn again after a reset


def warn_if_any_peer_trusted(trusted: str) -> None:
    """Say at start that ``*`` lets any client claim any address."""
    if trusted == "*":
        log.warning(
            "NOTIFIER_TRUSTED_PROXIES=* believes X-Forwarded-For from any peer: any client "
            "can claim any address (and escape the sign-in limits) unless every connection "
            "comes through your proxy; list the proxy's addresses instead",
            extra={"action": "trusted_proxies_any"},
        )


class ForwardedHeaders:
    """ASGI middleware: forwarded headers believed from trusted proxies only, and a warning the
    first time a peer outside them sends some."""

    def __init__(self, app: ASGIApp, trusted: str) -> None:
        self.trusted = trusted
        self.proxies = ProxyHeadersMiddleware(app, trusted_hosts=trusted) if trusted else None  # type: ignore[arg-type]
        self.app = app
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peer = scope["client"][0] if scope.get("client") else None
            if peer is not None and any(name in FORWARDED for name, _ in scope["headers"]):
                self._check(peer)
        if self.proxies is not None:
            await self.proxies(scope, receive, send)  # type: ignore[arg-type]
        else:
            await self.app(scope, receive, send)

    def _check(self, peer: str) -> None:
        if self.proxies is not None and peer in self.proxies.trusted_hosts:
            return
        with self._lock:
            if peer in self._warned:
                return
            if len(self._warned) >= REMEMBERED_PEERS:
                self._warned.clear()
            self._warned.add(peer)
        log.warning(
            "forwarded headers from %s ignored: it is not in NOTIFIER_TRUSTED_PROXIES. Behind "
            "a proxy, list it there, or every client shares its address (and its sign-in "
            "limit)",
            peer,
            extra={"action": "forwarded_untrusted", "peer": peer},
        )


def client_ip(request: Request) -> str:
    """The caller's IP: the TCP peer, or the client a trusted proxy forwarded for."""
    return request.client.host if request.client else "unknown"
