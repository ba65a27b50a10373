"""Re-queueing failed deliveries on request, and the completion estimate shown before a send."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifier.bootstrap import App
from notifier.channels.base import SendResult
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.domain.senders import parse_pool, share_out
from notifier.runtime import run_once
from notifier.storage import reports
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER, patients_csv, phone


def notice(app: App, patients: int, channels: str = "sms") -> int:
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(patients)))
    return app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=tuple(channels.split(",")),
        ),
    ).id


def test_failed_deliveries_are_requeued_on_request_keeping_their_attempts(
    app: App, cova: str, fake_twilio: FakeTwilio
) -> None:
    rule = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
    fake_twilio.fault(match={"to": phone(0)}, times=1, response=rule)
    notice_id = notice(app, 2)
    app.fanout.fire_due()
    run_once(app)
    assert [d.state for d in app.deliveries.log(OPERATOR, notice_id, "failed")] == ["failed"]

    assert app.deliveries.retry_failed(OPERATOR, notice_id) == 1
    run_once(app)
    log = app.deliveries.log(OPERATOR, notice_id)
    assert sorted((d.state, d.attempts) for d in log) == [("sent", 1), ("sent", 2)]
    assert len(fake_twilio.received_creates()) == 2
    with app.db.session() as s:
        retried = [
            d.id for d in reports.delivery_log(s, reports.LogQuery(notice_id)) if d.attempts == 2
        ]
        kinds = [e.kind for e in reports.events_for(s, retried)]
    assert kinds == ["queued", "failed", "retry_requested", "sent"]
    assert app.deliveries.retry_failed(OPERATOR, notice_id) == 0  # nothing failed any more


def test_no_retry_for_a_cancelled_notice_or_an_ended_closure(
    app: App, cova: str, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    fake_twilio.fault(match=None, times=None, response={"status": 400, "code": 21211})
    cancelled = notice(app, 1)
    app.fanout.fire_due()
    run_once(app)
    app.notices.cancel(OPERATOR, cancelled)
    assert app.deliveries.retry_failed(OPERATOR, cancelled) == 0
    ended = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova", starts="2025-02-19 12:30", ends="2025-02-21 00:00", reason="ice"
        ),
    ).id
    app.fanout.fire_due()
    run_once(app)
    clock.advance(3 * 24 * 3600)
    assert app.deliveries.retry_failed(OPERATOR) == 0
    assert {d.state for d in app.deliveries.log(OPERATOR, ended) if d.channel == "sms"} == {
        "failed"
    }


@pytest.mark.parametrize(("patients", "rate", "warned"), [(50, 10.0, False), (50, 0.002, True)])
def test_the_preview_estimates_the_sending_time_and_warns_past_the_queue_window(
    app: App, cova: str, patients: int, rate: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app.settings.sms_rate_per_second = rate
    notice_id = notice(app, patients, channels="sms,email")
    preview = app.previews.of_notice(OPERATOR, notice_id)
    segments = preview.messages["sms"][0].segments
    assert preview.estimated_seconds["sms"] == pytest.approx(patients * segments / rate, rel=0.01)
    assert preview.estimated_seconds["email"] == pytest.approx(patients / 10.0)
    window_warnings = [w for w in preview.warnings if "queues" in w]
    assert bool(window_warnings) is warned
    with caplog.at_level(logging.WARNING, logger="notifier.delivery.fanout"):
        app.fanout.fire_due()
    assert any(r.__dict__.get("action") == "broadcast_too_long" for r in caplog.records) is warned


MIXED = f"""{HEADER}
m1,Al,Short,{phone(1)},,en,cova,yes,no
m2,Bartholomew-Maximilian-Alexander,Long,{phone(2)},,en,cova,yes,no
m3,Zoë,Ucs,{phone(3)},,en,cova,yes,no
m4,José,Ucs,{phone(4)},,es,cova,yes,no
m5,Al,Twin,{phone(5)},,en,cova,yes,no
"""
"""Names that change a text's length and alphabet: a long one, ones that force UCS-2."""
APPOINTMENT = (
    "external_id,patient_external_id,location,starts_at,duration_minutes,provider,status\n"
    "x1,m1,cova,2025-02-20 10:30,30,Dr. Bartholomew Featherstonehaugh-Smythe,scheduled\n"
    "x2,m1,cova,2025-02-20 14:00,30,Dr. Patel,confirmed\n"
)


def test_the_estimate_counts_each_patients_own_segments(app: App, cova: str) -> None:
    """Names and appointments change each text's segments; the estimate is what the texts
    really cost (each delivery records the segments it was charged)."""
    app.patients.import_patients(OPERATOR, io.StringIO(MIXED))
    app.patients.import_appointments(OPERATOR, io.StringIO(APPOINTMENT))
    created = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms",),
            audience="both",
        ),
    )
    channel = FakeChannel(lambda message, call: SendResult(f"SM{message.delivery_id:032d}"))
    run_once(app, {"sms": channel})
    charged = sum(d.segments or 0 for d in app.deliveries.log(OPERATOR, created.id, "sent"))
    assert len(channel.sent) == 5 and charged > 5 * 2  # not all alike: long, UCS-2, appointments
    rate = app.settings.sms_rate_per_second
    assert created.preview.estimated_seconds["sms"] == pytest.approx(charged / rate, abs=0.05)


