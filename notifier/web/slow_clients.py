"""Slow clients are cut off: uvicorn's HTTP/1.1 protocol (h11) with read deadlines.

uvicorn times out an idle keep-alive connection but not a request that arrives slowly: a client
sending its headers or body one byte every few seconds (slowloris) held a connection, and the
worker thread behind it, for as long as it liked. Here a connection must deliver a request's
headers within ``NOTIFIER_HTTP_HEADER_TIMEOUT_SECONDS`` of opening (or of the previous
response), and its body within ``NOTIFIER_HTTP_BODY_TIMEOUT_SECONDS`` of the headers; otherwise
it is closed, with one line in the log. ``NOTIFIER_HTTP_MAX_CONNECTIONS`` (uvicorn's
``limit_concurrency``) answers 503 beyond that many connections. A proxy in front should apply
its own (nginx: ``client_header_timeout``, ``client_body_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class DeadlineProtocol(H11Protocol):
    header_seconds = 10.0
    body_seconds = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Which part of a request we are waiting for, if any."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body")
        elif state is h11.IDLE and self.timeout_keep_alive_task is None:
            self._arm("headers")  # a request has begun, or nothing else watches the connection
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("headers")
        else:
            self._arm(None)

    def _arm(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            seconds = self.header_seconds if phase == "headers" else self.body_seconds
            self._deadline = self.loop.call_later(seconds, self._cut, phase, seconds)

    def _cut(self, phase: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info(
            "connection closed: the client's request %s took longer than %g s",
            phase,
            seconds,
            extra={"action": "http_slow_client", "phase": phase},
        )
        self.transport.close()


def deadline_protocol(header_seconds: float, body_seconds: float) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's ``http=`` with these deadlines."""
    return type(
        "ConfiguredDeadlineProtocol",
        (DeadlineProtocol,),
        {"header_seconds": header_seconds, "body_seconds": body_seconds},
    )
