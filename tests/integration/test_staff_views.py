"""What the staff see, on SQLite and PostgreSQL: notices named and listed by what is true (an
"open after all" is not a live closure); who was not reached, by name, for managers only (no log
line carries a name); why a message waits, in every view; in the CLI, the API and the console."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from click.testing import CliRunner

from notifier.channels.email import EmailChannel
from notifier.cli import main
from notifier.cli.watching import watch_rich
from notifier.clock import FrozenClock
from notifier.usecases.notice_requests import NoticeRequest
from notifier.usecases.views import Progress
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel, refusing
from tests.support.peers import NEW_YORK
from tests.support.web import PASSWORD, Web, broadcast_sms, sign_in, signed_in

NOW = "2025-02-18T18:00:00-05:00"  # the evening before, as the fixtures live it


def cli(web: Web, *args: str) -> str:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI configures logging for its process
    try:
        result = CliRunner().invoke(
            main,
            list(args),
            env={"NOTIFIER_DATABASE_URL": web.app.settings.database_url, "NOTIFIER_NOW": NOW},
        )
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def api(web: Web) -> httpx.Client:
    web.client.headers["Authorization"] = f"Bearer {web.app.accounts.create_token('site')}"
    return web.client


@pytest.fixture
def manager(web: Web) -> Iterator[httpx.Client]:
    with signed_in(web, "manager") as client:
        yield client


def open_after_all(web: Web) -> tuple[int, int]:
    """The reference closure, sent, then cancelled telling those it reached: (old, new)."""
    original = broadcast_sms(web.app, FakeChannel())
    follow_up = web.app.notices.cancel(OPERATOR, original, notify=True)
    assert follow_up.id != original
    return original, follow_up.id


def test_an_open_after_all_is_listed_as_such_by_the_cli(web: Web) -> None:
    original, follow_up = open_after_all(web)
    listed = {v["id"]: v for v in json.loads(cli(web, "notice", "list", "--json"))}
    assert listed[follow_up]["state"] == "open after all · scheduled"
    assert listed[follow_up]["period"] == "past" and listed[follow_up]["actions"] == []
    assert listed[original]["state"] == "cancelled · patients told"
    assert listed[original]["period"] == "past"
    table = cli(web, "notice", "list")
    assert "Upcoming:" not in table and "active" not in table
    assert "open after all · scheduled" in table.split("Past:")[1]


def test_the_api_says_the_same(web: Web, api: httpx.Client) -> None:
    original, follow_up = open_after_all(web)
    shown = api.get(f"/api/v1/notices/{follow_up}").json()
    assert shown["state"].startswith("open after all") and shown["period"] == "past"
    assert shown["clinic"] == "COVA Spine and Pain Center"
    listed = {v["id"]: v for v in api.get("/api/v1/notices").json()}
    assert listed[original]["state"] == "cancelled · patients told"


def test_an_upcoming_notice_is_upcoming_not_active(web: Web, api: httpx.Client) -> None:
    notice_id = broadcast_sms(web.app, FakeChannel())
    shown = api.get(f"/api/v1/notices/{notice_id}").json()
    assert shown["state"] == "upcoming closure" and shown["period"] == "upcoming"
    assert shown["actions"] == ["update", "cancel"]


def test_the_console_lists_it_under_past_with_no_actions(web: Web, manager: httpx.Client) -> None:
    _, follow_up = open_after_all(web)
    listing = manager.get("/console/notices").text
    past = listing[listing.index('data-period="past"') :]
    assert f'data-notice-state="{follow_up}"' in past
    upcoming = listing[
        listing.index('data-period="upcoming"') : listing.index('data-period="past"')
    ]
    assert "inclement weather" not in upcoming
    page = manager.get(f"/console/notices/{follow_up}").text
    assert "open after all" in page and "Cancel notice" not in page
    assert "Update this notice" not in page


# --- who was not reached ------------------------------------------------------------------

PRIVATE = ("Maria", "Lopez", "5405550111", "maria@example.org")


def landline_maria(web: Web) -> int:
    """The reference notice by SMS and email; Maria's phone is a landline (21614)."""
    created = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="inclement weather",
            channels=("sms", "email"),
        ),
    )
    web.app.fanout.fire_due()
    channels = {"sms": refusing("+15405550111"), "email": FakeChannel(spec=EmailChannel.spec)}
    web.app.dispatcher(channels, "w1").drain()  # type: ignore[arg-type]
    return created.id


