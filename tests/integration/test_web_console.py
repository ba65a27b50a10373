"""The web console over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL: sign-in,
CSRF, roles, the live preview, field errors, update, cancel (with or without telling those
already told), the delivery log, CSV, patients."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import httpx
import pytest

from notifier.clock import FrozenClock
from notifier.storage import accounts as account_rows
from notifier.storage import consent as consent_rows
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.web import PASSWORD, Web, broadcast_sms, csrf_of, sign_in

REFERENCE = {
    "location": "cova",
    "starts": "2025-02-19T12:30",
    "ends": "2025-02-21T00:00",
    "reason": "inclement weather",
    "channels": ["sms", "email"],
    "send_mode": "now",
}
BAD_CSV = (
    "external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent\n"
    "p9,Ana,Diaz,540-555-0119,ana.diaz@example.org,es,cova,yes,yes\n"
    "bad1,Bad,Row,555-01,,en,cova,yes,no\n"
    "bad2,Nowhere,Row,540-555-0120,,en,atlantis,yes,no\n"
)


@pytest.fixture
def web(web: Web) -> Web:
    """The shared served app (reference location and patients), plus this file's own setup."""
    accounts = web.app.accounts
    accounts.create_user("manager@cova.example", "manager", PASSWORD)
    accounts.create_user("viewer@cova.example", "viewer", PASSWORD)
    return web


@pytest.fixture
def manager(web: Web) -> Iterator[httpx.Client]:
    client = sign_in(web, "manager@cova.example")
    yield client
    client.close()


def token(client: httpx.Client, path: str = "/console/notices") -> str:
    return csrf_of(client.get(path))


def error_for(page: httpx.Response, field: str) -> str:
    match = re.search(rf'id="err-{field}"[^>]*>([^<]*)<', page.text)
    assert match, f"no error slot for {field}"
    return match.group(1).replace("&#39;", "'")


def test_pages_need_a_signed_in_user_and_come_back_after_sign_in(web: Web) -> None:
    with httpx.Client(base_url=web.server.url, timeout=10.0) as client:
        answer = client.get("/console/notices/new")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?next=/console/notices/new"
        page = client.get("/console/login", params={"next": "/console/notices/new"})
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        signed = client.post(
            "/console/login",
            data={
                "email": "MANAGER@cova.example",
                "password": PASSWORD,
                "csrf": csrf_of(page),
                "next": "/console/notices/new",
            },
        )
        assert signed.headers["location"] == "/console/notices/new"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
        assert client.get("/console/notices/new").status_code == 200


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(web: Web) -> None:
    with httpx.Client(base_url=web.server.url, timeout=10.0) as client:
        form = {"password": "not the password", "csrf": token(client, "/console/login")}
        wrong = client.post("/console/login", data=form | {"email": "manager@cova.example"})
        unknown = client.post("/console/login", data=form | {"email": "nobody@cova.example"})
        assert wrong.status_code == unknown.status_code == 401
        assert "do not match" in wrong.text and "do not match" in unknown.text
        assert client.get("/console/notices").status_code == 303


def test_passwords_are_stored_only_as_argon2_hashes(web: Web) -> None:
    with web.app.db.session() as s:
        user = account_rows.user_by_email(s, "manager@cova.example")
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


def test_every_form_needs_the_sessions_csrf_token(web: Web, manager: httpx.Client) -> None:
    with httpx.Client(base_url=web.server.url, timeout=10.0) as stranger:
        other_token = token(stranger, "/console/login")
    assert manager.post("/console/notices", data=REFERENCE).status_code == 403
    assert (
        manager.post("/console/notices", data=REFERENCE | {"csrf": other_token}).status_code == 403
    )
    assert manager.post("/console/logout").status_code == 403
    assert web.app.notices.all(OPERATOR) == []


def test_a_tampered_session_cookie_signs_nobody_in(web: Web, manager: httpx.Client) -> None:
    cookie = manager.cookies["notifier_console"]
    with httpx.Client(base_url=web.server.url, timeout=10.0) as forger:
        forger.cookies.set("notifier_console", cookie[:-2] + "xx", path="/console")
        assert forger.get("/console/notices").status_code == 303


