"""In a real browser: from the seeded incident to a committed allocation run and a customer's line."""

from __future__ import annotations

import re
from typing import Any

import pytest

from payouts.domain.roles import Role
from tests.conftest import STAFF
from tests.e2e.conftest import SEED_REF, LiveServer, expect, screenshot
from tests.e2e.test_staff_and_portal import fact, log_in
from tests.helpers import approve_all_claims

pytestmark = pytest.mark.e2e


def test_staff_funds_the_reserve_previews_and_commits_an_allocation(
    open_browser: Any, live_server: LiveServer
) -> None:
    # Allocation pays approved claims only; accepting and approving them have walks of their own
    # (test_claims_flow.py), so here both claims are opened and approved directly.
    with live_server.db() as session:
        assert approve_all_claims(session, STAFF, SEED_REF) == 2

    page = open_browser(locale="en-GB")
    page.goto("/lang/en?next=/login")
    log_in(page, live_server, Role.STAFF)

    # Money first: a deposit into the reserve through the ledger form.
    page.get_by_role("link", name="Reserve and insurance").click()
    page.get_by_label("Movement").select_option("deposit")
    page.get_by_label("Amount (yen)").fill("8800000")
    page.get_by_label("Memo").fill("Liability reserve, end-to-end test")
    page.get_by_role("button", name="Record movement").click()
    expect(page.locator(".flash.success")).to_have_text("Reserve movement recorded.")
    expect(fact(page, "Available for new allocations")).to_have_text("JPY 8,800,000")

    # Terms, then the preview: 5,100,000 + 12,500,000 eligible, 8,800,000 funded.
    page.goto(f"/staff/incidents/{SEED_REF}")
    page.get_by_role("link", name=re.compile("Allocation")).click()
    page.get_by_label("Priority tranches (yen, comma-separated)").fill("1000000")
    page.get_by_role("button", name="Save terms").click()
    expect(page.locator(".flash.success")).to_have_text("Compensation terms saved.")
    expect(fact(page, "Eligible")).to_have_text("JPY 17,600,000")
    expect(fact(page, "Funded")).to_have_text("JPY 8,800,000")
    expect(fact(page, "Shortfall")).to_have_text("JPY 8,800,000")
    screenshot(page, "allocation-preview")

    page.get_by_role("button", name="Commit this allocation").click()
    expect(page.locator(".flash.success")).to_have_text(re.compile(r"^Allocation run #\d+ committed\.$"))
    expect(fact(page, "Funded")).to_have_text("JPY 8,800,000")

    # The customer's line spells the calculation out: 1,000,000 from the first tranche and
    # 6,800,000 x 4,100,000 / 15,600,000 rounded down (the leftover yen goes to C-E2E-2).
    page.get_by_role("link", name="C-E2E-1").click()
    expect(page.locator("main")).to_contain_text("JPY 5,100,000")
    expect(page.locator("main")).to_contain_text("JPY 2,787,179")
    screenshot(page, "allocation-line")

    # The reserve's part is now earmarked, not available.
    page.get_by_role("link", name="Reserve and insurance").click()
    expect(fact(page, "Earmarked for committed allocations")).to_have_text("JPY 8,800,000")
    expect(fact(page, "Available for new allocations")).to_have_text("JPY 0")
