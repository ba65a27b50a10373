"""Refusals and warnings before anything is sent, on SQLite and PostgreSQL: a text longer than
Twilio accepts (1,600 characters, error 21617) is refused at create and preview in the use
case, the CLI, the API and the console; a send time inside quiet hours says when texts really
go out; a late-evening send for a closure starting at midnight is not held into the closed day;
patients whose language has no templates are counted; a custom message keeps one language."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from click.testing import CliRunner

from notifier.bootstrap import App
from notifier.cli import main
from notifier.clock import FrozenClock
from notifier.errors import ValidationError
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.peers import NEW_YORK
from tests.support.web import Web, add_cova, csrf_of, signed_in

LONG = "Please read carefully. " * 74  # 1,702 characters
NEARLY = "x" * 1590  # under the API's field limit, over 1,600 once the clinic's name is added
REFERENCE = {
    "starts": "2025-02-19 12:30",
    "ends": "2025-02-21 00:00",
    "reason": "inclement weather",
    "channels": ("sms",),
}


@pytest.fixture
def cova_app(app: App, clock: FrozenClock) -> App:
    add_cova(app)
    clock.set(datetime(2025, 2, 18, 18, 0, tzinfo=NEW_YORK))
    return app


def test_a_text_over_1600_characters_is_refused_at_create_and_preview(cova_app: App) -> None:
    assert len(LONG) == 1702
    for attempt in (cova_app.notices.create, cova_app.notices.draft):
        with pytest.raises(ValidationError) as refused:
            attempt(OPERATOR, NoticeRequest(location="cova", message=LONG, **REFERENCE))  # type: ignore[arg-type]
        assert "1,600" in str(refused.value) and refused.value.field == "message"
    assert cova_app.notices.all(OPERATOR) == []


def test_the_limit_counts_each_patients_own_text(cova_app: App) -> None:
    """A reason that fits the English text but not a Spanish patient's is refused."""
    cova_app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            "external_id,first_name,last_name,phone,email,language,location,sms_consent,"
            "email_consent\ns1,Luz,Vega,540-555-0192,,es,cova,yes,no\n"
        ),
    )
    spanish = {"reason_texts": {"es": "el mal tiempo"}}
    sample = cova_app.notices.draft(OPERATOR, NoticeRequest(location="cova", **REFERENCE | spanish))  # type: ignore[arg-type]
    by_language = {m.language: m.characters for m in sample.messages["sms"]}
    assert by_language["es"] > by_language["en"]
    # The Spanish reason (only Spanish texts carry it) makes the Spanish text one too long.
    reason = "y" * (1600 - by_language["es"] + len("el mal tiempo") + 1)
    with pytest.raises(ValidationError, match="for some patients \\(language 'es'\\)"):
        cova_app.notices.create(
            OPERATOR,
            NoticeRequest(location="cova", **REFERENCE | {"reason_texts": {"es": reason}}),  # type: ignore[arg-type]
        )


def test_an_email_may_be_long(cova_app: App) -> None:
    created = cova_app.notices.create(
        OPERATOR,
        NoticeRequest(location="cova", message=LONG, **REFERENCE | {"channels": ("email",)}),
    )  # type: ignore[arg-type]
    assert created.notice.id > 0


def test_the_cli_refuses_it_with_the_reason(cova_app: App) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            main,
            [
                "notice",
                "create",
                "--location",
                "cova",
                "--starts",
                REFERENCE["starts"],
                "--ends",
                REFERENCE["ends"],
                "--reason",
                "ice",
                "--message",
                LONG,
                "--send-at",
                "now",
                "--channels",
                "sms",
            ],
            env={
                "NOTIFIER_DATABASE_URL": cova_app.settings.database_url,
                "NOTIFIER_NOW": "2025-02-18T18:00:00-05:00",
            },
        )
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code != 0
    assert "1,600" in result.output
    assert cova_app.notices.all(OPERATOR) == []


@pytest.fixture
def api(web: Web) -> httpx.Client:
    web.client.headers["Authorization"] = f"Bearer {web.app.accounts.create_token('site')}"
    return web.client


def test_the_api_refuses_it_at_create_and_preview(api: httpx.Client, web: Web) -> None:
    body = {"location": "cova", **REFERENCE, "channels": ["sms"], "message": NEARLY}
    for path in ("/api/v1/notices", "/api/v1/notices/preview"):
        answer = api.post(path, json=body)
        assert answer.status_code == 422, answer.text
        assert "1,600" in answer.text
    assert api.post("/api/v1/notices", json=body | {"message": LONG}).status_code == 422
    fine = api.post("/api/v1/notices/preview", json=body | {"message": "Stay safe."})
    assert fine.status_code == 200 and fine.json()["messages"]["sms"]
    assert web.app.notices.all(OPERATOR) == []


@pytest.fixture
def manager(web: Web) -> Iterator[httpx.Client]:
    with signed_in(web, "manager") as client:
        yield client