@pytest.fixture
def viewer(web: Web) -> Iterator[httpx.Client]:
    with signed_in(web, "viewer") as client:
        yield client


def test_the_not_reached_list_names_whom_to_call(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notice_id = landline_maria(web)
    rows = json.loads(cli(web, "notice", "not-reached", str(notice_id), "--format", "json"))
    maria = next(r for r in rows if r["patient"] == "p1")
    assert maria == {
        "patient": "p1",
        "first_name": "Maria",
        "last_name": "Lopez",
        "channel": "sms",
        "state": "failed",
        "reason": "not a mobile number",
        "reached_by": "email",
        "phone": "+15405550111",
        "email": "maria@example.org",
    }
    skipped = {(r["patient"], r["channel"]) for r in rows if r["state"] == "skipped"}
    assert ("p5", "sms") in skipped and ("p4", "sms") in skipped  # no SMS consent
    exported = list(
        csv.DictReader(
            io.StringIO(cli(web, "notice", "not-reached", str(notice_id), "--format", "csv"))
        )
    )
    assert exported[0].keys() >= {"patient", "first_name", "phone", "reached_by"}
    assert "Maria" in cli(web, "notice", "not-reached", str(notice_id))
    assert not any(value in caplog.text for value in PRIVATE)


def test_the_log_names_patients_only_when_asked(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    notice_id = landline_maria(web)
    masked = json.loads(cli(web, "deliveries", "--notice", str(notice_id), "--format", "json"))
    assert "patient" not in masked[0] and not any(v in json.dumps(masked) for v in PRIVATE)
    default_csv = cli(web, "deliveries", "--notice", str(notice_id), "--format", "csv")
    assert not any(v in default_csv for v in PRIVATE)
    shown = cli(web, "deliveries", "--notice", str(notice_id), "--show-patients")
    assert "Maria Lopez" in shown and "p1" in shown and "+15405550111" not in shown
    assert not any(value in caplog.text for value in PRIVATE)


def test_the_api_shows_patients_to_tokens_with_that_right(web: Web) -> None:
    notice_id = landline_maria(web)
    plain = web.app.accounts.create_token("site")
    trusted = web.app.accounts.create_token("front desk", sees_patients=True)
    ask = web.client.get
    for token in (plain, trusted):
        web.client.headers["Authorization"] = f"Bearer {token}"
        log = ask("/api/v1/deliveries", params={"notice": notice_id}).json()
        assert all(d["patient"] is None and d["patient_name"] is None for d in log)
    web.client.headers["Authorization"] = f"Bearer {plain}"
    assert ask(f"/api/v1/notices/{notice_id}/not-reached").status_code == 403
    refused = ask("/api/v1/deliveries", params={"notice": notice_id, "show_patients": "true"})
    assert refused.status_code == 403 and "--sees-patients" in refused.text
    web.client.headers["Authorization"] = f"Bearer {trusted}"
    named = ask("/api/v1/deliveries", params={"notice": notice_id, "show_patients": "true"})
    assert "Maria Lopez" in {d["patient_name"] for d in named.json()}
    rows = ask(f"/api/v1/notices/{notice_id}/not-reached").json()
    assert {"patient": "p1", "phone": "+15405550111"}.items() <= rows[0].items() or any(
        r["patient"] == "p1" and r["phone"] == "+15405550111" for r in rows
    )


def test_the_console_shows_patients_to_managers_not_viewers(
    web: Web, manager: httpx.Client, viewer: httpx.Client
) -> None:
    notice_id = landline_maria(web)
    page = manager.get(f"/console/notices/{notice_id}").text
    assert "Maria Lopez" in page and "not-reached-link" in page
    listed = manager.get(f"/console/notices/{notice_id}/not-reached")
    assert listed.status_code == 200 and "+15405550111" in listed.text
    assert 'data-patient="p1"' in listed.text
    exported = manager.get(f"/console/notices/{notice_id}/not-reached.csv").text
    assert "Maria" in exported and "+15405550111" in exported
    default_export = manager.get(f"/console/notices/{notice_id}/deliveries.csv").text
    assert not any(v in default_export for v in PRIVATE)
    seen = viewer.get(f"/console/notices/{notice_id}").text
    assert not any(v in seen for v in PRIVATE) and "not-reached-link" not in seen
    assert viewer.get(f"/console/notices/{notice_id}/not-reached").status_code == 403
    assert viewer.get(f"/console/notices/{notice_id}/not-reached.csv").status_code == 403


# --- every wait has a reason ----------------------------------------------------------------

HELD = "quiet hours: held until 2025-02-19 08:00 America/New_York"


def test_held_texts_show_why_in_every_view(web: Web, clock: FrozenClock) -> None:
    clock.set(datetime(2025, 2, 18, 22, 0, tzinfo=NEW_YORK))
    web.app.accounts.create_user("manager@cova.example", "manager", PASSWORD)
    manager = sign_in(web, "manager@cova.example")
    notice_id = broadcast_sms(web.app, FakeChannel())
    pending = web.app.deliveries.log(OPERATOR, notice_id, "pending")
    assert len(pending) == 2 and all(d.error == HELD for d in pending)
    table = cli(web, "deliveries", "--notice", str(notice_id), "--status", "pending")
    assert table.count(HELD) == 2
    web.client.headers["Authorization"] = f"Bearer {web.app.accounts.create_token('site')}"
    api_rows = web.client.get("/api/v1/deliveries", params={"notice": notice_id}).json()
    assert sum(d["error"] == HELD for d in api_rows) == 2
    assert web.app.deliveries.waits(OPERATOR, notice_id) == [f"2 messages waiting: {HELD}"]
    page = manager.get(f"/console/notices/{notice_id}").text
    assert f"2 messages waiting: {HELD}" in page and page.count(HELD) >= 3
    summary = manager.get(f"/console/notices/{notice_id}/summary").text
    assert f"2 messages waiting: {HELD}" in summary and "2 of 4 done" in summary
    manager.close()
    clock.set(datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK))
    web.app.dispatcher({"sms": FakeChannel()}, "w1").drain()
    assert all(d.error is None for d in web.app.deliveries.log(OPERATOR, notice_id, "sent"))
    assert web.app.deliveries.waits(OPERATOR, notice_id) == []


# --- drafts -----------------------------------------------------------------------------------


def test_notice_create_without_send_at_makes_a_draft_that_sends_only_when_told(
    web: Web, manager: httpx.Client, clock: FrozenClock
) -> None:
    made = cli(
        web, "notice", "create", "--location", "cova", "--starts", "2025-02-19 12:30",
        "--ends", "2025-02-21 00:00", "--reason", "ice", "--channels", "sms",
    )  # fmt: skip
    assert "draft · upcoming closure" in made and "notifier notice send 1 --send-at now" in made
    assert "--- SMS [en, closure]" in made  # previewed
    web.app.fanout.fire_due()
    channel = FakeChannel()
    web.app.dispatcher({"sms": channel}, "w1").drain()
    assert channel.sent == [] and web.app.deliveries.log(OPERATOR, 1) == []
    page = manager.get("/console/notices/1").text
    assert "Send this notice" in page and "draft · upcoming closure" in page
    sent = cli(web, "notice", "send", "1", "--send-at", "now")
    assert "notice 1 (upcoming closure)" in sent
    clock.set(datetime(2025, 2, 18, 18, 1, tzinfo=NEW_YORK))  # the CLI's clock ran on a moment
    web.app.fanout.fire_due()
    web.app.dispatcher({"sms": channel}, "w1").drain()
    assert len(channel.sent) == 2
    again = CliRunner().invoke(
        main,
        ["notice", "send", "1", "--send-at", "now"],
        env={"NOTIFIER_DATABASE_URL": web.app.settings.database_url, "NOTIFIER_NOW": NOW},
    )
    assert again.exit_code != 0 and "is not a draft" in again.output


def test_a_draft_is_cancelled_or_updated_as_a_draft(web: Web) -> None:
    created = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            send_at=None,
        ),
    )
    updated = web.app.notices.update(OPERATOR, created.id, reason="snow")
    assert updated.state == "draft · upcoming closure"
    assert [b.status for b in updated.broadcasts] == ["draft"]
    cancelled = web.app.notices.cancel(OPERATOR, updated.id)
    assert cancelled.state == "cancelled"
    assert [b.status for b in cancelled.broadcasts] == ["cancelled"]


