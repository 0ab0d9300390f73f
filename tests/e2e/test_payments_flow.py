"""In a real browser: committing an allocation pays the customers, and the books reconcile.

The claims are approved and both customers have an approved payout account before the walk
starts (each has its own walk or tests: test_claims_flow.py, tests/web). Without Redis the app
runs the payment jobs inline, through the sandbox bank, within the commit request.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from payouts.domain.roles import Role
from payouts.services import funding
from tests.conftest import STAFF
from tests.e2e.conftest import SEED_REF, LiveServer, add_approved_accounts, expect, screenshot
from tests.e2e.test_staff_and_portal import fact, log_in
from tests.helpers import approve_all_claims

pytestmark = pytest.mark.e2e

#: Both claims in full: 5,100,000 + 12,500,000 yen.
TOTAL = 17_600_000


def _prepare(server: LiveServer) -> None:
    """Approved claims, approved payout accounts for both customers, and a reserve that pays all."""
    with server.db() as session:
        assert approve_all_claims(session, STAFF, SEED_REF) == 2
        add_approved_accounts(session)
        session.commit()
        funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=TOTAL,
                                        memo="Liability reserve, end-to-end test")


def status_row(page: Any, label: str) -> Any:
    """The cells of the payments-by-status row whose status reads ``label``."""
    return page.locator("#totals tbody tr").filter(
        has=page.get_by_role("cell", name=label, exact=True)).locator("td")


def test_committed_allocation_is_paid_and_reconciled(open_browser: Any, live_server: LiveServer) -> None:
    _prepare(live_server)
    page = open_browser(locale="en-GB")
    page.goto("/lang/en?next=/login")
    log_in(page, live_server, Role.STAFF)

    page.goto(f"/staff/incidents/{SEED_REF}/allocation")
    expect(fact(page, "Eligible")).to_have_text("JPY 17,600,000")
    expect(fact(page, "Funded")).to_have_text("JPY 17,600,000")
    expect(fact(page, "Shortfall")).to_have_text("JPY 0")
    page.get_by_role("button", name="Commit this allocation").click()
    expect(page.locator(".flash.success")).to_have_text(re.compile(r"^Allocation run #\d+ committed\.$"))

    # The payments: both made through the sandbox bank within the commit (no queue).
    response = page.goto(f"/staff/incidents/{SEED_REF}/disbursements")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Payments: {SEED_REF}")
    expect(status_row(page, "Paid")).to_have_text(["Paid", "2", "JPY 17,600,000"])
    expect(page.locator("#totals tbody tr")).to_have_count(1)  # nothing pending, failed or held
    expect(page.locator("#totals tfoot td")).to_have_text(["2", "JPY 17,600,000"])
    expect(fact(page, "Jobs waiting in the queue")).to_have_text("inline (no queue)")
    expect(fact(page, "Payment rail")).to_have_text("Sandbox bank")
    expect(page.locator("#attention")).to_contain_text("No payment needs attention.")
    batch = page.locator("#batches tbody tr")
    expect(batch).to_have_count(1)
    expect(batch.first).to_contain_text("Done")
    expect(batch.first).to_contain_text("Paid: 2")
    screenshot(page, "payments")

    # The reconciliation adds up to the yen.
    page.get_by_role("navigation", name="Paying this incident").get_by_role("link", name="Reconciliation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Reconciliation: {SEED_REF}")
    verdict = page.get_by_role("status").filter(has=page.get_by_role("heading", level=2))
    expect(verdict.get_by_role("heading", level=2)).to_have_text("Reconciled to the yen")
    expect(page.get_by_text("Difference found")).to_have_count(0)
    expect(page.locator("#sources tbody tr").first.locator("td")).to_have_text(
        ["Reserve", "JPY 17,600,000", "JPY 0", "JPY 17,600,000", "JPY 0"])

    # Paying the claims closed them.
    page.goto(f"/staff/claims?incident={SEED_REF}&filter=all")
    statuses = page.locator("table tbody tr td:nth-child(4)")
    expect(statuses).to_have_text(["Paid", "Paid"])