def test_the_live_preview_shows_each_message_with_segments_and_encoding(
    manager: httpx.Client,
) -> None:
    csrf = token(manager)
    answer = manager.post(
        "/console/notices/preview", data=REFERENCE, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200
    assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in answer.text
    assert "261 characters · 2 segments · GSM-7" in answer.text
    assert "Email · en" in answer.text and "Subject:" in answer.text
    assert "SMS · es" not in answer.text  # no Spanish-speaking patient at cova yet


def test_the_preview_stores_nothing_and_names_the_field_at_fault(
    web: Web, manager: httpx.Client
) -> None:
    csrf = token(manager)
    answer = manager.post(
        "/console/notices/preview",
        data=REFERENCE | {"ends": "2025-02-19T10:00"},
        headers={"X-CSRF-Token": csrf},
    )
    assert 'data-field="ends"' in answer.text
    assert "the end must be later than the start" in answer.text
    assert web.app.notices.all(OPERATOR) == []


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"reason": " "}, "reason", "give a reason"),
        ({"starts": ""}, "starts", "give the date and time the closure starts"),
        ({"ends": "2025-02-19T10:00"}, "ends", "the end must be later than the start"),
        ({"starts": "2025-03-09T02:30"}, "starts", "does not exist in America/New_York"),
        ({"send_mode": "at", "send_at": "2025-02-22T09:00"}, "send_at", "after the closure"),
        ({"send_mode": "at", "send_at": "2025-02-17T09:00"}, "send_at", "is in the past"),
        ({"channels": []}, "channels", "choose at least one channel"),
        ({"location": ""}, "location", "choose the location"),
        ({"reminder_at": "2025-02-18T17:00"}, "reminder_at", "must be after the send time"),
        ({"fallback": "sms>fax"}, "fallback", "fallback 'sms&gt;fax' not understood"),
    ],
)
def test_create_errors_appear_next_to_their_field_and_keep_the_input(
    web: Web, manager: httpx.Client, change: dict[str, object], field: str, words: str
) -> None:
    form = REFERENCE | change | {"csrf": token(manager)}
    page = manager.post("/console/notices", data=form)
    assert page.status_code == 422
    assert words in error_for(page, field)
    assert f'id="{field}"' not in page.text or 'aria-invalid="true"' in page.text
    assert "inclement weather" in page.text or change.get("reason")  # typed values survive
    assert web.app.notices.all(OPERATOR) == []


def test_a_manager_queues_a_notice_and_sees_its_log_summary_and_history(
    web: Web, manager: httpx.Client
) -> None:
    created = manager.post("/console/notices", data=REFERENCE | {"csrf": token(manager)})
    assert created.status_code == 303
    notice_id = int(created.headers["location"].split("/")[-1].split("?")[0])
    page = manager.get(created.headers["location"])
    assert "Notice queued." in page.text and "inclement weather" in page.text
    assert 'data-sending="true"' in page.text  # scheduled: the summary keeps refreshing

    dispatcher = web.app.dispatcher()
    try:
        web.app.fanout.fire_due()
        dispatcher.drain()
    finally:
        dispatcher.close()
    web.twilio.flush()

    summary = manager.get(f"/console/notices/{notice_id}/summary").text
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', summary))
    assert counts["total"] == "8" and counts["skipped"] == "3"
    assert int(counts["delivered"]) + int(counts["sent"]) == 5
    log = manager.get(f"/console/notices/{notice_id}", params={"channel": "sms"}).text
    assert log.count('<tr data-state="') == 4  # 3 texts (one shared phone) + 1 skipped
    assert "+1******0111" in log and "5550111" not in log
    first = int(re.findall(r'href="/console/deliveries/(\d+)"', log)[0])
    history = manager.get(f"/console/deliveries/{first}").text
    assert "History" in history and "No events yet." not in history
    assert re.search(r'<span class="state state-sent">sent</span></td><td>1</td>', history)
    # The queued event, derived from the delivery row, comes first.
    kinds = re.findall(r"<tr><td>[^<]*</td><td>(\w+)</td>", history)
    assert kinds[0] == "queued" and "sent" in kinds


