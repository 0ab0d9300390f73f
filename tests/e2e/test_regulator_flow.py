"""In a real browser: a regulator reads a paid incident end to end, and every look is recorded.

The incident is set up as test_payments_flow.py does it (approved claims, approved payout
accounts, a reserve that pays everything, the allocation committed by staff in the browser so
the app pays inline through the sandbox bank), plus a third customer whose claim is disputed
with an evidence file. Then a regulator walks the incident, the claims, a claim, the payments,
the reconciliation, the report (and its CSV), the reserve, the audit log and its verification:
every page answers 200 with no form that posts, and the audit trail records each view.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from payouts.db.models import AuditEvent, Claim, Customer, User
from payouts.domain.roles import Actor, Role
from payouts.services import claims, evidence, funding, loss_import
from tests.conftest import STAFF
from tests.e2e.conftest import SEED_REF, SEED_TITLE, LiveServer, add_approved_accounts, expect, screenshot
from tests.e2e.test_payments_flow import TOTAL, status_row
from tests.e2e.test_staff_and_portal import fact, log_in
from tests.helpers import approve_all_claims

pytestmark = pytest.mark.e2e

#: The third customer, whose claim (0.1 BTC = ¥1,000,000) is disputed and so never paid.
DISPUTER_REF = "C-E2E-3"
DISPUTED_JPY = 1_000_000
EVIDENCE_NAME = "wallet-statement.png"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
DISPUTE_REASON = "My wallet statement shows 0.2 BTC, not 0.1."

#: Forms in <main> that do not use GET (a form's .method is "get" unless it says post or
#: dialog), and controls that would submit with another method than their form's.
WRITING_FORMS_JS = """() =>
  Array.from(document.querySelectorAll('main form'))
    .filter(f => f.method !== 'get')
    .concat(Array.from(document.querySelectorAll('main [formmethod]'))
      .filter(el => el.formMethod !== 'get'))
    .map(el => el.outerHTML.slice(0, 200))"""


def _prepare(server: LiveServer, evidence_dir: Path) -> int:
    """Three customers' claims open; the third disputed with an evidence file; the other two
    approved with approved payout accounts; a reserve that pays them all. Returns the disputed
    claim's id."""
    with server.db() as session:
        extra = f"customer_ref,asset,amount,name\n{DISPUTER_REF},BTC,0.1,Customer Three\n".encode()
        report = loss_import.import_losses(session, STAFF, SEED_REF, io.BytesIO(extra), "late.csv")
        assert report.status == "imported", report.problems
        assert claims.open_claims(session, STAFF, SEED_REF) == 3

        # The disputing customer, acting through the services as their login would.
        customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == DISPUTER_REF))
        user = session.scalar(select(User).where(User.customer_id == customer_id))
        assert user is not None, "opening the claims creates a login for every customer without one"
        customer = Actor(label=user.username, role=Role.CUSTOMER, user_id=user.id, customer_id=customer_id)
        claim = session.scalar(select(Claim).where(Claim.customer_id == customer_id))
        assert claim is not None
        stored = evidence.store(evidence_dir, EVIDENCE_NAME, io.BytesIO(PNG))
        claims.dispute_claim(session, customer, claim.id, claim.row_version, reason=DISPUTE_REASON,
                             corrected={"BTC": "0.2"}, evidence=[stored])
        disputed_id = claim.id

        # The disputed claim is not touched: only open, accepted or under-review ones are.
        assert approve_all_claims(session, STAFF, SEED_REF) == 2
        add_approved_accounts(session)
        session.commit()
        funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=TOTAL,
                                        memo="Liability reserve, end-to-end test")
    return disputed_id


def _commit_as_staff(page: Any, server: LiveServer) -> None:
    """Staff commit the allocation in the browser: the app pays both approved claims inline."""
    page.goto("/lang/en?next=/login")
    log_in(page, server, Role.STAFF)
    page.goto(f"/staff/incidents/{SEED_REF}/allocation")
    expect(fact(page, "Eligible")).to_have_text("JPY 17,600,000")
    expect(fact(page, "Shortfall")).to_have_text("JPY 0")
    page.get_by_role("button", name="Commit this allocation").click()
    expect(page.locator(".flash.success")).to_have_text(re.compile(r"^Allocation run #\d+ committed\.$"))


def assert_read_only(page: Any) -> None:
    """The page's main content offers nothing that writes: no form posts (GET filters may stay)."""
    main = page.locator("main")
    expect(main).to_be_visible()
    expect(main.locator("form[method=post i]")).to_have_count(0)
    assert page.evaluate(WRITING_FORMS_JS) == [], f"{page.url} has a form that writes"


