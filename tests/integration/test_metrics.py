"""``/metrics`` scraped during and after a broadcast says what the delivery log says: the gauges
read from the database match it exactly, and this process's counters grew by what it sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.web import Web, new_message_sid

CHANNELS = ("sms", "email")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(web: Web) -> Samples:
    answer = web.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def by_labels(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def log_counts(web: Web) -> Counter[tuple[str, str]]:
    return Counter((d.channel, d.state) for d in web.app.deliveries.log(OPERATOR))


def settled(web: Web) -> tuple[Samples, Counter[tuple[str, str]]]:
    """A scrape and the delivery log read around it, once no status callback (the Twilio
    server's, arriving on their own) changed the log in between."""
    for _ in range(100):
        first = log_counts(web)
        samples = scrape(web)
        if log_counts(web) == first:
            return samples, first
    raise AssertionError("the delivery log kept changing")


def delta(before: Samples, after: Samples, name: str) -> Callable[..., float]:
    return lambda **labels: value(after, name, **labels) - value(before, name, **labels)


def test_metrics_during_and_after_a_broadcast_match_the_delivery_log(
    web: Web, clock: FrozenClock
) -> None:
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
        ),
    )
    web.app.fanout.fire_due()
    clock.advance(42)  # the queue has waited 42 s when it is scraped

    during = scrape(web)
    counts = log_counts(web)
    pending = sum(n for (_, state), n in counts.items() if state == "pending")
    assert pending > 0
    assert value(during, "notifier_queue_depth", state="due") == pending
    assert value(during, "notifier_queue_depth", state="sending") == 0
    assert value(during, "notifier_oldest_due_delivery_age_seconds") == 42
    assert value(during, "notifier_broadcasts", status="sending") == 1
    assert value(during, "notifier_oldest_sending_broadcast_age_seconds") == 42
    for (channel, state), n in counts.items():
        assert value(during, "notifier_deliveries", channel=channel, state=state) == n
    assert sum(by_labels(during, "notifier_deliveries").values()) == sum(counts.values())

    run_once(web.app)
    after, counts = settled(web)
    told = {c: sum(counts[(c, s)] for s in ("sent", "delivered", "undelivered")) for c in CHANNELS}
    assert told["sms"] > 0 and told["email"] > 0
    for (channel, state), n in counts.items():
        assert value(after, "notifier_deliveries", channel=channel, state=state) == n
    assert value(after, "notifier_queue_depth", state="due") == 0
    assert value(after, "notifier_oldest_due_delivery_age_seconds") == 0
    assert value(after, "notifier_broadcasts", status="done") == 1
    assert value(after, "notifier_database_up") == 1
    assert value(after, "notifier_last_broadcast_completion_seconds") >= 0

    # This process's counters (shared with other tests in it: compare the growth).
    outcomes = delta(during, after, "notifier_delivery_outcomes_total")
    requests = delta(during, after, "notifier_provider_request_seconds_count")
    for channel in CHANNELS:
        assert outcomes(channel=channel, state="sent") == told[channel]
        assert requests(channel=channel, result="ok") == told[channel]
        assert requests(channel=channel, result="error") == 0


def test_webhook_requests_are_counted_by_result(web: Web) -> None:
    before = scrape(web)
    params = {"MessageSid": new_message_sid(), "MessageStatus": "delivered"}
    assert web.signed_post("/webhooks/twilio/status", params).status_code == 200
    assert web.signed_post("/webhooks/twilio/status", params, token="x" * 32).status_code == 403
    assert web.inbound("HELLO", "+15405550111")[0] == 200
    after = scrape(web)
    requests = delta(before, after, "notifier_webhook_requests_total")
    assert requests(webhook="status", result="accepted") == 1
    assert requests(webhook="status", result="bad_signature") == 1
    assert requests(webhook="inbound", result="accepted") == 1


def test_labels_are_bounded_no_address_or_id(web: Web) -> None:
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
        ),
    )
    web.app.fanout.fire_due()
    run_once(web.app)
    text = web.client.get("/metrics").text
    assert "@" not in text and "+1540" not in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= {"channel", "state", "result", "webhook", "reason",
                                          "status", "le"}, sample  # fmt: skip


def test_without_the_database_the_counters_still_answer(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away() -> None:
        raise OperationalError("SELECT …", {}, Exception("server closed the connection"))

    monkeypatch.setattr(web.app.health, "gauges", away)
    samples = scrape(web)
    assert value(samples, "notifier_database_up") == 0
    assert ("notifier_queue_depth", (("state", "due"),)) not in samples
    assert any(name.startswith("process_") for name, _ in samples)
