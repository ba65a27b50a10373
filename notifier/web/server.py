"""Running the HTTP service beside the scheduler: uvicorn in a thread of ``notifier serve``.

The main thread keeps the signal handlers, so SIGTERM still stops the dispatcher gracefully
(in-flight sends finish); the HTTP server is told to exit after that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import uvicorn

from notifier.bootstrap import App
from notifier.errors import ConfigurationError
from notifier.web.app import create_app
from notifier.web.headers import SecurityHeaders
from notifier.web.slow_clients import deadline_protocol

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        receipts_stored: Callable[[], None] | None = None,
    ) -> None:
        self.web = create_app(app, receipts_stored)
        s = app.settings
        # Once more outside Starlette's error middleware (which sits outside every middleware we
        # add): the 500 it sends for an unhandled exception carries the security headers too.
        outer = SecurityHeaders(self.web, s)
        config = uvicorn.Config(
            outer,
            host=host,
            port=port,
            log_config=None,  # our logging, not uvicorn's (it would log query strings)
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # the app's own web.proxies.ForwardedHeaders does it
            http=deadline_protocol(s.http_header_timeout_seconds, s.http_body_timeout_seconds),
            limit_concurrency=s.http_max_connections,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    "the HTTP server did not start (is NOTIFIER_HTTP_HOST/NOTIFIER_HTTP_PORT "
                    "free and valid?)"
                )
            time.sleep(0.02)
        log.info("HTTP service listening", extra={"action": "http_started", "url": self.url})

    @property
    def port(self) -> int:
        servers = self._server.servers
        return int(servers[0].sockets[0].getsockname()[1]) if servers else 0

    @property
    def url(self) -> str:
        host = self._server.config.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self.web.state.intake.close()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