# --- watching a broadcast -----------------------------------------------------------------


def test_notice_watch_follows_the_broadcast_and_ends_when_it_does(
    web: Web, clock: FrozenClock
) -> None:
    created = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts="2025-02-19 12:30",
            ends="2025-02-21 00:00",
            reason="ice",
            channels=("sms",),
        ),
    )
    outcome: dict[str, str] = {}

    def watch() -> None:
        outcome["output"] = cli(web, "notice", "watch", str(created.id), "--interval", "0.05")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)  # it watches a broadcast that has not gone out yet: still running
    assert watcher.is_alive()
    clock.set(datetime(2025, 2, 18, 18, 1, tzinfo=NEW_YORK))
    web.app.fanout.fire_due()
    web.app.dispatcher({"sms": FakeChannel()}, "w1").drain()
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    lines = outcome["output"].splitlines()
    assert lines[0].startswith(f"notice {created.id} (upcoming closure): 0/0 done")
    assert "2/4 done" not in lines[0]
    assert lines[-1] == "done: 4/4 (upcoming closure)"
    assert any("delivered 0, sent 2, queued 0, failed 0, skipped 2" in x for x in lines)


def test_the_progress_counts_waits_and_pace(web: Web, clock: FrozenClock) -> None:
    clock.set(datetime(2025, 2, 18, 22, 0, tzinfo=NEW_YORK))
    notice_id = broadcast_sms(web.app, FakeChannel())
    held = web.app.deliveries.progress(OPERATOR, notice_id)
    assert (held.total, held.counts["queued"], held.finished) == (4, 2, False)
    assert held.waits == [f"2 messages waiting: {HELD}"]
    clock.set(datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK))
    web.app.dispatcher({"sms": FakeChannel()}, "w1").drain()
    over = web.app.deliveries.progress(OPERATOR, notice_id)
    assert over.finished and over.counts["sent"] == 2 and over.eta_seconds == 0
    assert over.rate is not None and over.rate > 0


