"""Editing a location never changes a queued notice: saving new hours lists the notices whose
words would change, with what to do, through the use case, the API, the console and the CLI,
on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from notifier.bootstrap import App
from notifier.cli import main
from notifier.usecases.locations import LocationSaved
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.web import PASSWORD, Web, csrf_of, sign_in

SATURDAY_HOURS = "Mon-Fri 08:00-17:00; Sat 09:00-12:00"
LATER_HOURS = "Mon-Fri 09:00-17:00"  # opens an hour later, and no Saturdays
COVA = {
    "name": "COVA Spine and Pain Center",
    "timezone": "America/New_York",
    "phone": "540-555-0100",
}


def save_loc(app: App, hours: str) -> LocationSaved:
    return app.locations.save(
        OPERATOR, "loc", "Loc Clinic", "America/New_York", hours, "540-555-0100"
    )


def sms_text(app: App, notice_id: int) -> str:
    """The general text as the notice's preview shows it (what patients will receive)."""
    return app.previews.of_notice(OPERATOR, notice_id, "sms").messages["sms"][0].text


def early_close(app: App, location: str = "loc", day: str = "2025-02-19") -> int:
    """Closing early from noon: its words name the time the doors open the next morning."""
    return app.notices.create(
        OPERATOR,
        NoticeRequest(
            location=location,
            starts=f"{day} 12:00",
            ends=f"{day} 17:00",
            reason="a storm",
            channels=("sms",),
            send_at="2025-02-19 07:00",
        ),
    ).id


# --- the use case ---------------------------------------------------------------------------


@pytest.fixture
def queued(app: App, cova: str) -> dict[str, int]:
    """A location open on Saturdays with four notices, and one notice at another location."""
    save_loc(app, SATURDAY_HOURS)
    notices = app.notices
    ids = {
        "saturday": notices.create(
            OPERATOR,
            NoticeRequest(
                location="loc",
                starts="2025-02-22 09:00",
                ends="2025-02-22 12:00",
                reason="a burst pipe",
                channels=("sms",),
                send_at="2025-02-19 09:00",
            ),
        ).id,
        "early": early_close(app),
        # Opening late at 10:00 reads the same whether the doors usually open at 8 or at 9.
        "late": notices.create(
            OPERATOR,
            NoticeRequest(
                location="loc",
                starts="2025-02-20 08:00",
                ends="2025-02-20 10:00",
                reason="a power cut",
                channels=("sms",),
                send_at="2025-02-19 07:00",
            ),
        ).id,
        "cancelled": early_close(app, day="2025-02-21"),
        "elsewhere": early_close(app, cova),
    }
    notices.cancel(OPERATOR, ids["cancelled"])
    return ids


def test_new_hours_list_exactly_the_queued_notices_whose_words_would_change(
    app: App, queued: dict[str, int]
) -> None:
    before_texts = {name: sms_text(app, notice_id) for name, notice_id in queued.items()}

    saved = save_loc(app, LATER_HOURS)

    assert saved.created is False
    assert saved.location.business_hours == LATER_HOURS
    assert [r.notice_id for r in saved.reworded] == [queued["early"], queued["saturday"]]
    early, saturday = saved.reworded

    assert early.stored == before_texts["early"]
    assert "We reopen Thursday, 2/20/2025 at 8:00 AM" in early.stored
    assert early.with_new_settings is not None
    assert "We reopen Thursday, 2/20/2025 at 9:00 AM" in early.with_new_settings
    assert early.with_new_settings == early.stored.replace("8:00 AM", "9:00 AM")
    assert early.problem is None
    assert (early.starts, early.ends) == ("2025-02-19T12:00:00-05:00", "2025-02-19T17:00:00-05:00")
    assert f"`notifier notice update {queued['early']}`" in early.advice

    assert saturday.stored == before_texts["saturday"]
    assert "Saturday, 2/22/2025" in saturday.stored
    assert saturday.with_new_settings is None
    assert saturday.problem is not None
    assert "does not touch the business hours" in saturday.problem
    assert f"`notifier notice cancel {queued['saturday']}`" in saturday.advice
    assert "notice update" not in saturday.advice


def test_saving_new_hours_changes_nothing_stored_with_a_queued_notice(
    app: App, queued: dict[str, int]
) -> None:
    before = {notice_id: app.notices.get(OPERATOR, notice_id) for notice_id in queued.values()}
    texts = {notice_id: sms_text(app, notice_id) for notice_id in queued.values()}

    save_loc(app, LATER_HOURS)

    after = {notice_id: app.notices.get(OPERATOR, notice_id) for notice_id in queued.values()}
    assert after == before
    assert {notice_id: sms_text(app, notice_id) for notice_id in queued.values()} == texts
    saturday = after[queued["saturday"]]
    assert saturday.status == "active" and saturday.broadcasts[0].status == "scheduled"


def test_saving_the_same_hours_again_lists_no_notice(app: App, queued: dict[str, int]) -> None:
    saved = save_loc(app, SATURDAY_HOURS)

    assert saved.created is False
    assert saved.reworded == []


