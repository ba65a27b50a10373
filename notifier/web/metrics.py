"""``GET /metrics`` in Prometheus' text format: this process's counters (``notifier.metrics``)
and the fleet-wide gauges read from the database at the scrape (``Health.gauges``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notifier import metrics
from notifier.bootstrap import App
from notifier.domain.deliveries import DeliveryState

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
DATABASE_UP = "1 when the database answered this scrape's queries (the other gauges need it)."


class DatabaseGauges(Collector):
    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.app.clock.now()
        try:
            g = self.app.health.gauges()
        except Exception:  # the database is away: say so; the process's counters still count
            log.warning("metrics: the database did not answer", extra={"action": "metrics_no_db"})
            yield GaugeMetricFamily("notifier_database_up", DATABASE_UP, value=0)
            return
        yield GaugeMetricFamily("notifier_database_up", DATABASE_UP, value=1)
        deliveries = GaugeMetricFamily(
            "notifier_deliveries",
            "Deliveries in the database by channel and state (all processes).",
            labels=["channel", "state"],
        )
        channels = sorted({channel for channel, _ in g.deliveries} | set(self.app.deps.channels))
        for channel in channels:
            for state in DeliveryState:
                deliveries.add_metric([channel, state.value], g.deliveries.get((channel, state), 0))
        yield deliveries
        queue = GaugeMetricFamily(
            "notifier_queue_depth",
            "Open deliveries: due now, waiting for a later attempt, or in a worker's hands.",
            labels=["state"],
        )
        for name, count in (("due", g.due), ("waiting", g.waiting), ("sending", g.sending)):
            queue.add_metric([name], count)
        yield queue
        yield GaugeMetricFamily(
            "notifier_oldest_due_delivery_age_seconds",
            "How long the longest-waiting due delivery has been due (0: none due).",
            value=_age(now, g.oldest_due),
        )
        broadcasts = GaugeMetricFamily(
            "notifier_broadcasts", "Broadcasts by status.", labels=["status"]
        )
        for status, count in sorted(g.broadcasts.items()):
            broadcasts.add_metric([status], count)
        yield broadcasts
        yield GaugeMetricFamily(
            "notifier_oldest_sending_broadcast_age_seconds",
            "How long the longest-running broadcast has been sending (0: none).",
            value=_age(now, g.oldest_sending),
        )
        if g.last_completion_seconds is not None:
            yield GaugeMetricFamily(
                "notifier_last_broadcast_completion_seconds",
                "The latest finished broadcast: from its send time to its last final delivery.",
                value=g.last_completion_seconds,
            )
        waiting = GaugeMetricFamily(
            "notifier_replies_waiting",
            "Patients' texts unanswered longer than NOTIFIER_REPLY_WAITING_MINUTES of business "
            "hours, by location ('-': a number no location has).",
            labels=["location"],
        )
        for slug, count in sorted(self.app.replies.waiting_counts().items()):
            waiting.add_metric([slug or "-"], count)
        yield waiting


def _age(now: datetime, since: datetime | None) -> float:
    """Seconds since ``since``; 0 when there is nothing (or a clock behind it)."""
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


@router.get("/metrics", response_class=Response, include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics: this process's counters and the database's gauges."""
    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(DatabaseGauges(request.app.state.app))
    body = generate_latest(metrics.REGISTRY) + generate_latest(fleet)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