def test_a_short_queue_window_is_warned_about_in_minutes_and_seconds(app: App, cova: str) -> None:
    app.settings.sms_rate_per_second = 0.05
    app.settings.sms_queue_window_seconds = 600
    app.patients.import_patients(OPERATOR, io.StringIO(patients_csv(20)))
    preview = app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms",),
        ),
    ).preview
    [warning] = [w for w in preview.warnings if "queues" in w]
    assert "takes about 13 min 20 s" in warning  # 20 texts × 2 segments ÷ 0.05/s = 800 s
    assert "longer than the 10 min the provider queues" in warning


def test_the_cli_requeues_failed_deliveries_and_the_log_still_prints(
    app: App, cova: str, fake_twilio: FakeTwilio, database_url: str, tmp_path: Path
) -> None:
    fake_twilio.fault(match={"to": phone(0)}, times=1, response={"status": 400, "code": 21211})
    notice_id = notice(app, 2)
    app.fanout.fire_due()
    run_once(app)
    env = {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG_FILE": str(tmp_path / "absent.toml"),
        "NOTIFIER_NOW": "2025-02-18T18:05:00-05:00",
    }
    runner = CliRunner()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI configures logging for its process
    try:
        result = runner.invoke(main, ["deliveries", "retry", "--notice", str(notice_id)], env=env)
        listed = runner.invoke(
            main, ["deliveries", "--status", "pending", "--format", "json"], env=env
        )
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert "1 failed deliveries re-queued" in result.output
    assert listed.exit_code == 0, listed.output
    assert [row["attempts"] for row in json.loads(listed.output)] == [1]


@pytest.mark.parametrize(("pool", "warned"), [("+15405550100=10", False), (None, True)])
def test_a_pool_of_senders_is_estimated_by_its_slowest_sender(
    app: App, cova: str, pool: str | None, warned: bool
) -> None:
    app.settings.sms_rate_per_second = 0.002  # one slow number would take longer than 10 h
    app.settings.twilio_from_numbers = pool and f"{pool},+18885550100=40"
    notice_id = notice(app, 50, channels="sms")
    preview = app.previews.of_notice(OPERATOR, notice_id)
    units = 50 * preview.messages["sms"][0].segments
    if pool:  # each number sends its own patients at its own rate; the slower one ends last
        senders = parse_pool(app.settings.twilio_from_numbers or "", 1.0)
        shares = share_out([phone(i) for i in range(50)], senders)
        expected = max(units * n / 50 / sender.rate for sender, n in shares.items())
        assert min(shares.values()) > 0 and expected >= units / 50.0
    else:
        expected = units / 0.002
    assert preview.estimated_seconds["sms"] == pytest.approx(expected, rel=0.01, abs=0.1)
    assert bool([w for w in preview.warnings if "queues" in w]) is warned


def test_each_slow_sender_of_a_pool_is_warned_about_by_number_in_the_preview_and_the_fan_out(
    app: App, cova: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each number of a pool sends its own patients at its own rate: the warning names the
    number that needs longer than the window (its time for its share, where its rate is set),
    not the one that fits, and no channel-wide warning."""
    pool = "+15405550100=0.01,+18885550100=0.02"
    app.settings.sms_queue_window_seconds = 3600
    app.settings.twilio_from_numbers = pool
    notice_id = notice(app, 60, channels="sms")
    preview = app.previews.of_notice(OPERATOR, notice_id)
    segments = preview.messages["sms"][0].segments
    shares = share_out([phone(i) for i in range(60)], parse_pool(pool, 1.0))
    hours = {s.address: n * segments / s.rate / 3600 for s, n in shares.items()}
    assert 60 * segments / 0.03 > 3600  # the pool as a whole would be warned about
    assert [a for a, h in hours.items() if h > 1.0] == ["+18885550100"]  # 44 of 60 patients
    [warning] = [w for w in preview.warnings if "queues" in w]
    assert warning.startswith("sms from +18885550100: ")
    assert f"about {hours['+18885550100']:.1f} h" in warning
    assert "at its rate (NOTIFIER_TWILIO_FROM_NUMBERS)" in warning
    assert "longer than the 1.0 h" in warning
    with caplog.at_level(logging.WARNING, logger="notifier.delivery.fanout"):
        app.fanout.fire_due()
    logged = [
        r.getMessage() for r in caplog.records if r.__dict__.get("action") == "broadcast_too_long"
    ]
    assert len(logged) == 1 and "sms from +18885550100" in logged[0]
