"""``NOTIFIER_LOG_FORMAT=json`` at DEBUG during a broadcast that meets every failure quoting an
address back (the leak test's broadcast): every line is one JSON object of allow-listed fields,
and no fixture phone (five spellings), email or name is in any of them; the fan-out's counts are
counts (PostgreSQL reported -1 for an ``INSERT … SELECT``)."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from notifier.clock import FrozenClock
from notifier.logs import JSON_FIELDS, JsonFormatter, configure_logging
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.integration.test_no_patient_data_leaks import (
    NEEDLES,
    PATIENTS,
    broadcast_with_failures,
)
from tests.support.actors import OPERATOR
from tests.support.logs import LogLines, captured_log
from tests.support.web import Web, save_cova, served

ALWAYS = {"time", "level", "logger", "message"}


@pytest.fixture
def json_log() -> Iterator[LogLines]:
    """``NOTIFIER_LOG_LEVEL=DEBUG NOTIFIER_LOG_FORMAT=json`` as ``serve`` applies them."""
    with captured_log("DEBUG", "json") as capture:
        assert isinstance(capture.formatter, JsonFormatter)
        yield capture


@pytest.fixture
def web(
    json_log: LogLines,
    database_url: str,
    fake_twilio: FakeTwilio,
    fake_smtp: FakeSmtp,
    clock: FrozenClock,
) -> Iterator[Web]:
    with served(database_url, fake_twilio, fake_smtp, clock) as w:
        save_cova(w.app)
        w.app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS))
        yield w


def test_json_lines_at_debug_carry_no_patient_data(
    web: Web, fake_smtp: FakeSmtp, clock: FrozenClock, json_log: LogLines
) -> None:
    broadcast_with_failures(web, fake_smtp, clock)
    lines = [json.loads(line) for line in json_log.lines]
    assert len(lines) > 10
    actions = {line.get("action") for line in lines}
    assert {"broadcast_fired", "delivery_sent", "delivery_failed"} <= actions, actions
    for line in lines:
        assert set(line) <= ALWAYS | JSON_FIELDS, line
        assert set(line) >= ALWAYS
    text = "\n".join(json_log.lines)
    leaked = [needle for needle in NEEDLES if needle in text]
    assert leaked == [], leaked
    assert "\x1b[" not in text and "color_message" not in text


def test_the_fan_out_logs_counts_not_minus_one(
    web: Web, fake_smtp: FakeSmtp, clock: FrozenClock, json_log: LogLines
) -> None:
    notice = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova", starts="2025-02-19 12:30", ends="2025-02-21 00:00", reason="ice"
        ),
    )
    web.app.fanout.fire_due()
    fired = [json.loads(line) for line in json_log.lines if '"broadcast_fired"' in line]
    assert len(fired) == 1
    per_channel = Counter(d.channel for d in web.app.deliveries.log(OPERATOR, notice.id))
    assert fired[0]["deliveries"] == {"sms": per_channel["sms"], "email": per_channel["email"]}
    assert min(per_channel.values()) > 0


def test_scheduler_housekeeping_is_debug(json_log: LogLines) -> None:
    executor = logging.getLogger("apscheduler.executors.default")
    executor.info('Running job "dispatch" (scheduled at …)')
    executor.warning("Run time of job was missed by 0:00:03")
    lines = [json.loads(line) for line in json_log.lines]
    assert [(line["level"], line["message"][:11]) for line in lines] == [
        ("DEBUG", "Running job"),
        ("WARNING", "Run time of"),
    ]
    configure_logging("INFO", "json")
    json_log.lines.clear()
    logging.getLogger().addHandler(json_log)
    executor.info('Running job "dispatch" (scheduled at …)')
    assert json_log.lines == []