def test_the_console_refuses_it_at_preview_and_create(manager: httpx.Client, web: Web) -> None:
    form = {
        "location": "cova",
        "starts": "2025-02-19T12:30",
        "ends": "2025-02-21T00:00",
        "reason": "inclement weather",
        "channels": ["sms"],
        "send_mode": "now",
        "message": LONG,
    }
    csrf = csrf_of(manager.get("/console/notices/new"))
    live = manager.post("/console/notices/preview", data=form, headers={"X-CSRF-Token": csrf})
    assert "1,600" in live.text
    for action in ("preview", "send"):
        page = manager.post("/console/notices", data=form | {"csrf": csrf, "action": action})
        assert page.status_code == 422 and "1,600" in page.text
    assert web.app.notices.all(OPERATOR) == []


# --- quiet hours ----------------------------------------------------------------------------


def test_a_send_time_inside_quiet_hours_says_when_texts_really_go(cova_app: App) -> None:
    preview = cova_app.notices.draft(
        OPERATOR, NoticeRequest(location="cova", send_at="2025-02-18 22:30", **REFERENCE)
    )  # type: ignore[arg-type]
    assert any("texts go out at 2025-02-19 08:00" in w for w in preview.warnings)
    urgent = cova_app.notices.draft(
        OPERATOR,
        NoticeRequest(location="cova", send_at="2025-02-18 22:30", urgent=True, **REFERENCE),
    )  # type: ignore[arg-type]
    assert not any("quiet hours" in w for w in urgent.warnings)
    daytime = cova_app.notices.draft(
        OPERATOR, NoticeRequest(location="cova", send_at="2025-02-18 19:00", **REFERENCE)
    )  # type: ignore[arg-type]
    assert not any("quiet hours" in w for w in daytime.warnings)


def test_a_2230_send_for_a_closure_starting_at_midnight_goes_at_once(
    cova_app: App, clock: FrozenClock
) -> None:
    closure = REFERENCE | {"starts": "2025-02-19 00:00", "ends": "2025-02-20 00:00"}
    created = cova_app.notices.create(
        OPERATOR, NoticeRequest(location="cova", send_at="2025-02-18 22:30", **closure)
    )  # type: ignore[arg-type]
    assert any("urgent by rule" in w for w in created.preview.warnings)
    clock.set(datetime(2025, 2, 18, 22, 30, tzinfo=NEW_YORK))
    cova_app.fanout.fire_due()
    channel = FakeChannel()
    cova_app.dispatcher({"sms": channel}, "w1").drain()
    assert len(channel.sent) == 2  # not held to 08:00 on the closed day
    assert cova_app.deliveries.log(OPERATOR, created.id, "pending") == []


def test_not_urgent_still_holds_them_when_the_manager_says_so(
    cova_app: App, clock: FrozenClock
) -> None:
    closure = REFERENCE | {"starts": "2025-02-19 00:00", "ends": "2025-02-20 00:00"}
    created = cova_app.notices.create(
        OPERATOR,
        NoticeRequest(location="cova", send_at="2025-02-18 22:30", urgent=False, **closure),
    )
    assert any("texts go out at 2025-02-19 08:00" in w for w in created.preview.warnings)
    clock.set(datetime(2025, 2, 18, 22, 30, tzinfo=NEW_YORK))
    cova_app.fanout.fire_due()
    channel = FakeChannel()
    cova_app.dispatcher({"sms": channel}, "w1").drain()
    assert channel.sent == []


# --- languages ------------------------------------------------------------------------------


def test_patients_whose_language_has_no_templates_are_counted(cova_app: App) -> None:
    cova_app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            "external_id,first_name,last_name,phone,email,language,location,sms_consent,"
            "email_consent\nd1,Hans,Mayer,540-555-0190,,de,cova,yes,no\n"
            "d2,Greta,Mayer,540-555-0191,,de,cova,yes,no\n"
            "s1,Luz,Vega,540-555-0192,,es,cova,yes,no\n"
        ),
    )
    spanish = {"reason_texts": {"es": "el mal tiempo"}}
    preview = cova_app.notices.draft(
        OPERATOR, NoticeRequest(location="cova", **REFERENCE | spanish)
    )  # type: ignore[arg-type]
    assert "2 patients with language 'de' get 'en': there are no 'de' templates" in (
        preview.warnings
    )
    assert not any("'es'" in w for w in preview.warnings)


def test_a_custom_message_gets_no_other_languages_footer(cova_app: App) -> None:
    cova_app.patients.import_patients(
        OPERATOR,
        io.StringIO(
            "external_id,first_name,last_name,phone,email,language,location,sms_consent,"
            "email_consent\ns1,Luz,Vega,540-555-0192,,es,cova,yes,no\n"
        ),
    )
    created = cova_app.notices.create(
        OPERATOR, NoticeRequest(location="cova", message="We are closed, stay safe.", **REFERENCE)
    )  # type: ignore[arg-type]
    assert [m.language for m in created.preview.messages["sms"]] == ["en"]
    assert (
        "1 patient with language 'es' get the custom message in 'en', the location's language"
        in created.preview.warnings
    )
    cova_app.fanout.fire_due()
    channel = FakeChannel()
    cova_app.dispatcher({"sms": channel}, "w1").drain()
    assert channel.sent and all("Cuídese" not in m.text for m in channel.sent)
    assert all(m.text.isascii() for m in channel.sent)  # GSM-7, not UCS-2
