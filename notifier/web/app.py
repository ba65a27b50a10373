"""The FastAPI application: routers, error mapping, health."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from notifier.bootstrap import App
from notifier.errors import ForbiddenError, NotFoundError, ValidationError
from notifier.web import (
    api,
    api_imports,
    api_replies,
    calls,
    metrics,
    public,
    unsubscribe,
    webhooks,
)
from notifier.web.console import router as console_router
from notifier.web.docs import add_docs
from notifier.web.headers import SecurityHeaders
from notifier.web.invalid import invalid_request
from notifier.web.limits import BodyLimits, body_rules
from notifier.web.proxies import ForwardedHeaders, warn_if_any_peer_trusted
from notifier.web.status_lane import StatusLane

log = logging.getLogger(__name__)


def create_app(app: App, receipts_stored: Callable[[], None] | None = None) -> FastAPI:
    web = FastAPI(
        title="Notifier",
        version="1",
        description="Closure notices for clinics: webhooks, unsubscribe links and the JSON API.",
        docs_url=None,  # web.docs: off unless NOTIFIER_API_DOCS, then from local assets
        redoc_url=None,
    )
    web.state.app = app
    web.state.intake = app.intake(receipts_stored)  # closed by HttpServer.stop

    web.add_exception_handler(RequestValidationError, invalid_request)

    @web.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _exc: ClientDisconnect) -> Response:
        """The client hung up before its body was read: one line, not a traceback."""
        log.info(
            "client disconnected before its request was read",
            extra={"action": "http_client_disconnect", "area": request.url.path.split("/")[1]},
        )
        return Response(status_code=400)

    @web.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @web.exception_handler(ForbiddenError)
    async def _forbidden(_request: Request, exc: ForbiddenError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @web.exception_handler(ValidationError)
    async def _invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)

    @web.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @web.get("/readyz", tags=["health"], responses={503: {"description": "database unreachable"}})
    def readyz() -> JSONResponse:
        """The database answers."""
        try:
            app.health.ready()
        except Exception as exc:  # any driver error means "not ready"
            return JSONResponse(
                {"status": "unavailable", "detail": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    web.include_router(metrics.router)
    web.include_router(webhooks.router)
    web.include_router(calls.router)
    web.include_router(unsubscribe.router)
    web.include_router(api.router)
    web.include_router(api_imports.router)
    web.include_router(api_replies.router)
    web.include_router(public.router)
    web.include_router(console_router)
    add_docs(web, app.settings.api_docs)
    # Outermost last: every answer, the limits' 413s and 401s too, gets the security headers.
    web.add_middleware(StatusLane, settings=app.settings, intake=web.state.intake)
    web.add_middleware(BodyLimits, rules=body_rules(app))
    web.add_middleware(SecurityHeaders, settings=app.settings)
    web.add_middleware(ForwardedHeaders, trusted=app.settings.trusted_proxies)
    warn_if_any_peer_trusted(app.settings.trusted_proxies)
    return web
