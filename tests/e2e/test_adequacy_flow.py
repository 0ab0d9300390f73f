"""In a real browser: the adequacy verdict, a stress test run from its form, and the regulator's view."""

from __future__ import annotations

import re
from typing import Any

import pytest

from payouts.domain.roles import Role
from tests.e2e.conftest import LiveServer, expect, screenshot
from tests.e2e.test_staff_and_portal import fact, log_in

pytestmark = pytest.mark.e2e


def test_staff_run_a_stress_test_and_the_regulator_reads_it(open_browser: Any, live_server: LiveServer) -> None:
    page = open_browser(locale="en-GB")
    page.goto("/lang/en?next=/login")
    log_in(page, live_server, Role.STAFF)

    page.get_by_role("link", name="Reserve adequacy").click()
    expect(page.locator("main")).to_contain_text("No reserve rule is in force yet")
    page.get_by_role("link", name="Rule versions").click()
    page.get_by_label("Effective from").fill("2025-01-01")
    page.get_by_label("Rationale").fill("Illustrative until the FSA publishes its formula.")
    page.get_by_role("button", name="Record version").click()
    expect(page.locator(".flash.success")).to_have_text("New version of the reserve rule recorded.")

    page.goto("/staff/adequacy/inputs")
    page.get_by_label("As of").fill("2026-11-01")
    page.get_by_label("Wallet", exact=True).select_option("hot")
    page.get_by_label("Value of customer assets (yen)").fill("10000000000")
    page.get_by_role("button", name="Record holdings").click()
    expect(page.locator(".flash.success")).to_have_text("Wallet holdings recorded.")

    page.goto("/staff/adequacy")
    expect(page.locator(".verdict h2")).to_contain_text("Requirement missed")
    screenshot(page, "adequacy")

    page.get_by_role("link", name="Stress tests").click()
    page.get_by_label("Scenario", exact=True).select_option("")
    page.get_by_label("Share of that wallet lost (custom scenario)").fill("0.5")
    page.get_by_label("Affected customers").fill("3000")
    page.get_by_label("Label").fill("Half the hot wallet")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator(".flash.success")).to_have_text(re.compile(r"^Stress test #\d+ stored\.$"))
    expect(fact(page, "Loss")).to_have_text("JPY 5,000,000,000")
    expect(fact(page, "Shortfall")).to_have_text("JPY 5,000,000,000")  # no reserve, no insurance
    screenshot(page, "stress-test")

    # The regulator sees the same test and the rule, with no form anywhere.
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server, Role.REGULATOR)
    page.goto("/staff/adequacy/stress")
    page.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Half the hot wallet")
    for url in ("/staff/adequacy", "/staff/adequacy/rules", "/staff/adequacy/stress"):
        page.goto(url)
        expect(page.locator("main form[method=post]")).to_have_count(0)