def test_a_manager_sets_a_fallback_order_and_an_emergency_reason(
    web: Web, manager: httpx.Client
) -> None:
    form = REFERENCE | {
        "fallback": "sms>email",
        "emergency": "the building is flooding",
        "csrf": token(manager),
    }
    created = manager.post("/console/notices", data=form)
    assert created.status_code == 303, created.text
    notice_id = int(created.headers["location"].split("/")[-1].split("?")[0])
    view = web.app.notices.get(OPERATOR, notice_id)
    assert view.broadcasts[0].fallback == ["sms", "email"]
    assert view.emergency_reason == "the building is flooding"
    page = manager.get(f"/console/notices/{notice_id}").text
    assert "sent this alone, without a second manager" in page


def test_the_csv_export_follows_the_filters_and_masks_addresses(
    web: Web, manager: httpx.Client
) -> None:
    notice_id = broadcast_sms(web.app, FakeChannel())
    answer = manager.get(
        f"/console/notices/{notice_id}/deliveries.csv", params={"state": "sent", "q": "0111"}
    )
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["address"] for r in rows] == ["+1******0111"]
    everything = list(
        csv.DictReader(
            io.StringIO(manager.get(f"/console/notices/{notice_id}/deliveries.csv").text)
        )
    )
    assert len(everything) == 4 and all("*" in r["address"] for r in everything)


def test_a_manager_adds_a_reminder_broadcast(web: Web, manager: httpx.Client) -> None:
    form = REFERENCE | {"reminder_at": "2025-02-19T07:30", "csrf": token(manager)}
    created = manager.post("/console/notices", data=form)
    assert created.status_code == 303
    notice_id = int(created.headers["location"].split("/")[-1].split("?")[0])
    broadcasts = web.app.notices.get(OPERATOR, notice_id).broadcasts
    assert [str(b.send_at)[11:16] for b in broadcasts] == ["18:00", "07:30"]
    page = manager.get(f"/console/notices/{notice_id}").text
    assert page.count("Broadcast ") >= 2


def test_a_manager_cancels_a_scheduled_notice(web: Web, manager: httpx.Client) -> None:
    form = REFERENCE | {"send_mode": "at", "send_at": "2025-02-19T07:00", "csrf": token(manager)}
    notice_id = int(
        manager.post("/console/notices", data=form).headers["location"].split("/")[-1].split("?")[0]
    )
    page = manager.get(f"/console/notices/{notice_id}")
    cancelled = manager.post(f"/console/notices/{notice_id}/cancel", data={"csrf": csrf_of(page)})
    assert cancelled.status_code == 303
    assert web.app.notices.get(OPERATOR, notice_id).status == "cancelled"
    again = manager.get(f"/console/notices/{notice_id}").text
    assert "Cancel notice" not in again and 'data-sending="false"' in again
    listing = manager.get("/console/notices").text
    past = listing[listing.index("Past, cancelled and open after all") :]
    assert f'href="/console/notices/{notice_id}"' in past


def test_a_viewer_reads_the_log_but_cannot_change_anything(web: Web) -> None:
    notice_id = broadcast_sms(web.app, FakeChannel())
    viewer = sign_in(web, "viewer@cova.example")
    try:
        page = viewer.get(f"/console/notices/{notice_id}")
        assert page.status_code == 200 and "Cancel notice" not in page.text
        assert "New notice" not in viewer.get("/console/notices").text
        csrf = csrf_of(page)
        assert viewer.get("/console/notices/new").status_code == 403
        assert viewer.post("/console/notices", data=REFERENCE | {"csrf": csrf}).status_code == 403
        refused = viewer.post(f"/console/notices/{notice_id}/cancel", data={"csrf": csrf})
        assert refused.status_code == 403
        assert viewer.get("/console/patients/import").status_code == 403
    finally:
        viewer.close()
    assert web.app.notices.get(OPERATOR, notice_id).status != "cancelled"


def test_the_import_page_reports_each_bad_row_and_imports_the_good_ones(
    web: Web, manager: httpx.Client
) -> None:
    csrf = token(manager, "/console/patients/import")
    answer = manager.post(
        "/console/patients/import",
        data={"csrf": csrf},
        files={"file": ("patients.csv", BAD_CSV.encode(), "text/csv")},
    )
    assert answer.status_code == 422  # some rows rejected, as the API answers
    assert "Imported 1 patient (1 new, 0 updated); 2 rows rejected." in answer.text
    rows = re.findall(
        r"<tr><td>(\d+)</td><td class=\"mono\">(\w+)</td><td>(\w+)</td><td>([^<]+)</td>",
        answer.text,
    )
    assert [(line, who, name) for line, who, name, _ in rows] == [
        ("3", "bad1", "phone"),
        ("4", "bad2", "location"),
    ]
    assert "atlantis" in rows[1][3]
    bad_header = manager.post(
        "/console/patients/import",
        data={"csrf": csrf},
        files={"file": ("x.csv", b"id,name\n1,x\n", "text/csv")},
    )
    assert bad_header.status_code == 422
    assert "lacks columns" in error_for(bad_header, "file")


