"""The scheduled jobs, wired to APScheduler 3.

The database says what is due; APScheduler only says *when to look*. Jobs are module-level
functions with fixed ids and ``replace_existing=True``, so the scheduler's state can always be
rebuilt from nothing: after a restart, the first run of each job finds whatever became due while
the service was down. A job's exception is only logged by APScheduler; each job keeps its own
fault boundaries (per broadcast, per delivery), so one bad row never stops a job.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from notifier.bootstrap import App
from notifier.delivery import faults
from notifier.delivery.answers import AnswerSender
from notifier.delivery.dispatcher import Dispatcher
from notifier.delivery.reconcile import Reconciler
from notifier.delivery.workers import Workers

log = logging.getLogger(__name__)

ROLES = ("all", "scheduler", "worker")
RECEIPT_BATCHES_PER_RUN = 20
RECONCILE_SECONDS = 60.0
RETENTION_SECONDS = 3600.0  # the retention job: hourly (and once at start)


@dataclass
class _Runtime:
    app: App
    scheduler: BackgroundScheduler
    workers: Workers
    dispatcher: Dispatcher | None
    reconciler: Reconciler | None
    answers: AnswerSender | None


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()
_woken = threading.Event()  # a wake-up for apply_receipts is on its way
_applying = threading.Event()


def fire_broadcasts() -> None:
    """Fan out broadcasts whose send time has come, then wake the dispatcher."""
    runtime = _current()
    if runtime.app.fanout.fire_due():
        # APScheduler runs on real time; the app clock (possibly shifted) only says what is due.
        job = runtime.scheduler.get_job("dispatch")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))
    _wake_at_next_due(runtime)


def _wake_at_next_due(runtime: _Runtime) -> None:
    """A broadcast due before the next poll gets a one-off run at its due time, so it is not up
    to a whole poll interval late (measured: p95 lag 1.24 s with a 1 s interval without this)."""
    app = runtime.app
    due = app.fanout.next_due()
    if due is None:
        return
    wait = (due - app.clock.now()).total_seconds()
    if 0 < wait <= app.settings.poll_interval_seconds:
        runtime.scheduler.add_job(
            fire_broadcasts,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=wait),
            id="fire_at_due",
            replace_existing=True,
            misfire_grace_time=None,
        )


def dispatch() -> None:
    """Send everything due; runs until the queue is empty (one instance at a time)."""
    runtime = _current()
    assert runtime.dispatcher is not None, "dispatch runs only in the worker role"
    runtime.dispatcher.drain()
    runtime.app.fanout.finish()


def send_answers() -> None:
    """Send queued staff answers and closure auto-replies (retries, claims of dead workers)."""
    runtime = _current()
    assert runtime.answers is not None, "send_answers runs only in the worker role"
    try:
        runtime.answers.drain()
    except Exception as error:  # the next run finds what is still queued
        faults.log_failure(log, "sending answers failed", error, action="replies_send_failed")


def answers_queued() -> None:
    """An answer or auto-reply was queued: send it now rather than at the next poll."""
    runtime = _runtime
    job = runtime.scheduler.get_job("send_answers") if runtime is not None else None
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))


def receipts_stored() -> None:
    """The webhook stored reports: apply them now rather than at the next poll (one wake-up
    at a time, however many commits ask for it; none while a run is draining, which finds
    them itself: APScheduler would skip and warn)."""
    if _woken.is_set() or _applying.is_set():
        return
    _woken.set()
    runtime = _runtime
    job = runtime.scheduler.get_job("apply_receipts") if runtime is not None else None
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))


def apply_receipts() -> None:
    """Apply stored delivery reports, batch after batch, until none is due (a bounded number
    per run, so a shutdown never waits long; the next run goes on)."""
    _applying.set()
    _woken.clear()
    deliveries = _current().app.deliveries
    try:
        for _ in range(RECEIPT_BATCHES_PER_RUN):
            if not deliveries.apply_received():
                return
    except Exception as error:  # the batch rolled back: its reports stay for the next run
        log_level = logging.WARNING if faults.is_transient(error) else logging.ERROR
        log.log(
            log_level,
            "could not apply delivery reports: %s",
            faults.reason("applying reports", error),
            extra={"action": "receipts_apply_failed"},
        )
    finally:
        _applying.clear()


def reconcile() -> None:
    """Ask the providers about deliveries left "sent"; forget long-applied reports."""
    runtime = _current()
    assert runtime.reconciler is not None, "reconcile runs only in the worker role"
    try:
        runtime.reconciler.run()
        runtime.app.deliveries.purge_receipts()
    except Exception as error:
        faults.log_failure(log, "reconciliation failed", error, action="reconcile_failed")


def retention() -> None:
    """Erase what is older than NOTIFIER_RETENTION_DAYS (at start, then hourly)."""
    try:
        _current().app.retention.run()
    except Exception as error:  # the run rolled back: the next one erases it
        faults.log_failure(log, "retention run failed", error, action="retention_failed")


def heartbeat() -> None:
    """Say this process is alive, then take over what dead workers held (on its own schedule,
    whatever the queue is doing)."""
    _current().workers.tick()


def configure(
    app: App, dispatcher: Dispatcher | None, workers: Workers, role: str = "all"
) -> BackgroundScheduler:
    """Build the scheduler with the jobs of ``role``; the caller starts and stops it.

    ``scheduler`` fires due broadcasts (fan-out), ``worker`` sends (notices' deliveries, staff
    answers and auto-replies) and applies delivery reports (and asks providers about the ones
    that never came), ``all`` does both; every
    role beats and takes over dead workers' claims. Any number of each may run against one
    database: firing is a conditional UPDATE that exactly one process wins, and deliveries are
    claimed with ``FOR UPDATE SKIP LOCKED``.
    """
    global _runtime
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in ("all", "worker") and dispatcher is None:
        raise ValueError("a worker needs a dispatcher")
    scheduler = BackgroundScheduler(timezone="UTC")
    reconciler = app.reconciler(dispatcher.channels) if dispatcher is not None else None
    answers = (
        app.answers(dispatcher.channels, dispatcher.worker_id) if dispatcher is not None else None
    )
    with _runtime_lock:
        _runtime = _Runtime(app, scheduler, workers, dispatcher, reconciler, answers)
    common = {
        "replace_existing": True,
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": None,
    }
    interval = app.settings.poll_interval_seconds
    scheduler.add_job(
        heartbeat,
        "interval",
        seconds=app.settings.heartbeat_seconds,
        id="heartbeat",
        next_run_time=datetime.now(UTC),
        **common,
    )
    if role in ("all", "scheduler"):
        scheduler.add_job(
            fire_broadcasts, "interval", seconds=interval, id="fire_broadcasts", **common
        )
        scheduler.add_job(
            retention,
            "interval",
            seconds=RETENTION_SECONDS,
            id="retention",
            next_run_time=datetime.now(UTC),
            **common,
        )
    if role in ("all", "worker"):
        scheduler.add_job(dispatch, "interval", seconds=interval, id="dispatch", **common)
        scheduler.add_job(
            apply_receipts, "interval", seconds=interval, id="apply_receipts", **common
        )
        scheduler.add_job(
            reconcile, "interval", seconds=RECONCILE_SECONDS, id="reconcile", **common
        )
        scheduler.add_job(send_answers, "interval", seconds=interval, id="send_answers", **common)
    return scheduler


def _current() -> _Runtime:
    runtime = _runtime
    assert runtime is not None, "jobs.configure was not called"
    return runtime
