"""The scheduled jobs, wired to APScheduler 3.

The database says what is due; APScheduler only says *when to look*. Jobs are module-level
functions with fixed ids and ``replace_existing=True``, so the scheduler's state can always be
rebuilt from nothing: after a restart, the first run of each job finds whatever became due while
the service was down.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from notifier import store
from notifier.bootstrap import App
from notifier.dispatcher import Dispatcher
from notifier.fanout import finish_broadcasts, fire_due_broadcasts

log = logging.getLogger(__name__)

_runtime: dict[str, object] = {}
_runtime_lock = threading.Lock()


def fire_broadcasts() -> None:
    """Fan out broadcasts whose send time has come, then wake the dispatcher."""
    app = _app()
    if fire_due_broadcasts(app.db, app.clock, app.settings, app.renderer):
        # APScheduler runs on real time; the app clock (possibly shifted) only says what is due.
        job = _scheduler().get_job("dispatch")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))
    _wake_at_next_due(app)


def _wake_at_next_due(app: App) -> None:
    """A broadcast due before the next poll gets a one-off run at its due time, so it is not up
    to a whole poll interval late (measured: p95 lag 1.24 s with a 1 s interval without this)."""
    with app.db.session() as s:
        due = store.next_send_at(s)
    if due is None:
        return
    wait = (due - app.clock.now()).total_seconds()
    if 0 < wait <= app.settings.poll_interval_seconds:
        _scheduler().add_job(
            fire_broadcasts,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=wait),
            id="fire_at_due",
            replace_existing=True,
            misfire_grace_time=None,
        )


def dispatch() -> None:
    """Send everything due; runs until the queue is empty (one instance at a time)."""
    app = _app()
    _dispatcher().drain()
    finish_broadcasts(app.db, app.clock)


ROLES = ("all", "scheduler", "worker")


def configure(app: App, dispatcher: Dispatcher | None, role: str = "all") -> BackgroundScheduler:
    """Build the scheduler with the jobs of ``role``; the caller starts and stops it.

    ``scheduler`` fires due broadcasts (fan-out), ``worker`` sends, ``all`` does both. Any number
    of either may run against one database: firing is a conditional UPDATE that exactly one
    process wins, and deliveries are claimed with ``FOR UPDATE SKIP LOCKED``.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    scheduler = BackgroundScheduler(timezone="UTC")
    with _runtime_lock:
        _runtime.update(app=app, dispatcher=dispatcher, scheduler=scheduler)
    interval = app.settings.poll_interval_seconds
    common = {
        "replace_existing": True,
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": None,
    }
    if role in ("all", "scheduler"):
        scheduler.add_job(
            fire_broadcasts, "interval", seconds=interval, id="fire_broadcasts", **common
        )
    if role in ("all", "worker"):
        if dispatcher is None:
            raise ValueError("a worker needs a dispatcher")
        scheduler.add_job(dispatch, "interval", seconds=interval, id="dispatch", **common)
    return scheduler


def _app() -> App:
    return _runtime["app"]  # type: ignore[return-value]


def _dispatcher() -> Dispatcher:
    dispatcher = _runtime["dispatcher"]
    assert isinstance(dispatcher, Dispatcher), "dispatch runs only in the worker role"
    return dispatcher


def _scheduler() -> BackgroundScheduler:
    return _runtime["scheduler"]  # type: ignore[return-value]
