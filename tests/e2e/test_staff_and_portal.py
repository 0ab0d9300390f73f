"""Real-browser walks through the back office and the customer portal (Chromium, Playwright).

Every wait is Playwright's own (auto-waiting locators and ``expect``); nothing sleeps.
Screenshots go to test-output/e2e/ at the repository root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from payouts.domain.roles import Role
from tests.e2e.conftest import (
    PHONE,
    SEED_REF,
    SEED_TITLE,
    LiveServer,
    expect,
    screenshot,
)

pytestmark = pytest.mark.e2e

#: Visible form controls that no <label> names (hidden inputs such as the CSRF token excluded).
UNLABELLED_CONTROLS_JS = """() =>
  Array.from(document.querySelectorAll('input, select, textarea'))
    .filter(el => el.type !== 'hidden' && el.checkVisibility())
    .filter(el => !el.labels || el.labels.length === 0)
    .map(el => el.outerHTML)"""


def log_in(page: Any, server: LiveServer, role: Role) -> None:
    """Sign in through the login form in whatever language the page is in."""
    username, password = server.accounts[role]
    if "/login" not in page.url:
        page.goto("/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page).not_to_have_url(re.compile(r"/login"))


def fact(page: Any, term: str) -> Any:
    """The <dd> of a <dl class="facts"> entry whose <dt> reads exactly ``term``."""
    return page.locator("dl.facts > div").filter(
        has=page.get_by_text(term, exact=True)
    ).locator("dd")


def assert_fits_a_phone(page: Any) -> None:
    # Layout is only final once the stylesheet has loaded: a page reached through a redirect
    # can already show its text (what the callers wait for) while app.css is still coming.
    page.wait_for_load_state("load")
    scroll_width, inner_width = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= inner_width, (
        f"{page.url} overflows sideways on a phone: {scroll_width}px > {inner_width}px"
    )
    assert page.evaluate(UNLABELLED_CONTROLS_JS) == [], f"{page.url} has unlabelled controls"


def test_staff_records_an_incident_prices_and_imports_losses(
    open_browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    page = open_browser(locale="ja-JP")

    # Japanese is the default: the login page is in Japanese until the header link is used.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", level=1)).to_have_text("ログイン")
    screenshot(page, "login-ja")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    username, password = live_server.accounts[Role.STAFF]
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/staff/incidents$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    expect(page.get_by_role("link", name=SEED_REF)).to_be_visible()

    # Record a new incident through the form.
    page.get_by_role("link", name="Record an incident").click()
    page.get_by_label("Reference", exact=True).fill("2026-E2E-02")
    page.get_by_label("Title").fill("Cold wallet key leak")
    page.get_by_label("Type").select_option("hack")
    page.get_by_label("Occurred at (JST)").fill("2026-03-01T10:00")
    page.get_by_label("Discovered at (JST)").fill("2026-03-01T12:30")
    page.get_by_label("Description").fill("Recorded by the end-to-end test.")
    page.get_by_role("button", name="Record incident").click()
    expect(page).to_have_url(re.compile(r"/staff/incidents/2026-E2E-02$"))
    expect(page.locator(".flash.success")).to_have_text("Incident 2026-E2E-02 recorded.")
    expect(page.get_by_role("heading", level=1)).to_have_text("2026-E2E-02: Cold wallet key leak")
    expect(fact(page, "Occurred")).to_have_text("2026-03-01 10:00 JST")
    expect(fact(page, "Discovered")).to_have_text("2026-03-01 12:30 JST")

    # Fix the BTC reference price.
    page.get_by_label("Asset").select_option("BTC")
    page.get_by_label("Price in yen per whole unit").fill("14250000")
    page.get_by_label("Source").fill("VWAP BTC/JPY 2026-03-01 00:00-10:00 JST")
    page.get_by_role("button", name="Save price").click()
    expect(page.locator(".flash.success")).to_have_text("Reference price of BTC saved.")
    price_row = page.locator("#prices tbody tr")
    expect(price_row).to_have_count(1)
    expect(price_row.locator("td")).to_have_text(
        ["BTC", "JPY 14,250,000", "VWAP BTC/JPY 2026-03-01 00:00-10:00 JST", re.compile(r"^staff@e2e\.test, ")]
    )

    # A good loss file: the import page shows its counts.
    good = tmp_path / "losses-good.csv"
    good.write_text("customer_ref,asset,amount,name\n"
                    "N-1,BTC,0.25,New One\nN-1,ETH,1.5,New One\nN-2,BTC,1.5,New Two\n")
    page.get_by_label("Loss file (CSV)").set_input_files(good)
    page.get_by_role("button", name="Import losses").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Import #\d+: losses-good\.csv$"))
    expect(page.locator(".flash.success")).to_have_text("losses-good.csv imported: 3 rows.")
    expect(fact(page, "Rows")).to_have_text("3")
    expect(fact(page, "Customers created")).to_have_text("2")
    expect(fact(page, "Positions created")).to_have_text("3")
    expect(fact(page, "Positions updated")).to_have_text("0")

    # Back on the incident: the losses by asset and the import are listed.
    page.get_by_role("link", name="← 2026-E2E-02").click()
    expect(fact(page, "Affected customers")).to_have_text("2")
    expect(page.locator("#losses tbody tr")).to_have_count(2)
    expect(page.locator("#losses tbody tr").first.locator("td")).to_have_text(["BTC", "2", "1.75 BTC"])
    expect(page.locator("#losses tbody tr").nth(1).locator("td")).to_have_text(["ETH", "1", "1.5 ETH"])
    expect(page.locator("#imports tbody tr")).to_have_count(1)
    screenshot(page, "staff-incident")

    # A bad file: rejected whole, with a report naming the line.
    bad = tmp_path / "losses-bad.csv"
    bad.write_text("customer_ref,asset,amount\nN-3,BTC,0.1\nN-4,DOGE,1\n")
    page.get_by_label("Loss file (CSV)").set_input_files(bad)
    with page.expect_response(lambda r: r.request.method == "POST" and "/imports" in r.url) as posted:
        page.get_by_role("button", name="Import losses").click()
    assert posted.value.status == 422
    expect(page.get_by_role("heading", level=1)).to_have_text("File rejected: nothing was imported")
    expect(page.get_by_role("alert")).to_contain_text("losses-bad.csv has 1 problem(s).")
    expect(page.locator("ul.problems li")).to_have_text(["line 3: unknown asset 'DOGE'"])
    screenshot(page, "import-rejected")
    page.get_by_role("link", name="← 2026-E2E-02").click()
    expect(page.locator("#imports tbody tr")).to_have_count(1)  # nothing of the bad file saved
    expect(fact(page, "Affected customers")).to_have_text("2")

    # Log out: back to the login page, and the back office asks for a login again.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator(".flash.info")).to_have_text("You have been logged out on every device.")
    page.goto("/staff/incidents")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_customer_sees_own_losses_in_yen_and_is_refused_the_back_office(
    open_browser: Any, live_server: LiveServer
) -> None:
    page = open_browser(locale="ja-JP")
    page.goto("/")
    log_in(page, live_server, Role.CUSTOMER)
    expect(page).to_have_url(re.compile(r"/portal/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("損失状況のご確認")
    card = page.locator("section.card").filter(has_text=SEED_REF)
    expect(card.get_by_role("heading", level=2)).to_have_text(f"{SEED_TITLE} ({SEED_REF})")
    expect(card.locator("tbody tr")).to_have_count(2)
    expect(card.locator("tbody tr").first.locator("td").first).to_have_text("BTC")
    expect(card.locator("tbody tr").first.locator("td").nth(1)).to_have_text("0.5")
    expect(card.locator("tbody tr").nth(1).locator("td").nth(1)).to_have_text("0.333333333333333333")
    # Rounded down once over all lines: 5,000,000 + 100,000.0999... yen.
    expect(card.locator("tfoot td")).to_have_text("¥5,100,000")

    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My losses")
    expect(card.locator("tfoot td")).to_have_text("JPY 5,100,000")

    response = page.goto("/staff/incidents")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("403")
    expect(page.get_by_text("You do not have access to this page.")).to_be_visible()
    response = page.goto(f"/staff/incidents/{SEED_REF}")
    assert response is not None and response.status == 403


def test_regulator_reads_the_incident_without_any_form(
    open_browser: Any, live_server: LiveServer
) -> None:
    page = open_browser(locale="en-GB")
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    log_in(page, live_server, Role.REGULATOR)
    expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    expect(page.get_by_role("link", name="Record an incident")).to_have_count(0)

    page.get_by_role("link", name=SEED_REF).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{SEED_REF}: {SEED_TITLE}")
    expect(page.locator("#prices tbody tr")).to_have_count(2)
    expect(page.locator("#imports tbody tr")).to_have_count(1)
    main = page.locator("main")
    expect(main.locator("form")).to_have_count(0)
    expect(main.locator("input, select, textarea, button")).to_have_count(0)
    expect(page.get_by_role("button", name="Save price")).to_have_count(0)
    expect(page.get_by_role("button", name="Import losses")).to_have_count(0)

    response = page.goto("/staff/incidents/new")
    assert response is not None and response.status == 403


def test_incident_page_fits_a_phone_and_labels_every_control(
    open_browser: Any, live_server: LiveServer
) -> None:
    page = open_browser(viewport=PHONE, locale="ja-JP")
    page.goto("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("ログイン")
    assert_fits_a_phone(page)
    log_in(page, live_server, Role.STAFF)
    page.goto(f"/staff/incidents/{SEED_REF}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{SEED_REF}: {SEED_TITLE}")
    expect(page.locator("input[type=file]")).to_be_visible()  # the forms are there to check
    assert_fits_a_phone(page)
    page.goto("/staff/incidents/new")
    expect(page.locator("#ref")).to_be_visible()
    assert_fits_a_phone(page)


def test_portal_fits_a_phone(open_browser: Any, live_server: LiveServer) -> None:
    page = open_browser(viewport=PHONE, locale="ja-JP")
    page.goto("/")
    log_in(page, live_server, Role.CUSTOMER)
    expect(page.locator("tfoot td")).to_have_text("¥5,100,000")
    assert_fits_a_phone(page)
    screenshot(page, "portal-phone")
