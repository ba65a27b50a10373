"""The FastAPI application: routers, error mapping, health."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from notifier.bootstrap import App
from notifier.errors import NotFoundError, ValidationError
from notifier.web import api, api_imports, unsubscribe, webhooks
from notifier.web.console import router as console_router
from notifier.web.headers import SecurityHeaders
from notifier.web.limits import BodyLimits, body_rules


def create_app(app: App, receipts_stored: Callable[[], None] | None = None) -> FastAPI:
    web = FastAPI(
        title="Notifier",
        version="1",
        description="Closure notices for clinics: webhooks, unsubscribe links and the JSON API.",
    )
    web.state.app = app
    web.state.intake = app.intake(receipts_stored)  # closed by HttpServer.stop

    @web.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

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

    web.include_router(webhooks.router)
    web.include_router(unsubscribe.router)
    web.include_router(api.router)
    web.include_router(api_imports.router)
    web.include_router(console_router)
    # Outermost last: every answer, the limits' 413s and 401s too, gets the security headers.
    web.add_middleware(BodyLimits, rules=body_rules(app))
    docs = [url for url in (web.docs_url, web.redoc_url, web.swagger_ui_oauth2_redirect_url) if url]
    web.add_middleware(SecurityHeaders, settings=app.settings, docs_paths=docs)
    return web
