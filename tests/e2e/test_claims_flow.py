"""In a real browser: a claim from opening to approval, with a dispute, an adjustment and four eyes.

Staff open the incident's claims; the second customer (no login before the claims opened)
activates their account with a one-time code, disputes the claim with evidence, staff adjust
it, the customer accepts the new version, and two people approve it: a member of staff who did
not make the adjustment, then an approver. The one who adjusted it is never offered the button.

Every page is in English (GET /lang/en first): the Japanese catalog changes under the tests.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from payouts.domain.roles import Role
from payouts.services import activation
from tests.conftest import STAFF
from tests.e2e.conftest import SEED_REF, SEED_TITLE, LiveServer, expect, screenshot
from tests.e2e.test_staff_and_portal import fact

pytestmark = pytest.mark.e2e

#: The seeded customer without a login: 1.25 BTC at 10,000,000 yen, above the four-eyes threshold.
CUSTOMER = "C-E2E-2"
PHONE_390 = {"width": 390, "height": 844}


def tiny_png() -> bytes:
    """A valid 1x1 PNG (a red pixel): what a customer's screenshot of a statement would be."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, then R G B
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def english(page: Any, path: str) -> None:
    """Switch this browser's session to English, then land on ``path``."""
    page.goto(f"/lang/en?next={path}")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def sign_in(page: Any, username: str, password: str) -> None:
    if "/login" not in page.url:
        page.goto("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator(".flash.info")).to_have_text("You have been logged out on every device.")


def claim_lines(page: Any) -> Any:
    """The rows of the portal's "how the claim is calculated" table."""
    return page.locator("table[aria-labelledby=lines-caption] tbody tr")


def claim_total(page: Any) -> Any:
    return page.locator("table[aria-labelledby=lines-caption] tfoot td")


def test_customer_disputes_staff_adjust_and_two_people_approve(
    open_browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    staff_a = live_server.accounts[Role.STAFF]  # opens the claims and makes the adjustment
    staff_b = live_server.add_login(Role.STAFF, "staff2@e2e.test")  # the first approval
    approver = live_server.add_login(Role.APPROVER, "approver@e2e.test")  # the second approval

    # --- staff open the incident's claims --------------------------------------------------
    staff = open_browser(locale="en-GB")
    english(staff, "/login")
    sign_in(staff, *staff_a)
    staff.goto(f"/staff/incidents/{SEED_REF}")
    claims_section = staff.locator("#claims")
    expect(claims_section).to_contain_text("The claims are not open yet")
    claims_section.get_by_role("button", name="Open claims to customers").click()
    expect(staff).to_have_url(re.compile(r"/staff/claims\?"))
    expect(staff.locator(".flash.success")).to_have_text("2 claims opened to customers.")
    expect(staff.locator("tbody tr").filter(has_text=CUSTOMER)).to_have_count(1)

    # The exchange hands the customer a one-time code (its app or a letter).
    with live_server.db() as session:
        code = activation.issue_activation_code(session, STAFF, CUSTOMER)
    password = "correct horse battery staple e2e"

    # --- the customer activates the login and reads the claim ------------------------------
    customer = open_browser(locale="en-GB")
    english(customer, "/activate")
    expect(customer.get_by_role("heading", level=1)).to_have_text("Activate your account")
    customer.get_by_label("Customer number").fill(CUSTOMER)
    customer.get_by_label("Activation code").fill(code.lower())  # typed as read: case does not matter
    customer.get_by_label("New password", exact=True).fill(password)
    customer.get_by_label("New password again").fill(password)
    customer.get_by_role("button", name="Activate").click()
    expect(customer).to_have_url(re.compile(r"/login$"))
    expect(customer.locator(".flash.success")).to_have_text(
        "Your account is active. Sign in with your customer number and your new password.")
    sign_in(customer, CUSTOMER, password)
    expect(customer).to_have_url(re.compile(r"/portal/$"))
    expect(customer.get_by_role("heading", level=1)).to_have_text("My losses")

    card = customer.locator("section.claim-card").filter(has_text=SEED_REF)
    card_total = card.locator("dl.facts > div").filter(has=customer.get_by_text("Claim total", exact=True))
    expect(card_total.locator("dd")).to_have_text("JPY 12,500,000")
    card.get_by_role("link", name=f"Open the claim {SEED_REF}").click()
    expect(customer).to_have_url(re.compile(r"/portal/claims/\d+$"))
    claim_id = int(re.search(r"/portal/claims/(\d+)$", customer.url).group(1))  # type: ignore[union-attr]
    expect(customer.get_by_role("heading", level=1)).to_have_text(f"Claim for {SEED_REF}")
    expect(fact(customer, "Incident")).to_have_text(f"{SEED_TITLE} ({SEED_REF})")
    expect(fact(customer, "Status")).to_have_text("Open: waiting for you")
    expect(fact(customer, "Version")).to_have_text("1")
    expect(fact(customer, "Claim total")).to_have_text("JPY 12,500,000")
    expect(claim_lines(customer)).to_have_count(1)
    expect(claim_lines(customer).first.locator("td")).to_have_text(
        ["BTC", "1.25", "JPY 10,000,000", "VWAP BTC/JPY 2026-01-05 00:00-09:00 JST", "JPY 12,500,000"])
    expect(claim_total(customer)).to_have_text("JPY 12,500,000")
    screenshot(customer, "portal-claim-open")

    # --- the customer disputes it: a reason, the right amount and a statement ---------------
    statement = tmp_path / "statement.png"
    statement.write_bytes(tiny_png())
    customer.get_by_role("link", name="Dispute the claim…").click()
    customer.get_by_label("What is wrong with the claim?").fill(
        "I held 1.5 BTC at the time of the hack, not 1.25: see my statement.")
    customer.get_by_label("Correct amount of BTC").fill("1.5")
    customer.get_by_label("Evidence files (optional)").set_input_files(statement)
    customer.get_by_role("button", name="Send the dispute").click()
    expect(customer).to_have_url(re.compile(rf"/portal/claims/{claim_id}$"))
    expect(customer.locator(".flash.success")).to_have_text(
        "Your dispute was sent with 1 file(s). Staff review it next.")
    expect(fact(customer, "Status")).to_have_text("Disputed by you")
    disputes = customer.locator("section[aria-labelledby=disputes-heading]")
    expect(disputes).to_contain_text("Amounts you said are right: 1.5 BTC")
    expect(disputes.get_by_role("link", name="statement.png")).to_be_visible()
    expect(customer.get_by_role("button", name="Send the dispute")).to_have_count(0)
    sign_out(customer)

    # --- staff find it in the "disputed" queue, read the evidence and adjust ---------------
    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Claims").click()
    staff.get_by_label("Queue", exact=True).select_option("disputed")
    staff.get_by_role("button", name="Show", exact=True).click()
    expect(staff).to_have_url(re.compile(r"[?&]filter=disputed"))
    expect(staff.locator("table caption")).to_have_text("Disputed")
    rows = staff.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(2)).to_contain_text(CUSTOMER)
    expect(rows.first.locator("td").nth(3)).to_have_text("Disputed")
    expect(rows.first.locator("td").nth(4)).to_have_text("JPY 12,500,000")
    expect(rows.first).to_contain_text("Above the threshold")
    screenshot(staff, "staff-claims-queue-disputed")

    rows.first.get_by_role("link", name=f"#{claim_id}").click()
    expect(staff).to_have_url(re.compile(rf"/staff/claims/{claim_id}$"))
    expect(staff.get_by_role("heading", level=1)).to_have_text(f"Claim #{claim_id}")
    expect(fact(staff, "Status")).to_have_text("Disputed")
    expect(fact(staff, "Total")).to_have_text("JPY 12,500,000")
    dispute_section = staff.locator("#disputes")
    expect(dispute_section).to_contain_text("I held 1.5 BTC at the time of the hack")
    expect(dispute_section).to_contain_text("Amounts the customer says are right: 1.5 BTC")
    evidence_link = dispute_section.get_by_role("link", name="statement.png")
    expect(evidence_link).to_be_visible()
    expect(dispute_section).to_contain_text("image/png")
    with staff.expect_download() as download:
        evidence_link.click()
    assert download.value.suggested_filename == "statement.png"
    assert Path(download.value.path()).read_bytes() == statement.read_bytes()
    expect(staff.locator("#approve-why")).to_have_text(
        "The customer disputed this version: adjust it, ask for information or reject it.")
    expect(staff.get_by_role("button", name="Approve this claim")).to_have_count(0)

    expect(staff.get_by_label("BTC (whole units)")).to_have_value("1.25")
    staff.get_by_label("BTC (whole units)").fill("1.5")
    staff.get_by_label("Reason for the adjustment (the customer sees it)").fill(
        "The customer's statement shows 1.5 BTC at the time of the hack.")
    staff.get_by_role("button", name="Save as a new version").click()
    expect(staff.locator(".flash.success")).to_have_text(
        f"Claim #{claim_id} adjusted: the customer must accept the new version.")
    expect(fact(staff, "Status")).to_have_text("Open: waiting for the customer")
    expect(fact(staff, "Version")).to_have_text("2")
    expect(fact(staff, "Total")).to_have_text("JPY 15,000,000")

    # --- the customer signs in again and accepts version 2 ---------------------------------
    sign_in(customer, CUSTOMER, password)
    customer.get_by_role("link", name=f"Open the claim {SEED_REF}").click()
    expect(fact(customer, "Status")).to_have_text("Open: waiting for you")
    expect(fact(customer, "Version")).to_have_text("2")
    expect(customer.locator("section[aria-labelledby=adjusted-heading]")).to_contain_text(
        "The customer's statement shows 1.5 BTC at the time of the hack.")
    expect(claim_lines(customer)).to_have_count(1)
    expect(claim_lines(customer).first.locator("td").nth(1)).to_have_text("1.5")
    expect(claim_total(customer)).to_have_text("JPY 15,000,000")
    customer.get_by_role("button", name="Accept version 2").click()
    expect(customer.locator(".flash.success")).to_have_text(
        "You accepted version 2 of the claim. Staff review it next; your receipt is ready.")
    expect(fact(customer, "Status")).to_have_text("Accepted by you")

    # --- four eyes: the maker of version 2 is not offered the approval ---------------------
    staff.reload()
    expect(fact(staff, "Status")).to_have_text("Accepted by the customer")
    expect(staff.locator("#approve-why")).to_have_text("You adjusted this version, so someone else must approve it.")
    expect(staff.get_by_role("button", name="Approve this claim")).to_have_count(0)
    expect(staff.get_by_text("Above JPY 1,000,000: two different people approve, the second an approver.")
           ).to_be_visible()
    sign_out(staff)

    # A second member of staff gives the first approval: the claim waits for an approver.
    sign_in(staff, *staff_b)
    staff.goto(f"/staff/claims/{claim_id}")
    expect(fact(staff, "Approvals")).to_have_text("0 of 2")
    staff.get_by_role("button", name="Approve this claim").click()
    expect(staff.locator(".flash.success")).to_have_text(f"Your approval of claim #{claim_id} is recorded.")
    expect(fact(staff, "Status")).to_have_text("Waiting for the second approval")
    expect(fact(staff, "Approvals")).to_have_text("1 of 2")
    expect(staff.locator("#approve-why")).to_have_text(
        "You already approved this version; a different person must give the second approval.")
    expect(staff.get_by_role("button", name="Approve this claim")).to_have_count(0)
    sign_out(staff)

    # The approver gives the second approval.
    sign_in(staff, *approver)
    staff.goto(f"/staff/claims/{claim_id}")
    expect(fact(staff, "Status")).to_have_text("Waiting for the second approval")
    staff.get_by_role("button", name="Approve this claim").click()
    expect(staff.locator(".flash.success")).to_have_text(f"Your approval of claim #{claim_id} is recorded.")
    expect(fact(staff, "Status")).to_have_text("Approved")
    expect(fact(staff, "Approvals")).to_have_text("2 of 2")
    expect(fact(staff, "Total")).to_have_text("JPY 15,000,000")
    approvals = staff.locator("#approvals tbody tr")
    expect(approvals).to_have_count(2)
    expect(approvals.nth(0).locator("td").first).to_have_text("staff2@e2e.test")
    expect(approvals.nth(1).locator("td").first).to_have_text("approver@e2e.test")
    screenshot(staff, "staff-claim-approved")

    # --- the customer sees the approved claim, on a desktop and on a phone -----------------
    customer.reload()
    expect(fact(customer, "Status")).to_have_text("Approved")
    expect(fact(customer, "Claim total")).to_have_text("JPY 15,000,000")
    expect(customer.locator("ol.timeline")).to_contain_text("Approved.")
    expect(customer.get_by_role("button", name="Accept version 2")).to_have_count(0)
    screenshot(customer, "portal-claim-approved")
    customer.set_viewport_size(PHONE_390)
    customer.reload()
    expect(fact(customer, "Status")).to_have_text("Approved")
    scroll_width, inner_width = customer.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the claim page overflows a 390px phone: {scroll_width}px"
    screenshot(customer, "portal-claim-approved-phone")
