"""The web console in a real browser (Chromium driven by Playwright) against a real
``notifier serve`` on loopback, with the Twilio-compatible and SMTP servers as the providers.

Screenshots go to ``test-artifacts/console/`` (git-ignored)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.conftest import IN_CI
from tests.support.patients import PATIENTS_CSV
from tests.support.processes import free_port, run_notifier, service_env
from tests.support.serving import serving

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
EMAIL, PASSWORD = "manager@cova.example", "storm-ready-2025"
# Layout shift as Chromium measures it (the Web Vitals CLS entries), summed per page.
CLS_PROBE = """
window.__cls = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__cls += entry.value;
}).observe({type: "layout-shift", buffered: true});
"""


@pytest.fixture
def env(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, tmp_path: Path
) -> dict[str, str]:
    port = free_port()
    return service_env(
        tmp_path,
        database_url,
        fake_twilio.info(),
        (fake_smtp.host, fake_smtp.port),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY="Yh3cN8vQ1kLs6TbW0pZr5mXj2gDf9uAe-Bn7",  # a fixed random key
    )


@pytest.fixture
def console(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``notifier serve`` with its HTTP service up; the console's base URL."""
    run_notifier(
        env,
        "location",
        "add",
        "--slug",
        "cova",
        "--name",
        "COVA Spine and Pain Center",
        "--timezone",
        "America/New_York",
        "--phone",
        "540-555-0100",
    )
    created = run_notifier(
        env, "user", "create", "--email", EMAIL, "--role", "manager", stdin=PASSWORD + "\n"
    )
    assert f"{EMAIL} (manager)" in created.stdout
    base = env["NOTIFIER_PUBLIC_BASE_URL"]
    with serving(env, tmp_path / "serve.log"):
        yield base
    served_log = (tmp_path / "serve.log").read_text()
    assert "5405550111" not in served_log and "maria@example.org" not in served_log


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
        if IN_CI:
            pytest.fail(message + "; CI must run the browser tests")
        pytest.skip(message)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/console/notices")
    expect(page).to_have_url(f"{base}/console/login?next=/console/notices")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Notices")).to_be_visible()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(
        page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_a_manager_sends_the_reference_closure_and_watches_it_delivered(
    console: str, browser: Browser, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_init_script(CLS_PROBE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, console)

    # Patients, with one malformed phone: the row-level report.
    csv_file = tmp_path / "patients.csv"
    csv_file.write_text(PATIENTS_CSV + "bad1,Bad,Row,555-01,,en,cova,yes,no\n")
    page.get_by_role("link", name="Import", exact=True).click()
    page.get_by_label("Patients CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-summary")).to_have_text(
        "Imported 5 patients (5 new, 0 updated); 1 row rejected."
    )
    expect(page.locator("table.row-errors tbody tr")).to_have_count(1)
    expect(page.locator("table.row-errors tbody")).to_contain_text("7")
    expect(page.locator("table.row-errors tbody")).to_contain_text("bad1")
    shot(page, "import-report")

    # The reference closure, with its live preview.
    page.get_by_role("link", name="New notice").first.click()
    expect(page.get_by_label("Location", exact=True)).to_have_value("cova")
    page.get_by_label("Closed from").fill("2025-02-19T12:30")
    page.get_by_label("Until (reopening or end of closure)").fill("2025-02-21T00:00")
    page.get_by_label("Reason", exact=True).fill("inclement weather")
    sms = page.locator(".sms-text")
    expect(sms).to_contain_text("closing early Wednesday, 2/19/2025 at 12:30 PM")
    expect(sms).to_contain_text("closed all day Thursday, 2/20/2025")
    expect(page.locator(".sms-meta")).to_have_text("261 characters · 2 segments · GSM-7")
    expect(page.locator(".email-subject")).to_be_visible()
    # A mistake shows next to its field as it is typed, and goes away when fixed.
    page.get_by_label("Until (reopening or end of closure)").fill("2025-02-19T10:00")
    expect(page.locator("#err-ends")).to_contain_text("the end must be later than the start")
    page.get_by_label("Until (reopening or end of closure)").fill("2025-02-21T00:00")
    expect(page.locator("#err-ends")).to_have_text("")
    expect(sms).to_contain_text("We reopen Friday, 2/21/2025 at 8:00 AM")
    shot(page, "new-notice-preview")

    page.get_by_role("button", name="Queue notice").click()
    expect(page.get_by_role("status")).to_have_text("Notice queued.")
    notice_url = page.url.split("?")[0]
    # The summary refreshes by itself while sending; the texts reach "delivered" through the
    # Twilio-compatible server's status callbacks to /webhooks/twilio/status.
    expect(page.locator('#summary [data-count="delivered"]')).to_have_text("2", timeout=30_000)
    expect(page.locator('#summary [data-count="sent"]')).to_have_text("3")  # emails
    expect(page.locator('#summary [data-count="skipped"]')).to_have_text("3")
    expect(page.locator("#summary")).to_have_attribute("data-sending", "false", timeout=15_000)
    # The log below follows without a reload, and nothing on the page jumped meanwhile.
    expect(page.locator("table.deliveries tbody tr[data-state]")).to_have_count(8)
    expect(page.locator("#facts")).to_contain_text("done")
    assert page.evaluate("window.__cls") < 0.01, "the page moved while sending"
    assert len(fake_twilio.callbacks) >= 2
    shot(page, "notice-delivered")

    page.reload()
    page.get_by_label("State").select_option("delivered")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.deliveries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("+1******01")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["state"] for r in exported] == ["delivered", "delivered"]
    assert all(r["address"].startswith("+1******") for r in exported)

    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    history = page.locator("table.events tbody")
    expect(history).to_contain_text("sent")
    expect(history).to_contain_text("delivered")
    shot(page, "delivery-history")

    # Another notice, for later, cancelled before it goes out.
    page.goto(f"{console}/console/notices/new")
    page.get_by_label("Closed from").fill("2025-02-24T08:00")
    page.get_by_label("Until (reopening or end of closure)").fill("2025-02-24T12:00")
    page.get_by_label("Reason", exact=True).fill("a burst pipe")
    page.get_by_label("Send at (location's time)").fill("2025-02-23T18:00")
    expect(page.locator(".sms-text")).to_contain_text("a burst pipe")
    page.get_by_role("button", name="Queue notice").click()
    expect(page.get_by_role("status")).to_have_text("Notice queued.")
    # Updated before anything went out: the new version simply replaces it.
    page.get_by_text("Update this notice").click()
    expect(page.get_by_label("Closed from")).to_have_value("2025-02-24T08:00")
    page.get_by_label("Reason", exact=True).fill("a burst pipe and flooding")
    expect(page.locator(".sms-text")).to_contain_text("a burst pipe and flooding")
    shot(page, "notice-update")
    page.get_by_role("button", name="Replace notice").click()
    expect(page.get_by_role("status")).to_have_text(
        "Update queued as notice 3, replacing notice 2."
    )
    expect(page.locator("#supersedes-link")).to_have_text("notice 2")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel notice").click()
    expect(page.locator("#notice-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel notice")).to_have_count(0)

    page.goto(f"{console}/console/notices")
    expect(page.locator("table.notices").nth(1)).to_contain_text("inclement weather")  # upcoming
    expect(page.locator("table.notices").nth(2)).to_contain_text("a burst pipe")  # past
    page.goto(f"{console}/console/patients")
    expect(page.locator("table.patients tbody tr")).to_have_count(5)
    shot(page, "patients")
    assert notice_url.endswith("/console/notices/1")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(notice_url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.close()


def test_an_open_after_all_notice_is_listed_as_such_with_no_actions(
    console: str, env: dict[str, str], browser: Browser, tmp_path: Path
) -> None:
    csv_file = tmp_path / "patients.csv"
    csv_file.write_text(PATIENTS_CSV)
    run_notifier(env, "patients", "import", str(csv_file))
    closure = ["--location", "cova", "--starts", "2025-02-19 12:30", "--ends", "2025-02-21 00:00"]
    run_notifier(env, "notice", "create", *closure, "--reason", "ice", "--send-at", "now")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    sign_in(page, console)
    page.goto(f"{console}/console/notices/1")
    expect(page.locator("#notice-status")).to_have_text("upcoming closure")
    expect(page.locator('#summary [data-count="delivered"]')).to_have_text("2", timeout=30_000)
    run_notifier(env, "notice", "cancel", "1", "--notify")

    page.goto(f"{console}/console/notices")
    past = page.locator('[data-period="past"] table.notices')
    expect(past.locator('[data-notice-state="2"]')).to_contain_text("open after all")
    expect(past.locator('[data-notice-state="1"]')).to_have_text("cancelled · patients told")
    expect(page.locator('[data-period="upcoming"] table.notices')).not_to_contain_text("ice")
    expect(page.locator('[data-period="now"] table.notices')).not_to_contain_text("ice")
    page.goto(f"{console}/console/notices/2")
    expect(page.locator("#notice-status")).to_contain_text("open after all")
    expect(page.locator("#facts")).to_contain_text("COVA Spine and Pain Center")
    expect(page.locator("#facts")).to_contain_text("cancelled: open after all")
    expect(page.get_by_role("button", name="Cancel notice")).to_have_count(0)
    expect(page.get_by_text("Update this notice")).to_have_count(0)
    expect(page.locator('#summary [data-count="delivered"]')).to_have_text("2", timeout=30_000)
    shot(page, "open-after-all")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # layout, not storage
def test_the_console_fits_a_phone_screen(console: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, console)
    assert no_horizontal_scroll(page)
    page.goto(f"{console}/console/notices/new")
    page.get_by_label("Closed from").fill("2025-02-19T12:30")
    page.get_by_label("Until (reopening or end of closure)").fill("2025-02-21T00:00")
    page.get_by_label("Reason", exact=True).fill("inclement weather")
    expect(page.locator(".sms-meta")).to_have_text("261 characters · 2 segments · GSM-7")
    assert no_horizontal_scroll(page)
    shot(page, "phone-new-notice")
    page.get_by_role("button", name="Queue notice").click()
    expect(page.get_by_role("status")).to_have_text("Notice queued.")
    assert no_horizontal_scroll(page)
    shot(page, "phone-notice")
    for path in ("/console/notices", "/console/patients", "/console/patients/import"):
        page.goto(console + path)
        assert no_horizontal_scroll(page), path
    # Every form control has a label a screen reader can announce.
    for path in ("/console/notices/new", "/console/patients", "/console/notices/1"):
        page.goto(console + path)
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map((el) => el.name)"""
        )
        assert unlabelled == [], (path, unlabelled)
    context.close()
