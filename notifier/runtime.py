"""The running service: the scheduler's jobs, the dispatcher, the heartbeat, and the HTTP server
in one process (``notifier serve``), started and stopped in the right order.

Stopping: the dispatcher stops claiming first, so sends already at the provider finish and are
recorded and claimed-but-unsent deliveries are handed back; then the scheduler, the HTTP server,
and this worker's heartbeat row. ``run`` with ``until_idle`` returns once nothing is scheduled or
waiting (the demo, tests, benchmarks and ``serve --until-idle`` share it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from types import TracebackType

from notifier import jobs
from notifier.bootstrap import App
from notifier.channels import Channel
from notifier.delivery.dispatcher import new_worker_id
from notifier.web.server import HttpServer

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        app: App,
        role: str = "all",
        *,
        channels: Mapping[str, Channel] | None = None,
        http: bool = False,
        worker_id: str | None = None,
    ) -> None:
        if role not in jobs.ROLES:
            raise ValueError(f"role must be one of {', '.join(jobs.ROLES)}")
        self.app = app
        self.role = role
        self.worker_id = worker_id or new_worker_id()
        sends = role in ("all", "worker")
        self.dispatcher = app.dispatcher(channels, self.worker_id) if sends else None
        held = self.dispatcher.held if self.dispatcher is not None else list
        self.workers = app.workers(self.worker_id, role, held)
        self.scheduler = jobs.configure(app, self.dispatcher, self.workers, role)
        settings = app.settings
        applies = sends  # this process applies the reports its webhook stores: wake it for them
        wake = jobs.receipts_stored if applies else None
        if sends:  # answers queued by this process's web requests: sent now, not at the poll
            app.replies.on_queued = jobs.answers_queued
        self.http = HttpServer(app, settings.http_host, settings.http_port, wake) if http else None

    def start(self) -> Runtime:
        if self.http is not None:
            self.http.start()
        self.scheduler.start()
        log.info(
            "notifier serving",
            extra={"action": "serving", "role": self.role, "worker": self.worker_id},
        )
        return self

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        until_idle: bool = False,
        timeout: float | None = None,
    ) -> bool:
        """Serve until ``stop`` is set, or (``until_idle``) nothing is left to do, or
        ``timeout`` seconds pass; True when it went idle."""
        stop = stop or threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stop.wait(self.app.settings.poll_interval_seconds):
            if until_idle and self.app.health.idle():
                log.info("nothing scheduled or waiting: exiting (--until-idle)")
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
        return False

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.scheduler.shutdown(wait=True)
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.http is not None:
            self.http.stop()
        try:
            self.workers.leave()
        except Exception:  # the heartbeat row goes stale and is forgotten by the others
            log.warning("could not sign this worker off", extra={"action": "worker_leave_failed"})
        log.info("notifier stopped", extra={"action": "stopped", "worker": self.worker_id})

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def run_once(
    app: App, channels: Mapping[str, Channel] | None = None, worker_id: str | None = None
) -> int:
    """One tick of the service's jobs, in this thread: fire what is due, send everything due
    now (answers and auto-replies too), mark finished broadcasts done; how many deliveries
    were handled. For a frozen clock (tests, benchmarks), where the scheduler's real-time
    ticks do not apply."""
    app.fanout.fire_due()
    dispatcher = app.dispatcher(channels, worker_id)
    try:
        handled = dispatcher.drain()
        app.answers(dispatcher.channels, dispatcher.worker_id).drain()
    finally:
        dispatcher.close()
    app.fanout.finish()
    return handled


def run_until_idle(
    app: App,
    channels: Mapping[str, Channel] | None = None,
    timeout: float = 60.0,
    role: str = "all",
) -> bool:
    """Run the real service (scheduler, dispatcher, heartbeat) until nothing is left to do;
    True if it got there within ``timeout`` seconds."""
    with Runtime(app, role, channels=channels) as runtime:
        return runtime.run(until_idle=True, timeout=timeout)