def test_a_new_phone_changes_queued_notices_words_at_once_and_says_so(
    app: App, queued: dict[str, int]
) -> None:
    """The name, phone and language are the location's own, not the notice's: a corrected
    phone number goes out with every queued notice, and the list says so."""
    saved = app.locations.save(
        OPERATOR, "loc", "Loc Clinic", "America/New_York", SATURDAY_HOURS, "540-555-0199"
    )
    listed = {r.notice_id: r for r in saved.reworded}
    assert set(listed) == {queued["saturday"], queued["early"], queued["late"]}
    early = listed[queued["early"]]
    assert "(540) 555-0100" in early.before and "(540) 555-0199" in early.stored
    assert early.with_new_settings == early.stored  # the hours did not change: no update needed
    assert "nothing to do" in early.advice
    assert "(540) 555-0199" in sms_text(app, queued["early"])


def test_a_new_location_is_created_with_nothing_reworded(app: App, queued: dict[str, int]) -> None:
    saved = app.locations.save(OPERATOR, "annex", "The Annex", "America/Chicago", LATER_HOURS)

    assert saved.created is True
    assert saved.reworded == []
    assert saved.location.timezone == "America/Chicago"
    assert "annex" in [loc.slug for loc in app.locations.all(OPERATOR)]


def test_updating_a_listed_notice_sends_the_wording_the_list_promised(
    app: App, queued: dict[str, int]
) -> None:
    promised = save_loc(app, LATER_HOURS).reworded[0]
    assert promised.notice_id == queued["early"]

    updated = app.notices.update(OPERATOR, queued["early"])

    assert updated.id != queued["early"] and updated.supersedes_id == queued["early"]
    assert promised.with_new_settings is not None
    # Nothing had gone out yet, so the new version simply replaces the old one's words.
    assert sms_text(app, updated.id) == promised.with_new_settings
    assert sms_text(app, queued["early"]) == promised.stored
    assert [r.notice_id for r in save_loc(app, LATER_HOURS).reworded] == [queued["saturday"]]


# --- the API --------------------------------------------------------------------------------


@pytest.fixture
def api(web: Web) -> httpx.Client:
    token = web.app.accounts.create_token("clinic website")
    web.client.headers["Authorization"] = f"Bearer {token}"
    return web.client


def test_the_api_saves_a_location_and_lists_the_notices_it_would_reword(
    api: httpx.Client, web: Web
) -> None:
    notice_id = early_close(web.app, "cova")
    stored_text = sms_text(web.app, notice_id)

    answer = api.put("/api/v1/locations/cova", json=COVA | {"hours": LATER_HOURS})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["created"] is False
    assert body["location"]["slug"] == "cova"
    assert body["location"]["business_hours"] == LATER_HOURS
    [reworded] = body["reworded"]
    assert reworded["notice_id"] == notice_id
    assert reworded["stored"] == stored_text
    assert "at 9:00 AM" in reworded["with_new_settings"]
    assert reworded["problem"] is None
    assert f"notifier notice update {notice_id}" in reworded["advice"]
    assert sms_text(web.app, notice_id) == stored_text


def test_the_api_creates_a_new_location_and_lists_it(api: httpx.Client) -> None:
    answer = api.put(
        "/api/v1/locations/annex",
        json={"name": "The Annex", "timezone": "America/Chicago", "hours": LATER_HOURS},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] is True
    assert answer.json()["reworded"] == []
    listed = {loc["slug"]: loc for loc in api.get("/api/v1/locations").json()}
    assert set(listed) == {"annex", "cova"}
    assert listed["annex"]["timezone"] == "America/Chicago"
    assert listed["annex"]["business_hours"] == LATER_HOURS


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="unknown-zone"),
        pytest.param({"hours": "Mon-Fri 17:00-08:00"}, "hours", id="closes-before-opening"),
        pytest.param({"hours": "weekdays nine to five"}, "hours", id="not-hours"),
    ],
)
def test_the_api_refuses_a_bad_location_naming_the_field(
    api: httpx.Client, change: dict[str, str], field: str
) -> None:
    answer = api.put("/api/v1/locations/cova", json=COVA | {"hours": LATER_HOURS} | change)

    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["detail"]
    [cova] = api.get("/api/v1/locations").json()
    assert cova["business_hours"] == "Mon-Fri 08:00-17:00"
    assert cova["timezone"] == "America/New_York"


def test_the_api_refuses_to_save_a_location_without_a_token(web: Web) -> None:
    answer = web.client.put("/api/v1/locations/cova", json=COVA | {"hours": LATER_HOURS})

    assert answer.status_code == 401
    assert web.client.get("/api/v1/locations").status_code == 401
    assert [loc.business_hours for loc in web.app.locations.all(OPERATOR)] == [
        "Mon-Fri 08:00-17:00"
    ]


# --- the console ----------------------------------------------------------------------------


@pytest.fixture
def manager(web: Web) -> Iterator[httpx.Client]:
    web.app.accounts.create_user("manager@cova.example", "manager", PASSWORD)
    client = sign_in(web, "manager@cova.example")
    yield client
    client.close()


