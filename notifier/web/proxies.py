"""Who is calling: the client's address and scheme as the app may believe them.

uvicorn rewrites the client address and scheme from ``X-Forwarded-For``/``-Proto`` only when
the connection comes from ``NOTIFIER_TRUSTED_PROXIES`` (default: nobody, so a client cannot
claim another address or https); everything else reads the already-checked values.
"""

from __future__ import annotations

from typing import TypedDict

from starlette.requests import Request

from notifier.settings import Settings


class ProxyOptions(TypedDict):
    proxy_headers: bool
    forwarded_allow_ips: str


def proxy_options(settings: Settings) -> ProxyOptions:
    """uvicorn's forwarded-header options: off unless trusted proxies are configured."""
    trusted = settings.trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def client_ip(request: Request) -> str:
    """The caller's IP: the TCP peer, or the client a trusted proxy forwarded for."""
    return request.client.host if request.client else "unknown"
