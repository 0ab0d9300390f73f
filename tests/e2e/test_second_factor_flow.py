"""In a real browser, on a phone: a regulator turns on a second factor and signs in with it.

The key is read off the page as a person would type it into an authenticator app, and the codes
are computed from it (pyotp). Nothing sleeps: every wait is Playwright's own.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest

from payouts.domain.roles import Role
from tests.e2e.conftest import PHONE, LiveServer, expect, screenshot
from tests.e2e.test_staff_and_portal import assert_fits_a_phone, log_in

pytestmark = pytest.mark.e2e


def test_regulator_turns_on_a_second_factor_and_signs_in_with_it(
    open_browser: Any, live_server: LiveServer
) -> None:
    page = open_browser(viewport=PHONE, locale="en-US")
    log_in(page, live_server, Role.REGULATOR)

    page.goto("/account/security")
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()
    expect(page.locator("figure.qr svg")).to_be_visible()
    key = page.locator("#totp-key").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{16,}", key), key
    assert_fits_a_phone(page)  # the back office's header too, in English on a phone
    screenshot(page, "security-regulator-setup-phone")

    totp = pyotp.TOTP(key)
    page.get_by_label("Code").fill(totp.now())
    page.get_by_role("button", name="Turn on the second factor").click()
    expect(page.get_by_text("The second factor is on.")).to_be_visible()
    expect(page.locator("main").get_by_text("On.", exact=True)).to_be_visible()

    # Signing in again now takes the password and then a code.
    page.locator("header").get_by_role("button", name="Log out").click()
    username, password = live_server.accounts[Role.REGULATOR]
    page.goto("/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/login/totp$"))
    assert_fits_a_phone(page)
    screenshot(page, "login-second-step-phone")
    # The code of the next 30-second step: turning the factor on used up the current one.
    page.get_by_label("Code").fill(totp.at(time.time() + 30))
    page.locator("main form button[type=submit]").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto("/staff/incidents")
    expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
