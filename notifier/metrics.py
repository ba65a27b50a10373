"""Prometheus metrics: process-local counters fed by one-line hooks, beside the gauges the web
layer reads from the database at scrape time (``notifier.web.metrics``).

Why not prometheus_client's multiprocess mode: it shares files between processes forked on one
host, while Notifier's processes (a scheduler, workers) run on several hosts and restart on their
own. So each number comes from where it is true:

- what the database knows — deliveries by channel and state, the queue by state, the age of the
  oldest due delivery, broadcasts by status, how long the last broadcast took — is counted from
  it at every scrape: every process reports the same fleet-wide values (scrape one, or ``max``);
- what only a process sees — provider request latency, rate-limit waits, webhook requests,
  lease recoveries, the outcomes it recorded — is counted by that process (``sum`` across the
  processes of a job; counters restart at zero with a process, which ``rate``/``increase``
  handle).

Labels are bounded: channel names (the registry), states, fixed words; never an id or address.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

DELIVERY_OUTCOMES = Counter(
    "notifier_delivery_outcomes",
    "Delivery outcomes this process recorded, by channel and resulting state.",
    ["channel", "state"],
    registry=REGISTRY,
)
PROVIDER_SECONDS = Histogram(
    "notifier_provider_request_seconds",
    "Time of one provider request (Twilio, SMTP) made by this process.",
    ["channel", "result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "notifier_rate_limit_waits",
    "Sends that waited for the channel's rate limiter in this process.",
    ["channel"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "notifier_rate_limit_wait_seconds",
    "Seconds sends waited for the channel's rate limiter in this process.",
    ["channel"],
    registry=REGISTRY,
)
WEBHOOK_REQUESTS = Counter(
    "notifier_webhook_requests",
    "Twilio webhook requests this process answered, by webhook and result.",
    ["webhook", "result"],
    registry=REGISTRY,
)
LEASE_RECOVERIES = Counter(
    "notifier_lease_recoveries",
    "Deliveries this process took back from a stopped worker or a run-out lease.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOKS = ("status", "inbound")
WEBHOOK_RESULTS = ("accepted", "bad_signature", "unconfigured")


# Children by labels, looked up once: ``labels()`` takes a lock and checks its arguments on
# every call, and two of these run per message sent.
_OUTCOMES: dict[tuple[str, str], Counter] = {}
_PROVIDER: dict[tuple[str, str], Histogram] = {}


def delivery_outcome(channel: str, state: str) -> None:
    child = _OUTCOMES.get((channel, state))
    if child is None:
        child = _OUTCOMES[(channel, state)] = DELIVERY_OUTCOMES.labels(channel, state)
    child.inc()


@contextmanager
def provider_request(channel: str) -> Iterator[None]:
    """Time the provider request inside; ``result`` is ``error`` when it raised."""
    started = perf_counter()
    result = "error"
    try:
        yield
        result = "ok"
    finally:
        child = _PROVIDER.get((channel, result))
        if child is None:
            child = _PROVIDER[(channel, result)] = PROVIDER_SECONDS.labels(channel, result)
        child.observe(perf_counter() - started)


def rate_limit_wait(channel: str, seconds: float) -> None:
    if seconds > 0:
        RATE_LIMIT_WAITS.labels(channel).inc()
        RATE_LIMIT_WAIT_SECONDS.labels(channel).inc(seconds)


def webhook_request(path: str, result: str) -> None:
    """One webhook answer; ``path`` ends with the webhook's name (``/webhooks/twilio/status``)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    WEBHOOK_REQUESTS.labels(name if name in WEBHOOKS else "other", result).inc()


def lease_recoveries(reason: str, count: int = 1) -> None:
    if count:
        LEASE_RECOVERIES.labels(reason).inc(count)
