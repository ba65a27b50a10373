"""The interactive API docs (Swagger UI at ``/docs``): off unless ``NOTIFIER_API_DOCS=true``,
and then served from this server, never from a CDN.

FastAPI's own ``/docs`` and ``/redoc`` load unpinned scripts from a CDN, without subresource
integrity, on the console's origin: whoever serves that script could act as a signed-in
manager. Here the page, its script and its styles come from the ``swagger-ui-bundle`` package
(Swagger UI, vendored), and the page runs under the same policy as the console (our own
scripts only: no inline script). ReDoc has no packaged copy, so ``/redoc`` stays off.
``/openapi.json`` (the schema itself) is always served.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

log = logging.getLogger(__name__)
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Notifier API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script></body></html>
"""
START = 'SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}


def swagger_ui_dir() -> Path | None:
    try:
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def add_docs(web: FastAPI, enabled: bool) -> None:
    """Serve ``/docs`` from local assets when ``enabled`` and the assets are installed."""
    if not enabled:
        return
    assets = swagger_ui_dir()
    if assets is None:
        log.warning(
            "NOTIFIER_API_DOCS=true but the swagger-ui-bundle package is not installed: "
            "/docs stays off (/openapi.json is served)",
            extra={"action": "api_docs_missing"},
        )
        return

    @web.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @web.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name == "start.js":
            return Response(START, media_type="text/javascript")
        if name not in ASSETS:
            return Response(status_code=404)
        return FileResponse(assets / name, media_type=ASSETS[name])