def location_form(csrf: str, **change: str) -> dict[str, str]:
    return {
        "slug": "cova",
        "name": COVA["name"],
        "timezone": COVA["timezone"],
        "hours": "Mon-Fri 08:00-17:00",
        "phone": COVA["phone"],
        "language": "en",
        "csrf": csrf,
    } | change


def test_the_console_lists_locations_to_a_manager(manager: httpx.Client) -> None:
    page = manager.get("/console/locations")

    assert page.status_code == 200
    assert 'href="/console/locations/cova"' in page.text
    assert "COVA Spine and Pain Center" in page.text
    assert "Mon-Fri 08:00-17:00" in page.text


def test_the_console_shows_the_notices_new_hours_would_reword(
    manager: httpx.Client, web: Web
) -> None:
    notice_id = early_close(web.app, "cova")
    stored_text = sms_text(web.app, notice_id)
    csrf = csrf_of(manager.get("/console/locations/cova"))

    page = manager.post("/console/locations", data=location_form(csrf, hours=LATER_HOURS))

    assert page.status_code == 200, page.text[:500]
    shown = html.unescape(page.text)
    assert f'data-notice="{notice_id}"' in shown
    assert stored_text in shown
    assert "We reopen Thursday, 2/20/2025 at 9:00 AM" in shown
    assert [loc.business_hours for loc in web.app.locations.all(OPERATOR)] == [LATER_HOURS]
    assert sms_text(web.app, notice_id) == stored_text


def test_the_console_shows_a_bad_hours_value_next_to_its_field(
    manager: httpx.Client, web: Web
) -> None:
    csrf = csrf_of(manager.get("/console/locations/cova"))

    page = manager.post("/console/locations", data=location_form(csrf, hours="Mon-Fri 9-5"))

    assert page.status_code == 422
    match = re.search(r'data-error-for="hours"[^>]*>([^<]*)<', page.text)
    assert match, page.text[:1000]
    assert "Mon-Fri 08:00-17:00" in html.unescape(match.group(1))  # the example it should follow
    assert re.search(r'data-error-for="name"[^>]*>\s*<', page.text)
    assert 'value="Mon-Fri 9-5"' in page.text  # what was typed is kept for correcting
    assert [loc.business_hours for loc in web.app.locations.all(OPERATOR)] == [
        "Mon-Fri 08:00-17:00"
    ]


def test_a_viewer_may_not_change_a_location_in_the_console(web: Web) -> None:
    web.app.accounts.create_user("viewer@cova.example", "viewer", PASSWORD)
    viewer = sign_in(web, "viewer@cova.example")
    try:
        listing = viewer.get("/console/locations")
        assert listing.status_code == 200 and "COVA Spine and Pain Center" in listing.text
        answer = viewer.post(
            "/console/locations", data=location_form(csrf_of(listing), hours=LATER_HOURS)
        )
        assert answer.status_code == 403
    finally:
        viewer.close()
    assert [loc.business_hours for loc in web.app.locations.all(OPERATOR)] == [
        "Mon-Fri 08:00-17:00"
    ]


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NOTIFIER_NOW", "2025-02-18T18:00:00-05:00")
    runner = CliRunner()
    run(runner, "db", "upgrade")  # only it and `serve` create a database
    return runner


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


def add_loc(cli: CliRunner, hours: str) -> str:
    return run(
        cli,
        "location",
        "add",
        "--slug",
        "loc",
        "--name",
        "Loc Clinic",
        "--timezone",
        "America/New_York",
        "--phone",
        "540-555-0100",
        "--hours",
        hours,
    )


def test_location_add_names_the_queued_notice_new_hours_reword_and_how_to_update_it(
    cli: CliRunner,
) -> None:
    first = add_loc(cli, "Mon-Fri 08:00-17:00")
    assert "location loc: Loc Clinic (America/New_York; Mon-Fri 08:00-17:00)" in first
    assert "notice " not in first
    created = run(
        cli,
        "notice",
        "create",
        "--location",
        "loc",
        "--starts",
        "2025-02-19 12:00",
        "--ends",
        "2025-02-19 17:00",
        "--reason",
        "a storm",
        "--channels",
        "sms",
        "--send-at",
        "2025-02-19 07:00",
    )
    match = re.match(r"notice (\d+) ", created)
    assert match, created
    notice_id = match.group(1)

    output = add_loc(cli, LATER_HOURS)

    assert f"location loc: Loc Clinic (America/New_York; {LATER_HOURS})" in output
    assert f"notice {notice_id} (2025-02-19T12:00:00-05:00 → 2025-02-19T17:00:00-05:00):" in output
    assert "goes out as:" in output and "at 8:00 AM" in output
    assert "updated to the new hours:" in output and "at 9:00 AM" in output
    assert f"`notifier notice update {notice_id}`" in output
    unchanged = run(cli, "notice", "preview", notice_id, "--channel", "sms")
    assert "We reopen Thursday, 2/20/2025 at 8:00 AM" in unchanged
