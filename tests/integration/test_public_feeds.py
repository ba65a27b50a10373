"""The public routes over real HTTP, their output read by real parsers: CAP against the OASIS
schema (lxml), the calendar with ``icalendar``, Atom with ``feedparser``, the page's JSON-LD;
caching (304), publish times, privacy, the per-location switch, languages."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import feedparser
import icalendar
import pytest
from lxml import etree

from notifier.clock import FrozenClock
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.peers import NEW_YORK
from tests.support.web import Web, csrf_of, signed_in

XSD = Path(__file__).resolve().parents[1] / "data" / "cap12.xsd"
CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
REFERENCE = ("2025-02-19 12:30", "2025-02-21 00:00", "inclement weather")


@pytest.fixture(scope="module")
def cap_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def create(web: Web, **fields: object) -> int:
    starts, ends, reason = REFERENCE
    values: dict[str, object] = {"channels": ("sms",), "send_at": "now"} | fields
    request = NoticeRequest("cova", starts, ends, reason, **values)  # type: ignore[arg-type]
    return web.app.notices.create(OPERATOR, request).notice.id


def calendar(web: Web) -> icalendar.Calendar:
    response = web.client.get("/public/cova/closures.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    return icalendar.Calendar.from_ical(response.content)


def events(cal: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def cap(web: Web, path: str, schema: etree.XMLSchema) -> etree._Element:
    response = web.client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/cap+xml"
    document = etree.fromstring(response.content)
    schema.assertValid(document)  # raises with the schema's own complaint
    return document


def text_of(document: etree._Element, path: str) -> list[str]:
    return [str(node.text) for node in document.xpath(path, namespaces=CAP_NS)]


# --- CAP ------------------------------------------------------------------------------


def test_cap_alert_update_and_cancel_validate_against_the_oasis_schema(
    web: Web, cap_schema: etree.XMLSchema
) -> None:
    notice_id = create(web)
    alert = cap(web, f"/public/cova/cap/{notice_id}-0.xml", cap_schema)
    assert text_of(alert, "cap:msgType") == ["Alert"]
    assert text_of(alert, "cap:status") == ["Actual"] and text_of(alert, "cap:scope") == ["Public"]
    assert text_of(alert, "cap:references") == []
    assert text_of(alert, "cap:info/cap:language") == ["en", "es"]
    assert text_of(alert, "cap:info/cap:category") == ["Met", "Met"]  # "inclement weather"
    assert text_of(alert, "cap:info[1]/cap:onset") == ["2025-02-19T12:30:00-05:00"]
    assert text_of(alert, "cap:info[1]/cap:expires") == ["2025-02-21T00:00:00-05:00"]
    assert text_of(alert, "cap:info/cap:area/cap:areaDesc") == ["COVA Spine and Pain Center"] * 2
    assert (
        "closing early Wednesday, 2/19/2025 at 12:30 PM"
        in text_of(alert, "cap:info[1]/cap:description")[0]
    )
    assert "cerrará temprano el miércoles" in text_of(alert, "cap:info[2]/cap:description")[0]

    web.app.notices.update(OPERATOR, notice_id, ends="2025-02-21 12:00", reason="a power outage")
    update = cap(web, f"/public/cova/cap/{notice_id}-1.xml", cap_schema)
    assert text_of(update, "cap:msgType") == ["Update"]
    alert_ref = ",".join(
        text_of(alert, "cap:sender") + text_of(alert, "cap:identifier") + text_of(alert, "cap:sent")
    )
    assert text_of(update, "cap:references") == [alert_ref]
    assert text_of(update, "cap:info/cap:category") == ["Infra", "Infra"]
    assert text_of(update, "cap:info[1]/cap:expires") == ["2025-02-21T12:00:00-05:00"]
    assert text_of(update, "cap:identifier") != text_of(alert, "cap:identifier")

    latest = web.app.notices.chain(OPERATOR, notice_id)[-1].id
    web.app.clock.advance(60)  # type: ignore[attr-defined]
    web.app.notices.cancel(OPERATOR, latest)
    cancel = cap(web, f"/public/cova/cap/{notice_id}-2.xml", cap_schema)
    assert text_of(cancel, "cap:msgType") == ["Cancel"]
    assert text_of(cancel, "cap:references")[0].split() == [
        alert_ref,
        ",".join(
            text_of(update, "cap:sender")
            + text_of(update, "cap:identifier")
            + text_of(update, "cap:sent")
        ),
    ]
    assert "will be open after all" in text_of(cancel, "cap:info[1]/cap:description")[0]


def test_a_reason_code_decides_the_cap_category(web: Web, cap_schema: etree.XMLSchema) -> None:
    # The free text says "inclement weather" (Met), the code says emergency: the code wins; the
    # document with the Safety category is still valid CAP 1.2.
    notice_id = create(web, reason_code="emergency")
    alert = cap(web, f"/public/cova/cap/{notice_id}-0.xml", cap_schema)
    assert text_of(alert, "cap:info/cap:category") == ["Safety", "Safety"]
    # The earlier messages stay as they were: a CAP message never changes once issued.
    assert etree.tostring(cap(web, f"/public/cova/cap/{notice_id}-0.xml", cap_schema)) == (
        etree.tostring(alert)
    )
    assert web.client.get(f"/public/cova/cap/{notice_id}-3.xml").status_code == 404


# --- iCalendar ------------------------------------------------------------------------


def test_the_calendar_has_exclusive_all_day_ends_stable_uids_and_rising_sequences(
    web: Web,
) -> None:
    notice_id = create(web)
    first = events(calendar(web))
    assert len(first) == 2
    by_start = sorted(first.values(), key=lambda e: e["DTSTART"].to_ical().decode())
    early, whole = by_start
    # Wednesday closes early: a timed event in the location's zone.
    assert early["DTSTART"].params["TZID"] == "America/New_York"
    assert early["DTSTART"].dt == datetime(2025, 2, 19, 12, 30, tzinfo=NEW_YORK)
    assert early["DTEND"].dt == datetime(2025, 2, 19, 17, 0, tzinfo=NEW_YORK)
    # Thursday is closed all day: a DATE, and the end is the next day (exclusive).
    assert whole["DTSTART"].params.get("VALUE") == "DATE" or not isinstance(
        whole["DTSTART"].dt, datetime
    )
    assert whole["DTSTART"].dt == date(2025, 2, 20)
    assert whole["DTEND"].dt == date(2025, 2, 21)
    assert {int(e["SEQUENCE"]) for e in first.values()} == {0}
    assert {str(e["STATUS"]) for e in first.values()} == {"CONFIRMED"}
    assert "America/New_York" in [str(tz["TZID"]) for tz in calendar(web).walk("VTIMEZONE")]

    web.app.clock.advance(60)  # type: ignore[attr-defined]
    web.app.notices.update(OPERATOR, notice_id, reason="the ice storm")
    second = events(calendar(web))
    assert set(second) == set(first)  # the same events, corrected: same UIDs
    assert {int(e["SEQUENCE"]) for e in second.values()} == {1}
    assert all("the ice storm" in str(e["DESCRIPTION"]) for e in second.values())

    web.app.clock.advance(60)  # type: ignore[attr-defined]
    web.app.notices.cancel(OPERATOR, web.app.notices.chain(OPERATOR, notice_id)[-1].id)
    third = events(calendar(web))
    assert set(third) == set(first)
    assert {int(e["SEQUENCE"]) for e in third.values()} == {2}
    assert {str(e["STATUS"]) for e in third.values()} == {"CANCELLED"}


def test_an_update_that_drops_a_day_cancels_that_days_event(web: Web) -> None:
    notice_id = create(web)
    before = events(calendar(web))
    # only the early close is left
    web.app.notices.update(OPERATOR, notice_id, ends="2025-02-19 17:00")
    after = events(calendar(web))
    assert set(after) == set(before)
    statuses = sorted((str(e["STATUS"]), e["DTSTART"].to_ical().decode()) for e in after.values())
    assert statuses == [("CANCELLED", "20250220"), ("CONFIRMED", "20250219T123000")]
    assert {int(e["SEQUENCE"]) for e in after.values()} == {1}


def test_a_partial_closure_in_the_dst_week_is_at_the_right_utc_instant(web: Web) -> None:
    # Clocks sprang forward on Sunday 2025-03-09: Monday noon in New York is 16:00 UTC, not 17.
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            "cova", "2025-03-10 12:00", "2025-03-10 15:00", "a staff meeting", channels=("sms",)
        ),
    )
    cal = calendar(web)
    (event,) = cal.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert event["DTSTART"].dt.astimezone(UTC) == datetime(2025, 3, 10, 16, 0, tzinfo=UTC)
    assert event["DTEND"].dt.astimezone(UTC) == datetime(2025, 3, 10, 19, 0, tzinfo=UTC)
    # The calendar's own VTIMEZONE says so too (clients without the IANA database use it).
    (vtimezone,) = cal.walk("VTIMEZONE")
    daylight = [c for c in vtimezone.walk("DAYLIGHT")]
    starts = [c["DTSTART"].dt for c in daylight] + [
        d.dt for c in daylight for rdate in [c.get("RDATE")] if rdate for d in _dates(rdate)
    ]
    assert datetime(2025, 3, 9, 3, 0) in [s.replace(tzinfo=None) for s in starts]
    assert {str(c["TZOFFSETTO"].to_ical()) for c in daylight} == {"-0400"}


def _dates(rdate: object) -> list[icalendar.prop.vDDDTypes]:
    values = rdate if isinstance(rdate, list) else [rdate]
    return [d for v in values for d in v.dts]


# --- Atom -----------------------------------------------------------------------------


def test_the_atom_feed_keeps_ids_marks_updates_and_cancellations(web: Web) -> None:
    notice_id = create(web)
    feed = feedparser.parse(web.client.get("/public/cova/closures.atom").content)
    assert not feed.bozo, feed.bozo_exception
    (entry,) = feed.entries
    assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in entry.summary
    cap_links = [link for link in entry.links if link.type == "application/cap+xml"]
    assert [link.href.rsplit("/", 1)[1] for link in cap_links] == [f"{notice_id}-0.xml"]

    web.app.clock.advance(120)  # type: ignore[attr-defined]
    web.app.notices.update(OPERATOR, notice_id, reason="the ice storm")
    updated = feedparser.parse(web.client.get("/public/cova/closures.atom").content)
    (again,) = updated.entries
    assert again.id == entry.id
    assert again.updated_parsed > entry.updated_parsed
    assert updated.feed.updated_parsed > feed.feed.updated_parsed
    (cap_link,) = [link.href for link in again.links if link.type == "application/cap+xml"]
    assert cap_link.endswith(f"/cap/{notice_id}-1.xml")

    web.app.clock.advance(120)  # type: ignore[attr-defined]
    web.app.notices.cancel(OPERATOR, web.app.notices.chain(OPERATOR, notice_id)[-1].id)
    cancelled = feedparser.parse(web.client.get("/public/cova/closures.atom?lang=es").content)
    (gone,) = cancelled.entries
    assert gone.id == entry.id
    assert [t.term for t in gone.tags] == ["cancelled"]
    assert "abrirá después de todo" in gone.summary
    assert cancelled.feed.language == "es"


# --- the page, JSON-LD, JSON ------------------------------------------------------------


def test_the_page_says_the_texts_sentences_and_its_json_ld_gives_the_changed_hours(
    web: Web,
) -> None:
    notice_id = create(web)
    page = web.client.get("/public/cova")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sentence = (
        "Due to inclement weather, COVA Spine and Pain Center will be closing early Wednesday, "
        "2/19/2025 at 12:30 PM and will be closed all day Thursday, 2/20/2025. "
        "We reopen Friday, 2/21/2025 at 8:00 AM."
    )
    assert sentence in page.text
    # The same words the patients' text says, from the same code.
    texts = web.app.previews.of_notice(OPERATOR, notice_id, "sms").messages["sms"]
    assert any(sentence in message.text for message in texts)
    assert '<html lang="en">' in page.text and "(540) 555-0100" in page.text

    (raw,) = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page.text, re.S)
    data = json.loads(raw)
    assert data["@context"] == "https://schema.org" and data["@type"] == "MedicalClinic"
    assert data["telephone"] == "+15405550100"
    hours = data["specialOpeningHoursSpecification"]
    assert hours == [
        {
            "@type": "OpeningHoursSpecification",
            "opens": "08:00",
            "closes": "12:30",
            "validFrom": "2025-02-19",
            "validThrough": "2025-02-19",
        },
        {
            "@type": "OpeningHoursSpecification",
            "validFrom": "2025-02-20",
            "validThrough": "2025-02-20",
        },
    ]
    assert "opens" not in hours[1]


def test_spanish_by_query_or_accept_language(web: Web) -> None:
    create(web)
    by_query = web.client.get("/public/cova", params={"lang": "es"})
    by_header = web.client.get(
        "/public/cova", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}
    )
    for page in (by_query, by_header):
        assert '<html lang="es">' in page.text
        assert "cerrará temprano el miércoles 19 de febrero de 2025 a las 12:30 p. m." in page.text
    english = web.client.get("/public/cova", headers={"Accept-Language": "fr,en;q=0.4"})
    assert '<html lang="en">' in english.text
    data = web.client.get("/public/cova.json", params={"lang": "es"}).json()
    assert data["language"] == "es" and data["labels"]["dismiss"] == "Cerrar este aviso"


def test_the_json_names_the_closures_and_nothing_about_patients(web: Web) -> None:
    notice_id = create(web)
    web.app.fanout.fire_due()
    data = web.client.get("/public/cova.json").json()
    (closure,) = data["closures"]
    assert closure["id"] == notice_id and closure["state"] == "upcoming"
    assert closure["starts"] == "2025-02-19T12:30:00-05:00"
    assert closure["reopens"] == "2025-02-21T08:00:00-05:00"
    assert closure["cap"].endswith(f"/public/cova/cap/{notice_id}-0.xml")
    web.app.clock.set(datetime(2025, 2, 19, 13, 0, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    assert web.client.get("/public/cova.json").json()["closures"][0]["state"] == "current"
    bodies = [
        web.client.get(path).text
        for path in (
            "/public/cova",
            "/public/cova.json",
            "/public/cova/closures.ics",
            "/public/cova/closures.atom",
            f"/public/cova/cap/{notice_id}-0.xml",
        )
    ]
    for body in bodies:
        for patient_data in ("Maria", "Lopez", "555-0111", "5550111", "maria@example.org"):
            assert patient_data not in body


# --- caching --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/public/cova", "/public/cova.json", "/public/cova/closures.ics",
             "/public/cova/closures.atom", "/public/cova/banner.js"]
)  # fmt: skip
def test_answers_are_cacheable_for_a_minute_and_revalidate_with_304(web: Web, path: str) -> None:
    create(web)
    first = web.client.get(path)
    assert first.status_code == 200
    max_age = int(re.findall(r"max-age=(\d+)", first.headers["cache-control"])[0])
    assert 0 < max_age <= 60
    assert first.headers["access-control-allow-origin"] == "*"
    assert "set-cookie" not in first.headers
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = web.client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert web.client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    other = web.client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize(
    "path", ["/public/cova", "/public/cova.json", "/public/cova/closures.ics",
             "/public/cova/closures.atom", "/public/cova/banner.js"]
)  # fmt: skip
def test_head_answers_as_get_would_without_the_body(web: Web, path: str) -> None:
    """Link checkers, feed readers and CDNs ask HEAD first."""
    create(web)
    got, head = web.client.get(path), web.client.head(path)
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "last-modified", "cache-control", "content-type", "content-length"):
        assert head.headers[name] == got.headers[name], name
    assert web.client.head("/public/nowhere").status_code == 404
    schema = web.client.get("/openapi.json").json()
    assert "head" not in schema["paths"]["/public/{slug}.json"]


def test_an_update_changes_the_etag_at_once(web: Web) -> None:
    notice_id = create(web)
    etag = web.client.get("/public/cova.json").headers["etag"]
    web.app.clock.advance(30)  # type: ignore[attr-defined]
    web.app.notices.update(OPERATOR, notice_id, reason="the ice storm")
    answer = web.client.get("/public/cova.json", headers={"If-None-Match": etag})
    assert answer.status_code == 200 and "the ice storm" in answer.text


# --- what is public, and when -----------------------------------------------------------


def test_publish_time_private_notices_drafts_and_the_location_switch(web: Web) -> None:
    clock: FrozenClock = web.app.clock  # type: ignore[assignment]

    def shown() -> list[int]:
        return [c["id"] for c in web.client.get("/public/cova.json").json()["closures"]]

    queued = create(web)
    private = create(web, private=True)
    later = create(web, publish_at="2025-02-19 07:00")
    draft = create(web, send_at=None)
    assert shown() == [queued]
    assert web.client.get(f"/public/cova/cap/{private}-0.xml").status_code == 404

    clock.set(datetime(2025, 2, 19, 7, 0, tzinfo=NEW_YORK))
    assert shown() == [queued, later]
    web.app.notices.send(OPERATOR, draft, "now")
    assert shown() == [queued, later, draft]

    web.app.locations.set_public_feeds(OPERATOR, "cova", False)
    for path in ("/public/cova", "/public/cova.json", "/public/cova/banner.js",
                 "/public/cova/closures.ics", f"/public/cova/cap/{queued}-0.xml"):  # fmt: skip
        assert web.client.get(path).status_code == 404, path
    web.app.locations.set_public_feeds(OPERATOR, "cova", True)
    assert shown() == [queued, later, draft]
    assert web.client.get("/public/nowhere.json").status_code == 404


def test_a_publish_time_after_the_closure_is_refused(web: Web) -> None:
    from notifier.errors import ValidationError

    with pytest.raises(ValidationError, match="after the closure ends") as caught:
        create(web, publish_at="2025-02-22 08:00")
    assert caught.value.field == "publish_at"


def test_a_closure_over_leaves_the_page_and_banner_data(web: Web) -> None:
    create(web)
    web.app.clock.set(datetime(2025, 2, 21, 0, 0, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    assert web.client.get("/public/cova.json").json()["closures"] == []
    assert "No closures are planned" in web.client.get("/public/cova").text
    cal = calendar(web)  # the calendar keeps it for the record
    assert len(cal.walk("VEVENT")) == 2


def test_the_banner_script_is_small_and_standalone(web: Web) -> None:
    script = web.client.get("/public/cova/banner.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) <= 5 * 1024
    assert "import " not in script.text and "document.cookie" not in script.text
    assert 'credentials: "omit"' in script.text and '"role", "status"' in script.text


def test_a_cross_origin_request_from_a_website_is_allowed(web: Web) -> None:
    create(web)
    answer = web.client.get("/public/cova.json", headers={"Origin": "https://cova.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


# --- the console and the command line ---------------------------------------------------


def test_the_console_notice_page_links_the_feeds_and_gives_the_banner_snippet(web: Web) -> None:
    notice_id = create(web)
    base = web.server.url
    with signed_in(web, "viewer") as console:
        page = console.get(f"/console/notices/{notice_id}").text
    for link in (
        f'href="{base}/public/cova"',
        f'href="{base}/public/cova/closures.ics"',
        f'href="{base}/public/cova/closures.atom"',
        f'href="{base}/public/cova.json"',
        f'href="{base}/public/cova/cap/{notice_id}-0.xml"',
    ):
        assert link in page
    snippet = f'&lt;script src="{base}/public/cova/banner.js" async&gt;&lt;/script&gt;'
    assert snippet in page
    for href in re.findall(r'href="(http[^"]+/public/[^"]+)"', page):
        assert web.client.get(href).status_code == 200, href

    private = create(web, private=True)
    with signed_in(web, "manager") as console:
        assert "This notice is private" in console.get(f"/console/notices/{private}").text


def test_the_command_line_publishes_later_keeps_private_and_switches_feeds(web: Web) -> None:
    from click.testing import CliRunner

    from notifier.cli import main

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), obj={"app": web.app}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    starts, ends, reason = REFERENCE
    common = ["notice", "create", "--location", "cova", "--starts", starts, "--ends", ends]
    run(*common, "--reason", reason, "--send-at", "now", "--no-publish", "--channels", "sms")
    run(*common, "--reason", reason, "--send-at", "now", "--publish-at", "2025-02-19 07:00",
        "--channels", "sms")  # fmt: skip
    assert web.client.get("/public/cova.json").json()["closures"] == []
    web.app.clock.set(datetime(2025, 2, 19, 7, 0, tzinfo=NEW_YORK))  # type: ignore[attr-defined]
    assert len(web.client.get("/public/cova.json").json()["closures"]) == 1

    assert "public feeds off" in run("location", "feeds", "cova", "off")
    assert web.client.get("/public/cova.json").status_code == 404
    assert "public feeds on" in run("location", "feeds", "cova", "on")
    assert web.client.get("/public/cova.json").status_code == 200


def test_migration_0014_publishes_stored_notices_but_not_drafts(database_url: str) -> None:
    from sqlalchemy import text

    from notifier.storage.engine import Database
    from notifier.storage.models import Location, Notice

    at = "2025-02-18 23:00:00"
    db = Database(database_url)
    try:
        db.upgrade("0013")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO locations (id, slug, name, timezone, business_hours, "
                    "default_language, created_at) VALUES (1, 'cova', 'COVA', "
                    "'America/New_York', :hours, 'en', :at)"
                ),
                {"hours": json.dumps({"mon": ["08:00", "17:00"]}), "at": at},
            )
            for notice_id, status in ((1, "scheduled"), (2, "draft")):
                connection.execute(
                    text(
                        "INSERT INTO notices (id, location_id, kind, starts_at, ends_at, reason, "
                        "status, version, intervals, timezone, business_hours, audience, "
                        "change, created_at, updated_at) VALUES (:id, 1, 'closure', :at, :at, "
                        "'ice', 'active', 1, :intervals, 'America/New_York', :hours, "
                        "'everyone', 'original', :at, :at)"
                    ),
                    {
                        "id": notice_id,
                        "at": at,
                        "intervals": json.dumps([]),
                        "hours": json.dumps({"mon": ["08:00", "17:00"]}),
                    },
                )
                connection.execute(
                    text(
                        "INSERT INTO broadcasts (id, notice_id, send_at, channels, status, "
                        "created_at) VALUES (:id, :id, :at, 'sms', :status, :at)"
                    ),
                    {"id": notice_id, "at": at, "status": status},
                )
        db.upgrade()
        with db.session() as s:
            queued, draft = s.get(Notice, 1), s.get(Notice, 2)
            assert queued is not None and draft is not None
            assert queued.publish_at == queued.created_at and not queued.private
            assert draft.publish_at is None and not draft.private
            location = s.get(Location, 1)
            assert location is not None and location.public_feeds is True
    finally:
        db.dispose()


def test_a_manager_turns_the_feeds_off_and_on_in_the_console(web: Web) -> None:
    create(web)
    with signed_in(web, "manager") as console:
        page = console.get("/console/locations/cova")
        assert "Turn public feeds off" in page.text
        off = console.post(
            "/console/locations/cova/feeds", data={"csrf": csrf_of(page), "on": "off"}
        )
        assert off.status_code == 200 and "Public feeds turned off" in off.text
        assert web.client.get("/public/cova").status_code == 404
        on = console.post("/console/locations/cova/feeds", data={"csrf": csrf_of(off), "on": "on"})
        assert "Turn public feeds off" in on.text
    assert web.client.get("/public/cova").status_code == 200
    with signed_in(web, "viewer") as viewer:
        refused = viewer.post(
            "/console/locations/cova/feeds",
            data={"csrf": csrf_of(viewer.get("/console/notices")), "on": "off"},
        )
        assert refused.status_code == 403
    assert web.client.get("/public/cova").status_code == 200
