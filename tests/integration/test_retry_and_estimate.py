"""Re-queueing failed deliveries on request, and the completion estimate shown before a send."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifier.bootstrap import App
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.runtime import run_once
from notifier.storage import reports
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.patients import patients_csv, phone


def notice(app: App, patients: int, channels: str = "sms") -> int:
    app.patients.import_patients(io.StringIO(patients_csv(patients)))
    return app.notices.create(
        "cova", "2025-02-19 12:30", "2025-02-21 00:00", "inclement weather", channels=channels
    ).id


def test_failed_deliveries_are_requeued_on_request_keeping_their_attempts(
    app: App, cova: str, fake_twilio: FakeTwilio
) -> None:
    rule = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
    fake_twilio.fault(match={"to": phone(0)}, times=1, response=rule)
    notice_id = notice(app, 2)
    app.fanout.fire_due()
    run_once(app)
    assert [d.state for d in app.deliveries.log(notice_id, "failed")] == ["failed"]

    assert app.deliveries.retry_failed(notice_id) == 1
    run_once(app)
    log = app.deliveries.log(notice_id)
    assert sorted((d.state, d.attempts) for d in log) == [("sent", 1), ("sent", 2)]
    assert len(fake_twilio.received_creates()) == 2
    with app.db.session() as s:
        retried = [
            d.id for d in reports.delivery_log(s, reports.LogQuery(notice_id)) if d.attempts == 2
        ]
        kinds = [e.kind for e in reports.events_for(s, retried)]
    assert kinds == ["queued", "failed", "retry_requested", "sent"]
    assert app.deliveries.retry_failed(notice_id) == 0  # nothing failed any more


def test_no_retry_for_a_cancelled_notice_or_an_ended_closure(
    app: App, cova: str, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    fake_twilio.fault(match=None, times=None, response={"status": 400, "code": 21211})
    cancelled = notice(app, 1)
    app.fanout.fire_due()
    run_once(app)
    app.notices.cancel(cancelled)
    assert app.deliveries.retry_failed(cancelled) == 0
    ended = app.notices.create("cova", "2025-02-19 12:30", "2025-02-21 00:00", "ice").id
    app.fanout.fire_due()
    run_once(app)
    clock.advance(3 * 24 * 3600)
    assert app.deliveries.retry_failed() == 0
    assert {d.state for d in app.deliveries.log(ended) if d.channel == "sms"} == {"failed"}


@pytest.mark.parametrize(("patients", "rate", "warned"), [(50, 10.0, False), (50, 0.002, True)])
def test_the_preview_estimates_the_sending_time_and_warns_past_the_queue_window(
    app: App, cova: str, patients: int, rate: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app.settings.sms_rate_per_second = rate
    notice_id = notice(app, patients, channels="sms,email")
    preview = app.previews.of_notice(notice_id)
    segments = preview.messages["sms"][0].segments
    assert preview.estimated_seconds["sms"] == pytest.approx(patients * segments / rate, rel=0.01)
    assert preview.estimated_seconds["email"] == pytest.approx(patients / 10.0)
    window_warnings = [w for w in preview.warnings if "queues" in w]
    assert bool(window_warnings) is warned
    with caplog.at_level(logging.WARNING, logger="notifier.delivery.fanout"):
        app.fanout.fire_due()
    assert any(r.__dict__.get("action") == "broadcast_too_long" for r in caplog.records) is warned


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