def test_in_a_terminal_watch_draws_a_bar_and_stops_when_done() -> None:
    def progress(queued: int, done: int) -> Progress:
        counts = {"delivered": 0, "sent": done, "queued": queued, "failed": 0, "skipped": 0}
        return Progress(1, "closed now", queued + done, counts, [], 2.0, queued / 2.0, not queued)

    readings = iter([progress(4, 0), progress(2, 2), progress(0, 4)])
    naps: list[float] = []
    final = watch_rich(lambda: next(readings), 0.5, naps.append)
    assert final.finished and final.done == 4 and naps == [0.5, 0.5]


def test_the_api_makes_drafts_and_sends_them(web: Web, api: httpx.Client) -> None:
    body = {
        "location": "cova",
        "starts": "2025-02-19 12:30",
        "ends": "2025-02-21 00:00",
        "reason": "ice",
        "send_at": None,
    }
    draft = api.post("/api/v1/notices", json=body).json()
    assert draft["state"] == "draft · upcoming closure" and "send" in draft["actions"]
    sent = api.post(f"/api/v1/notices/{draft['id']}/send", json={"send_at": "now"})
    assert sent.status_code == 200 and sent.json()["state"] == "upcoming closure"
    again = api.post(f"/api/v1/notices/{draft['id']}/send", json={"send_at": "now"})
    assert again.status_code == 422 and "not a draft" in again.text
    assert api.post("/api/v1/notices", json=body | {"send_at": "now"}).json()["state"] == (
        "upcoming closure"
    )