def test_the_patients_list_shows_consent_with_masked_addresses(
    web: Web, manager: httpx.Client
) -> None:
    with web.app.db.session() as s:
        consent_rows.add_opt_out(s, "sms", "+15405550111", "keyword", web.app.clock.now())
    page = manager.get("/console/patients", params={"location": "cova"}).text
    assert "(5)" in page
    row = re.search(r"<td class=\"mono\">p1</td>.*?</tr>", page, re.S)
    assert row is not None
    assert "+1******0111" in row.group(0) and "m***@example.org" in row.group(0)
    assert "opted out" in row.group(0)
    p5 = re.search(r"<td class=\"mono\">p5</td>.*?</tr>", page, re.S)
    assert p5 is not None and p5.group(0).count("no consent") == 3  # sms, email, voice
    assert "maria@example.org" not in page and "5550111" not in page


def test_sign_out_ends_the_session(web: Web, manager: httpx.Client) -> None:
    out = manager.post("/console/logout", data={"csrf": token(manager)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert manager.get("/console/notices").status_code == 303


def test_the_stylesheet_and_script_are_served_as_static_assets(web: Web) -> None:
    with httpx.Client(base_url=web.server.url, timeout=10.0) as client:
        css = client.get("/console/static/console.css")
        js = client.get("/console/static/console.js")
        assert css.status_code == js.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert client.get("/console/static/../../settings.py").status_code == 404


def test_repeated_wrong_passwords_make_that_email_wait(web: Web, clock: FrozenClock) -> None:
    with httpx.Client(base_url=web.server.url, timeout=10.0) as client:
        csrf = token(client, "/console/login")
        wrong = {"email": "manager@cova.example", "password": "guess", "csrf": csrf}
        assert [client.post("/console/login", data=wrong).status_code for _ in range(5)] == [
            401
        ] * 5
        locked = client.post("/console/login", data=wrong | {"password": PASSWORD})
        assert locked.status_code == 429
        assert "try again in 15 min" in locked.text
        other = client.post(
            "/console/login",
            data={"email": "viewer@cova.example", "password": PASSWORD, "csrf": csrf},
        )
        assert other.status_code == 303  # only that email waits
        clock.advance(15 * 60)
        with httpx.Client(base_url=web.server.url, timeout=10.0) as later:
            retry = later.post(
                "/console/login",
                data={
                    "email": "manager@cova.example",
                    "password": PASSWORD,
                    "csrf": token(later, "/console/login"),
                },
            )
            assert retry.status_code == 303


def test_the_preview_button_works_without_javascript(web: Web, manager: httpx.Client) -> None:
    form = REFERENCE | {"csrf": token(manager), "action": "preview"}
    page = manager.post("/console/notices", data=form)
    assert page.status_code == 200
    assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in page.text
    assert 'value="inclement weather"' in page.text
    assert web.app.notices.all(OPERATOR) == []


def test_unknown_ids_get_a_page_not_a_stack_trace(manager: httpx.Client) -> None:
    for path in ("/console/notices/999", "/console/deliveries/999", "/console/notices?location=x"):
        page = manager.get(path)
        assert page.status_code == 404 and "Not found" in page.text, path


# --- updates and "open after all" ---------------------------------------------------------


def create(manager: httpx.Client, **changes: object) -> int:
    answer = manager.post("/console/notices", data=REFERENCE | changes | {"csrf": token(manager)})
    assert answer.status_code == 303, answer.text
    return int(answer.headers["location"].split("/")[-1].split("?")[0])


def send_texts_only(web: Web) -> set[str]:
    """Fire due broadcasts and send only the texts (emails stay queued); the texted addresses."""
    channel = FakeChannel()
    web.app.fanout.fire_due()
    web.app.dispatcher({"sms": channel}, "w1").drain()
    return {m.to for m in channel.sent}


def queued_for(web: Web, notice_id: int) -> list[tuple[str, str]]:
    """(channel, masked address) of every delivery the notice's broadcast queued, once fired."""
    web.app.fanout.fire_due()
    return sorted((d.channel, d.address) for d in web.app.deliveries.log(OPERATOR, notice_id))


def update_form(manager: httpx.Client, notice_id: int, **changes: str) -> dict[str, object]:
    page = manager.get(f"/console/notices/{notice_id}")
    assert "Update this notice" in page.text
    prefilled = dict(
        re.findall(
            r'id="(starts|ends)" name="\w+" type="datetime-local" value="([^"]*)"', page.text
        )
    )
    return {
        "csrf": csrf_of(page),
        "starts": prefilled["starts"],
        "ends": prefilled["ends"],
        "reason": "inclement weather",
        "message": "",
        "action": "send",
    } | changes


def test_a_manager_updates_a_scheduled_notice_and_sees_the_version_chain(
    web: Web, manager: httpx.Client
) -> None:
    original = create(manager, send_mode="at", send_at="2025-02-19T07:00")
    form = update_form(manager, original, ends="2025-02-20T12:00")
    assert form["starts"] == "2025-02-19T12:30" and form["ends"] == "2025-02-20T12:00"
    page = manager.get(f"/console/notices/{original}").text
    assert 'value="2025-02-21T00:00"' in page  # prefilled in the location's zone
    assert "Replace notice" in page  # nothing went out yet

    answer = manager.post(f"/console/notices/{original}/update", data=form)
    assert answer.status_code == 303
    new = int(answer.headers["location"].split("/")[-1].split("?")[0])
    assert answer.headers["location"] == f"/console/notices/{new}?updated=1"
    view = web.app.notices.get(OPERATOR, new)
    assert (view.version, view.supersedes_id, view.change) == (2, original, "original")
    assert view.ends.startswith("2025-02-20T12:00")
    assert view.broadcasts[0].send_at == "2025-02-19T07:00:00-05:00"  # the old send time
    assert web.app.notices.get(OPERATOR, original).status == "superseded"

    newer = manager.get(answer.headers["location"]).text
    assert "Update queued" in newer
    assert f'href="/console/notices/{original}" id="supersedes-link"' in newer
    older = manager.get(f"/console/notices/{original}").text
    assert f'href="/console/notices/{new}" id="superseded-by-link"' in older
    assert "Update this notice" not in older and "Cancel notice" not in older


def test_an_update_after_a_partial_send_corrects_the_texted_and_tells_the_rest(
    web: Web, manager: httpx.Client
) -> None:
    original = create(manager)
    texted = send_texts_only(web)
    assert texted and all(a.startswith("+1") for a in texted)
    form = update_form(manager, original, reason="ice")
    page = manager.get(f"/console/notices/{original}").text
    assert "Send update" in page and 'name="change" value="update"' in page
    preview = manager.post(
        "/console/notices/preview",
        data=REFERENCE | {"reason": "ice", "change": "update"},
        headers={"X-CSRF-Token": str(form["csrf"])},
    )
    assert "UPDATE: Due to ice" in preview.text

    answer = manager.post(f"/console/notices/{original}/update", data=form)
    assert answer.status_code == 303
    new = int(answer.headers["location"].split("/")[-1].split("?")[0])
    assert web.app.notices.get(OPERATOR, new).change == "update"
    texted_before = {d.address for d in web.app.deliveries.log(OPERATOR, original, state="sent")}
    queued = queued_for(web, new)
    # The texted phones (to be corrected), and every email: none had gone out (withdrawn), so
    # those patients get the latest version as a plain notice.
    assert {a for c, a in queued if c == "sms"} >= texted_before
    withdrawn = web.app.deliveries.log(OPERATOR, original, channel="email", state="cancelled")
    assert withdrawn and {d.error for d in withdrawn} == {f"superseded by notice {new}"}
    assert {d.address for d in withdrawn} <= {a for c, a in queued if c == "email"}
    channel = FakeChannel()
    web.app.dispatcher({"sms": channel}, "w1").drain()
    assert {m.to for m in channel.sent} == texted
    assert all(m.text.startswith("UPDATE: ") and "Due to ice" in m.text for m in channel.sent)


def test_cancel_with_notify_tells_only_those_already_told(web: Web, manager: httpx.Client) -> None:
    original = create(manager)
    send_texts_only(web)
    page = manager.get(f"/console/notices/{original}")
    assert "Tell patients who were already notified that we are open after all" in page.text
    answer = manager.post(
        f"/console/notices/{original}/cancel", data={"csrf": csrf_of(page), "notify": "1"}
    )
    assert answer.status_code == 303
    follow_up = int(answer.headers["location"].split("/")[-1])
    assert follow_up != original
    assert web.app.notices.get(OPERATOR, original).status == "cancelled"
    assert web.app.notices.get(OPERATOR, follow_up).change == "cancellation"
    prior = sorted(
        (d.channel, d.address) for d in web.app.deliveries.log(OPERATOR, original, state="sent")
    )
    assert queued_for(web, follow_up) == prior
    assert web.app.deliveries.log(OPERATOR, original, channel="email", state="pending") == []
    chain = manager.get(f"/console/notices/{follow_up}").text
    assert "open after all" in chain and 'id="supersedes-link"' in chain


def test_cancel_without_notify_tells_nobody(web: Web, manager: httpx.Client) -> None:
    original = create(manager)
    send_texts_only(web)
    page = manager.get(f"/console/notices/{original}")
    answer = manager.post(f"/console/notices/{original}/cancel", data={"csrf": csrf_of(page)})
    assert answer.headers["location"] == f"/console/notices/{original}"
    assert [v.id for v in web.app.notices.all(OPERATOR)] == [original]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"ends": "2025-02-19T10:00"}, "ends", "the end must be later than the start"),
        ({"reason": " "}, "reason", "give a reason"),
        ({"starts": ""}, "starts", "give the date and time the closure starts"),
        ({"ends": "2025-02-18T10:00", "starts": "2025-02-18T09:00"}, "ends", "already over"),
    ],
)
def test_update_errors_appear_next_to_their_field_and_store_nothing(
    web: Web, manager: httpx.Client, change: dict[str, str], field: str, words: str
) -> None:
    original = create(manager, send_mode="at", send_at="2025-02-19T07:00")
    page = manager.post(
        f"/console/notices/{original}/update", data=update_form(manager, original, **change)
    )
    assert page.status_code == 422
    assert words in error_for(page, field)
    assert '<details id="update" class="update" open>' in page.text
    assert [v.id for v in web.app.notices.all(OPERATOR)] == [original]
    assert web.app.notices.get(OPERATOR, original).status == "active"


