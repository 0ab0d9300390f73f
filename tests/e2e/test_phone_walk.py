"""In a real browser on a phone (375x812), in Japanese and in English: every page fits.

The pages are not listed by hand: they come from the app's URL map, filtered by the roles each
view declares (payouts.web.access.ACCESS_ATTR), so a new page is walked as soon as it exists.
Each page must answer 200, have no sideways overflow and no visible form control without a
label (assert_fits_a_phone). Downloads (CSV, evidence, transfer files) are recognised by their
answer (an attachment, or not HTML) and skipped; the JSON API, the health check, the language
switch and static files are not pages.

Before the walk, the services set up three incidents so that lists and tables have rows:
- the seeded incident, paid in full through the sandbox bank (a run, payments, a receipt, a
  payout statement, a reconciliation and a report);
- a second one, imported through an import job, with one claim disputed with an evidence file
  and the other paid through a Zengin transfer file (submitted, waiting for the bank's result);
- a third one whose claim is still open, so the customer's dispute and withdraw forms show;
plus a pending change of payout account, a reserve rule with its inputs, an insurance tower, a
stress test and a paying account.

Failures are collected over the whole walk and reported together, each with the elements that
stick out on the right and the unlabelled controls.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from payouts.db.models import (
    Claim,
    Customer,
    Disbursement,
    DisbursementBatch,
    Incident,
    LossImport,
    StressTest,
    User,
)
from payouts.domain.roles import Actor, Role
from payouts.jobs.runtime import make_dispatch
from payouts.rails.zengin import ZenginRail
from payouts.services import (
    adequacy,
    allocation,
    claims,
    demo,
    destinations,
    disbursements,
    evidence,
    funding,
    import_jobs,
    incidents,
    loss_import,
    zengin_files,
)
from payouts.web.access import ACCESS_ATTR
from tests.conftest import STAFF, make_config
from tests.e2e.conftest import CUSTOMER_REF, PHONE, SEED_REF, LiveServer, add_approved_accounts, expect, screenshot
from tests.e2e.test_staff_and_portal import assert_fits_a_phone, log_in

pytestmark = pytest.mark.e2e

LANGUAGES = (("ja-JP", "ja"), ("en-US", "en"))
#: Endpoints that are not pages: the JSON API and its docs, the health check, the language
#: switch and static files. (Logout and every other write are not GET routes.)
NOT_PAGES = re.compile(r"^(api_|api_v1\.|healthz$|set_language$|static$)")
QUAKE_REF = "E2E-QUAKE-02"
OPEN_REF = "E2E-LEAK-03"
NEW_REF = "E2E-DOUBLE-04"
#: A name long enough to need wrapping on a phone (evidence files keep the customer's name).
EVIDENCE_NAME = "wallet-statement-2026-01-05-exchange-export-C-E2E-1.png"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

#: The elements that end right of the viewport, innermost first (what to fix on a failure).
OVERFLOWING_JS = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 0.5) continue;
    // Inside a scroll container that keeps it in (e.g. .table-wrap): not the page's overflow.
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX !== 'visible' && p.getBoundingClientRect().right <= width + 0.5) {
        clipped = true; break;
      }
    }
    if (clipped) continue;
    const tag = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    out.push(`${tag} right=${Math.round(box.right)} ${el.textContent.trim().slice(0, 40)}`);
  }
  return out.slice(-8);
}"""


def _yen_file(rows: str) -> io.BytesIO:
    return io.BytesIO(("customer_ref,asset,amount,name\n" + rows).encode())


def _customer_actor(session: Any, ref: str) -> Actor:
    customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == ref))
    user = session.scalar(select(User).where(User.customer_id == customer_id))
    assert user is not None, f"{ref} has no login"
    return Actor(label=user.username, role=Role.CUSTOMER, user_id=user.id, customer_id=customer_id)