def visit(page: Any, path: str, heading: str | re.Pattern[str]) -> None:
    """Open ``path``: it answers 200, shows ``heading`` and writes nothing."""
    response = page.goto(path)
    assert response is not None and response.status == 200, f"{path}: {response and response.status}"
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    assert_read_only(page)


def test_regulator_reads_a_paid_incident_and_every_view_is_recorded(
    open_browser: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    # The server's evidence store is tmp_path/evidence (see the live_server fixture).
    disputed_id = _prepare(live_server, tmp_path / "evidence")
    _commit_as_staff(open_browser(locale="en-GB"), live_server)

    page = open_browser(locale="en-GB")
    page.goto("/lang/en?next=/login")
    log_in(page, live_server, Role.REGULATOR)
    expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    regulator = live_server.accounts[Role.REGULATOR][0]

    # The incident.
    incident_path = f"/staff/incidents/{SEED_REF}"
    visit(page, incident_path, f"{SEED_REF}: {SEED_TITLE}")
    counts = page.locator("#claims tbody tr")
    expect(counts.filter(has=page.get_by_role("link", name="Paid", exact=True)).locator("td")).to_have_text(
        ["Paid", "2"])
    expect(page.locator("#claims tfoot td")).to_have_text("3")

    # The claims queue, every claim of the incident.
    queue_path = f"/staff/claims?incident={SEED_REF}&filter=all"
    visit(page, queue_path, "Claims")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("table tbody tr td:nth-child(4)")).to_have_text(["Paid", "Paid", "Disputed"])
    expect(page.get_by_role("button", name=re.compile("^Approve the matching claims"))).to_have_count(0)

    # The disputed claim: its dispute, its evidence and its history from the audit trail.
    claim_path = f"/staff/claims/{disputed_id}"
    with page.expect_response(lambda r: r.url.endswith(claim_path)) as claim_response:
        rows.filter(has_text=DISPUTER_REF).get_by_role("link", name=f"#{disputed_id}").click()
    assert claim_response.value.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Claim #{disputed_id}")
    assert_read_only(page)
    expect(fact(page, "Status")).to_have_text("Disputed")
    expect(fact(page, "Total")).to_have_text(f"JPY {DISPUTED_JPY:,}")
    expect(page.locator("#actions")).to_have_count(0)  # no decisions offered to a regulator
    expect(page.locator("#disputes")).to_contain_text(DISPUTE_REASON)
    expect(page.locator("#disputes")).to_contain_text("0.2 BTC")
    evidence_link = page.locator("#disputes").get_by_role("link", name=EVIDENCE_NAME)
    expect(evidence_link).to_have_attribute("href", re.compile(r"^/staff/evidence/\d+$"))
    evidence_path = evidence_link.get_attribute("href")
    with page.expect_download() as evidence_download:
        evidence_link.click()
    assert evidence_download.value.suggested_filename == EVIDENCE_NAME
    assert Path(evidence_download.value.path()).read_bytes() == PNG
    history = page.locator("#history tbody tr")
    expect(history.filter(has_text=f"Customer disputed claim #{disputed_id} version 1")).to_have_count(1)
    expect(history.locator("code")).to_contain_text(["claim.disputed"])
    screenshot(page, "regulator-claim")

    # The payments.
    payments_path = f"/staff/incidents/{SEED_REF}/disbursements"
    visit(page, payments_path, f"Payments: {SEED_REF}")
    expect(status_row(page, "Paid")).to_have_text(["Paid", "2", "JPY 17,600,000"])
    expect(page.locator("#totals tfoot td")).to_have_text(["2", "JPY 17,600,000"])
    expect(page.get_by_role("button", name="Sweep now")).to_have_count(0)

    # The reconciliation.
    reconciliation_path = f"/staff/incidents/{SEED_REF}/reconciliation"
    visit(page, reconciliation_path, f"Reconciliation: {SEED_REF}")
    verdict = page.get_by_role("status").filter(has=page.get_by_role("heading", level=2))
    expect(verdict.get_by_role("heading", level=2)).to_have_text("Reconciled to the yen")
    expect(page.get_by_text("Difference found")).to_have_count(0)

    # The per-incident report, and the same figures as CSV.
    report_path = f"/staff/incidents/{SEED_REF}/report"
    visit(page, report_path, f"Incident report: {SEED_REF}")
    report_row = lambda name: page.locator("#amounts tr").filter(  # noqa: E731
        has=page.get_by_role("rowheader", name=name, exact=True)).locator("td")
    expect(report_row("Total claimed")).to_have_text(f"JPY {TOTAL + DISPUTED_JPY:,}")
    expect(report_row("Eligible")).to_have_text(f"JPY {TOTAL:,}")
    expect(report_row("Paid to customers")).to_have_text(f"JPY {TOTAL:,}")
    expect(report_row("Outstanding (funded, not yet paid)")).to_have_text("JPY 0")
    expect(fact(page, "Customers affected")).to_have_text("3")
    expect(page.locator("#claims tfoot td")).to_have_text(["3", f"JPY {TOTAL + DISPUTED_JPY:,}"])
    screenshot(page, "regulator-report")
    csv_link = page.get_by_role("link", name="Download CSV")
    expect(csv_link).to_have_attribute("href", f"{report_path}.csv")
    with page.expect_download() as download_info:
        csv_link.click()
    download = download_info.value
    assert download.suggested_filename == f"incident-report-{SEED_REF}.csv"
    data = Path(download.path()).read_text(encoding="utf-8")
    summary = {row[1]: row[2] for row in csv.reader(io.StringIO(data)) if row and row[0] == "summary"}
    assert summary["incident_ref"] == SEED_REF
    assert summary["customers_affected"] == "3"
    assert summary["total_claimed_jpy"] == str(TOTAL + DISPUTED_JPY)
    assert summary["paid_jpy"] == str(TOTAL)
    assert summary["outstanding_jpy"] == "0"

    # The reserve and the insurance tower.
    visit(page, "/staff/funding", "Reserve and insurance")
    expect(page.locator("#reserve").get_by_text("Liability reserve, end-to-end test")).to_be_visible()
    expect(fact(page, "Paid out to customers")).to_have_text(f"JPY {TOTAL:,}")
    expect(page.get_by_role("button", name="Record movement")).to_have_count(0)

    # The audit log, filtered by action through its (GET) form: the regulator's own views.
    visit(page, "/staff/audit", "Audit trail")
    page.locator("#action").fill("regulator.")
    with page.expect_response(lambda r: "/staff/audit?" in r.url and r.request.resource_type == "document") as log:
        page.get_by_role("button", name="Filter").click()
    assert log.value.status == 200
    expect(page).to_have_url(re.compile(r"/staff/audit\?.*action=regulator\."))
    assert_read_only(page)
    actions = page.locator("main table tbody tr td:nth-child(4)")
    expect(actions.first).to_have_text("regulator.viewed")
    expect(actions).to_have_text(["regulator.viewed"] * actions.count())
    for path in (report_path, f"{report_path}.csv"):
        expect(page.get_by_role("cell", name=f"{regulator} viewed {path}", exact=True)).to_have_count(1)

    # The chain verifies, views and all.
    verify_path = "/staff/audit/verify"
    with page.expect_response(lambda r: r.url.endswith(verify_path)) as verified:
        page.get_by_role("link", name="Verify the chain").click()
    assert verified.value.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit chain verification")
    assert_read_only(page)
    expect(page.get_by_role("status").get_by_role("heading", level=2)).to_have_text("The chain verifies")
    expect(page.get_by_role("button", name="Record a checkpoint")).to_have_count(0)

    # Every page the regulator opened or downloaded is in the audit trail, as theirs.
    with live_server.db() as session:
        views = list(session.scalars(
            select(AuditEvent).where(AuditEvent.action == "regulator.viewed").order_by(AuditEvent.seq)))
    assert views, "no regulator view was recorded"
    assert {(e.actor, e.actor_role, e.subject_type) for e in views} == {(regulator, "regulator", "page")}
    viewed = [e.subject_id for e in views]
    for path in ("/staff/incidents", incident_path, claim_path, payments_path, reconciliation_path,
                 evidence_path, report_path, f"{report_path}.csv", "/staff/funding", "/staff/audit",
                 verify_path):
        assert path in viewed, f"{path} was not recorded: {viewed}"
    queue_views = [p for p in viewed if p.startswith("/staff/claims?")]
    assert len(queue_views) == 1 and "filter=all" in queue_views[0] and f"incident={SEED_REF}" in queue_views[0]
    assert any(p.startswith("/staff/audit?") and "action=regulator." in p for p in viewed), viewed
    assert all(e.summary.startswith(f"{regulator} viewed /") for e in views)