def test_updating_needs_a_manager_and_the_csrf_token(web: Web, manager: httpx.Client) -> None:
    original = create(manager, send_mode="at", send_at="2025-02-19T07:00")
    form = update_form(manager, original, reason="ice")
    assert (
        manager.post(f"/console/notices/{original}/update", data=form | {"csrf": ""}).status_code
        == 403
    )
    viewer = sign_in(web, "viewer@cova.example")
    try:
        page = viewer.get(f"/console/notices/{original}")
        assert "Update this notice" not in page.text and "open after all" not in page.text
        answer = viewer.post(
            f"/console/notices/{original}/update", data=form | {"csrf": csrf_of(page)}
        )
        assert answer.status_code == 403
        refused = viewer.post(
            f"/console/notices/{original}/cancel", data={"csrf": csrf_of(page), "notify": "1"}
        )
        assert refused.status_code == 403
    finally:
        viewer.close()
    assert [v.id for v in web.app.notices.all(OPERATOR)] == [original]
    assert web.app.notices.get(OPERATOR, original).reason == "inclement weather"


def test_an_update_that_keeps_the_times_keeps_every_interval(
    web: Web, manager: httpx.Client
) -> None:
    original = web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova",
            starts=None,
            ends=None,
            reason="inclement weather",
            send_at="2025-02-19 07:00",
            intervals=("2025-02-19 12:30/2025-02-19 17:00", "2025-02-20 08:00/2025-02-20 12:00"),
        ),
    ).id
    page = manager.get(f"/console/notices/{original}")
    assert "This closure has 2 separate intervals" in page.text
    answer = manager.post(
        f"/console/notices/{original}/update", data=update_form(manager, original, reason="ice")
    )
    assert answer.status_code == 303
    new = web.app.notices.get(
        OPERATOR, int(answer.headers["location"].split("/")[-1].split("?")[0])
    )
    assert new.reason == "ice" and len(new.intervals) == 2