def _claim_of(session: Any, incident_ref: str, customer_ref: str) -> Claim:
    claim = session.scalar(
        select(Claim).join(Incident, Incident.id == Claim.incident_id).join(Customer, Customer.id == Claim.customer_id)
        .where(Incident.ref == incident_ref, Customer.external_ref == customer_ref))
    assert claim is not None, (incident_ref, customer_ref)
    return claim


def _new_incident(session: Any, ref: str, title: str, losses: str | None) -> None:
    occurred = dt.datetime(2026, 2, 10, 1, 30, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref=ref, title=title, incident_type="hack",
                              occurred_at=occurred, discovered_at=occurred + dt.timedelta(hours=5))
    incidents.set_reference_price(session, STAFF, incident_ref=ref, asset_code="BTC", price="12000000",
                                  source="VWAP BTC/JPY 2026-02-10 00:00-10:30 JST")
    if losses is not None:
        report = loss_import.import_losses(session, STAFF, ref, _yen_file(losses), f"{ref.lower()}.csv")
        assert report.status == "imported", report.problems


def _prepare(server: LiveServer, db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Set up the state described in the module docstring; returns the ids the URLs need."""
    evidence_dir = tmp_path / "evidence"  # the live server's evidence store
    ids: dict[str, Any] = {}
    with server.db() as session:
        # Reserve rule, inputs, a paying account, a tower: the adequacy and funding pages.
        demo.ensure_adequacy(session)
        demo.ensure_paying_account(session)
        funding.create_policy(session, STAFF, policy_number="E2E-CYBER-2026", insurer="E2E Marine & Fire",
                              period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 12, 31))
        funding.add_layer(session, STAFF, policy_number="E2E-CYBER-2026", code="L1", attachment_jpy=100_000_000,
                          limit_jpy=500_000_000, share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
        funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=40_000_000,
                                        memo="Liability reserve, end-to-end phone walk")
        adequacy.run_stress_test(session, STAFF, preset=None, wallet="hot", share_lost="0.5", customers=3000,
                                 tranches_jpy="1000000", label="Half the hot wallet")
        ids["test_id"] = session.scalar(select(StressTest.id))

        # The seeded incident, paid in full through the sandbox bank (inline, as the app does).
        ids["import_id"] = session.scalar(select(LossImport.id).join(Incident, Incident.id == LossImport.incident_id)
                                          .where(Incident.ref == SEED_REF))
        claims.open_claims(session, STAFF, SEED_REF)
        for ref in (CUSTOMER_REF, "C-E2E-2"):
            _claim_of(session, SEED_REF, ref).status = "approved"
        add_approved_accounts(session)
        session.commit()
        config = make_config(db_url, tmp_path, evidence_dir=str(evidence_dir))
        dispatch = make_dispatch(config, engine=session.get_bind(), session_factory=server.session_factory)
        run = allocation.commit_allocation(session, STAFF, SEED_REF, dispatch=dispatch)
        ids["run_id"] = run.id
        paid = _claim_of(session, SEED_REF, CUSTOMER_REF)
        session.refresh(paid)
        assert paid.status == "paid", paid.status
        ids["paid_claim_id"] = paid.id
        ids["payment_id"] = session.scalar(select(Disbursement.id).where(
            Disbursement.incident_id == paid.incident_id, Disbursement.customer_id == paid.customer_id,
            Disbursement.status == "paid"))

        # The second incident: losses through an import job; one claim disputed with evidence,
        # the other paid through a Zengin transfer file.
        _new_incident(session, QUAKE_REF, "Deposit address swapped by malware", None)
        job = import_jobs.queue_import(session, STAFF, QUAKE_REF,
                                       _yen_file(f"{CUSTOMER_REF},BTC,0.2,Customer One\nC-E2E-2,BTC,0.3,Customer Two\n"),
                                       "quake-losses.csv", tmp_path / "uploads")
        import_jobs.run_import(session, job.id, tmp_path / "uploads")
        ids["job_id"] = job.id
        claims.open_claims(session, STAFF, QUAKE_REF)
        disputed = _claim_of(session, QUAKE_REF, CUSTOMER_REF)
        stored = evidence.store(evidence_dir, EVIDENCE_NAME, io.BytesIO(PNG))
        claims.dispute_claim(session, _customer_actor(session, CUSTOMER_REF), disputed.id, disputed.row_version,
                             reason="My statement shows 0.25 BTC at the time of the incident, not 0.2.",
                             corrected={"BTC": "0.25"}, evidence=[stored])
        ids["disputed_claim_id"] = disputed.id
        ids["evidence_id"] = evidence.evidence_for_claim(session, disputed.id)[0].id
        _claim_of(session, QUAKE_REF, "C-E2E-2").status = "approved"
        session.commit()
        quake = session.scalar(select(Incident).where(Incident.ref == QUAKE_REF))
        allocation.commit_allocation(session, STAFF, QUAKE_REF, dispatch=None)
        for batch_id in session.scalars(select(DisbursementBatch.id).where(DisbursementBatch.incident_id == quake.id)):
            disbursements.process_batch(session, STAFF, ZenginRail(), batch_id)
        files = zengin_files.create_transfer_files(session, STAFF, dt.date(2026, 3, 2))
        ids["zengin_file_id"] = files[0].id

        # The third incident: the customer's claim is still open (dispute and withdraw forms), the
        # other customer's approved, not yet allocated (an allocation preview with its forms).
        _new_incident(session, OPEN_REF, "API key leak at a partner",
                      f"{CUSTOMER_REF},BTC,0.05,Customer One\nC-E2E-2,BTC,0.1,Customer Two\n")
        claims.open_claims(session, STAFF, OPEN_REF)
        ids["open_claim_id"] = _claim_of(session, OPEN_REF, CUSTOMER_REF).id
        _claim_of(session, OPEN_REF, "C-E2E-2").status = "approved"
        session.commit()

        # The fourth incident: just recorded and priced (the price and loss-file forms).
        _new_incident(session, NEW_REF, "Withdrawal engine double-spend", None)

        # A change of payout account waiting for staff (four eyes on payout accounts).
        customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == CUSTOMER_REF))
        pending = destinations.submit_destination(
            session, _customer_actor(session, CUSTOMER_REF), customer_id, bank_code="0009", branch_code="456",
            account_type="ordinary", account_number="7654321", holder_name="ﾃｽﾄ ｲﾁﾛｳ")
        ids["destination_id"] = pending.id
    return ids


def _url_args(ids: dict[str, Any], role: Role) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Values for URL arguments (by name), and per endpoint the variants to visit where a page
    looks different in another state (or needs a record in one: a receipt, an import job)."""
    values = {"ref": SEED_REF, "import_id": ids["import_id"], "run_id": ids["run_id"], "test_id": ids["test_id"],
              "customer_ref": CUSTOMER_REF, "destination_id": ids["destination_id"], "job_id": ids["job_id"],
              "file_id": ids["evidence_id"], "payment_id": ids["payment_id"]}
    if role is Role.CUSTOMER:
        values["claim_id"] = ids["open_claim_id"]
        variants = {
            "portal.claim": [{}, {"claim_id": ids["disputed_claim_id"]}, {"claim_id": ids["paid_claim_id"]}],
            "portal.receipt": [{"claim_id": ids["paid_claim_id"]}],
        }
    else:
        values["claim_id"] = ids["disputed_claim_id"]
        variants = {
            "staff.incident_detail": [{}, {"ref": QUAKE_REF}, {"ref": OPEN_REF}, {"ref": NEW_REF}],
            "staff.allocation_page": [{}, {"ref": OPEN_REF}, {"ref": NEW_REF}],
            # The seeded incident is committed (no preview left); the open one has a preview.
            "staff.preview_line": [{"ref": OPEN_REF, "customer_ref": "C-E2E-2"}],
            "staff.claim_detail": [{}, {"claim_id": ids["open_claim_id"]}, {"claim_id": ids["paid_claim_id"]}],
            "staff.disbursements_page": [{}, {"ref": QUAKE_REF}],
            "staff.reconciliation_page": [{}, {"ref": QUAKE_REF}],
            "staff.import_job": [{"ref": QUAKE_REF}],
            "staff.zengin_download": [{"file_id": ids["zengin_file_id"]}],
        }
    return values, variants


def _pages(app: Any, role: Role | None, ids: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(endpoint, path) of every GET route open to ``role`` (None: to anyone, without login)."""
    values, variants = _url_args(ids, role or Role.CUSTOMER)
    unknown = set(variants) - set(app.view_functions)
    assert not unknown, f"variants for endpoints that do not exist: {unknown}"
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or NOT_PAGES.match(rule.endpoint):
            continue
        allowed = getattr(app.view_functions[rule.endpoint], ACCESS_ATTR)
        if (role is None and allowed) or (role is not None and role not in allowed):
            continue
        for variant in variants.get(rule.endpoint, [{}]):
            args = {name: values[name] for name in rule.arguments} | variant
            yield rule.endpoint, rule.build(args)[1]


def _walk(page: Any, pages: list[tuple[str, str]], label: str, failures: list[str]) -> int:
    """Visit each page; returns how many were HTML pages (downloads skipped)."""
    walked = 0
    for endpoint, path in pages:
        probe = page.request.get(path, max_redirects=0)
        kind = probe.headers.get("content-type", "")
        if "attachment" in probe.headers.get("content-disposition", "") or (
                probe.ok and not kind.startswith("text/html")):
            continue  # a download, not a page
        if probe.status in (301, 302, 303):
            continue  # sends the user on (e.g. / to the home page): not a page of its own
        response = page.goto(path)
        assert response is not None
        if response.status != 200:
            failures.append(f"{label} {path} ({endpoint}): HTTP {response.status}")
            continue
        expect(page.locator("main")).to_be_visible()
        walked += 1
        try:
            assert_fits_a_phone(page)
        except AssertionError as exc:
            screenshot(page, f"phone-{label}-{endpoint}".replace(".", "-"))
            failures.append(f"{label} {path} ({endpoint}): {exc}; sticking out: {page.evaluate(OVERFLOWING_JS)}")
    return walked


def test_every_page_fits_a_phone_in_both_languages(
    open_browser: Any, live_server: LiveServer, db_url: str, tmp_path: Path
) -> None:
    from flask import Flask

    ids = _prepare(live_server, db_url, tmp_path)
    app: Flask = _app_for_url_map(db_url, tmp_path)

    staff_pages = list(_pages(app, Role.STAFF, ids))
    staff_set = {e for e, _p in staff_pages}
    regulator_only = [(e, p) for e, p in _pages(app, Role.REGULATOR, ids) if e not in staff_set]
    walks: list[tuple[Role | None, list[tuple[str, str]]]] = [
        (None, list(_pages(app, None, ids))),
        (Role.STAFF, staff_pages),
        (Role.REGULATOR, regulator_only),
        (Role.CUSTOMER, list(_pages(app, Role.CUSTOMER, ids))),
    ]
    failures: list[str] = []
    counts: dict[str, int] = {}
    for locale, lang in LANGUAGES:
        for role, pages in walks:
            if not pages:
                continue
            page = open_browser(viewport=PHONE, locale=locale)
            page.goto("/login")
            expect(page.locator("html")).to_have_attribute("lang", lang)
            label = f"{role.value if role else 'anonymous'}-{lang}"
            if role is not None:
                log_in(page, live_server, role)
            counts[label] = _walk(page, pages, label, failures)
            page.context.close()
    print("pages walked:", counts)
    assert not failures, "\n".join(failures)
    # Every role saw its pages (a broken filter would walk nothing and pass).
    assert counts["staff-ja"] == counts["staff-en"] >= 25, counts
    assert counts["customer-ja"] == counts["customer-en"] >= 8, counts


def _app_for_url_map(db_url: str, tmp_path: Path) -> Any:
    """The same app as the live server's, for its URL map and views' declared roles."""
    from payouts.web.app import create_app

    return create_app(make_config(db_url, tmp_path, evidence_dir=str(tmp_path / "evidence")))
