"""Disbursement and reconciliation pages: paying the seeded incident through the sandbox bank."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import replace

import pytest
from sqlalchemy import select, update

from payouts.db.models import Customer, Disbursement, PayoutDestination
from payouts.domain.roles import Role
from payouts.services import allocation, funding
from tests.conftest import STAFF
from tests.web.conftest import csrf_token

INCIDENT = "/staff/incidents/INC-1"


def main(html: str) -> str:
    return html.split("<main", 1)[1]


def approve_destination(app, customer_ref: str, number: str = "1234567") -> int:  # type: ignore[no-untyped-def]
    """An approved payout account for ``customer_ref``, replacing any earlier one (the two-person
    approval has tests of its own)."""
    session = app.extensions["payouts"].session_factory()
    try:
        customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == customer_ref))
        session.execute(update(PayoutDestination).where(
            PayoutDestination.customer_id == customer_id, PayoutDestination.status == "approved")
            .values(status="superseded"))
        destination = PayoutDestination(
            customer_id=customer_id, bank_code="0005", branch_code="123", account_type="ordinary",
            account_number=number, holder_kana="ﾃｽﾄ ﾀﾛｳ", status="approved", approvals_required=1,
            submitted_by_label="test")
        session.add(destination)
        session.commit()
        return destination.id
    finally:
        session.close()


def fund_and_commit(app, *, reserve: int = 17_500_000, c2_account: str = "1234567", dispatch=True):  # type: ignore[no-untyped-def]
    """Reserve deposit, approved accounts for C1 and C2, committed allocation paid inline."""
    session = app.extensions["payouts"].session_factory()
    try:
        funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=reserve, memo="seed")
        approve_destination(app, "C1")
        approve_destination(app, "C2", c2_account)
        allocation.commit_allocation(session, STAFF, "INC-1",
                                     dispatch=app.extensions["payouts"].dispatch if dispatch else None)
    finally:
        session.close()


def payments(app) -> dict[str, list[tuple[str, int, str]]]:  # type: ignore[no-untyped-def]
    """customer ref -> [(status, amount, failure reason)]."""
    session = app.extensions["payouts"].session_factory()
    try:
        out: dict[str, list[tuple[str, int, str]]] = {}
        for ref, status, amount, reason in session.execute(
                select(Customer.external_ref, Disbursement.status, Disbursement.amount_jpy, Disbursement.failure_reason)
                .join(Customer, Customer.id == Disbursement.customer_id).order_by(Disbursement.id)):
            out.setdefault(ref, []).append((status, amount, reason))
        return out
    finally:
        session.close()


def status_row(html: str, label: str) -> str:
    """The text of the payments-by-status row whose first cell is ``label``."""
    match = re.search(r'<tr class="status-\w+"><td data-label="Status">' + re.escape(label) + r"</td>(.*?)</tr>",
                      html, re.S)
    assert match, f"no {label!r} row"
    return re.sub(r"<[^>]+>", " ", match.group(1))


@pytest.mark.usefixtures("approved_claims")
def test_commit_through_the_form_pays_everyone_and_reconciles(app, client_for):  # type: ignore[no-untyped-def]
    session = app.extensions["payouts"].session_factory()
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=17_500_000, memo="seed")
    session.close()
    approve_destination(app, "C1")
    approve_destination(app, "C2")
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    preview = client.get(f"{INCIDENT}/allocation").text
    digest = re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', preview).group(1)
    committed = client.post(f"{INCIDENT}/allocation/commit", data={"csrf_token": csrf_token(preview), "digest": digest})
    assert committed.status_code == 302

    page = client.get(f"{INCIDENT}/disbursements")
    assert page.status_code == 200
    assert "JPY 5,000,000" not in status_row(page.text, "Paid")  # one row for both: the sum
    paid = status_row(page.text, "Paid").split()
    assert paid == ["2", "JPY", "17,500,000"]
    assert "inline (no queue)" in page.text
    assert "Paid in the last minute" in page.text and re.search(r"Paid in the last minute</dt><dd>2</dd>", page.text)
    assert "No payment needs attention." in page.text
    # The batch: its rail, its size, its counts, and times in JST.
    batch = re.search(r'<td data-label="Rail">sandbox</td>.*?</tr>', page.text, re.S)
    assert batch and "Paid: 2" in batch.group(0) and batch.group(0).count(" JST") == 3
    assert "Done" in batch.group(0)

    recon = client.get(f"{INCIDENT}/reconciliation")
    assert recon.status_code == 200
    assert "<h2>Reconciled to the yen</h2>" in recon.text and "Difference found" not in recon.text
    assert "Difference:" not in recon.text
    ledger = recon.text[recon.text.index('id="reserve-ledger"'):]
    assert "Payments in the reserve ledger" in ledger and ledger.count("JPY 17,500,000") == 2

    exported = client.get(f"{INCIDENT}/reconciliation.csv")
    assert exported.mimetype == "text/csv" and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert ["source", "reserve", "", "17500000", "0", "17500000", "", "0"] in rows
    assert ["status", "paid", "2", "", "", "", "17500000", ""] in rows
    assert ["reserve_ledger", "ledger_difference_jpy", "", "", "", "", "", "0"] in rows
    assert rows[-1][:2] == ["result", "balanced"]


@pytest.mark.usefixtures("approved_claims")
def test_a_rejected_payment_waits_for_a_new_account_before_retry(app, client_for):  # type: ignore[no-untyped-def]
    fund_and_commit(app, c2_account="0000000")  # the sandbox bank answers: account closed
    assert payments(app)["C2"][0][0] == "needs_attention"
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/disbursements").text
    attention = page.split('id="attention"', 1)[1].split("</section>", 1)[0]
    assert '<td data-label="Customer">C2</td>' in attention
    assert "JPY 12,500,000" in attention and "The receiving account is closed" in attention
    c2_payment = int(re.search(r'/disbursements/(\d+)/retry', attention).group(1))
    assert status_row(page, "Needs attention").split() == ["1", "JPY", "12,500,000"]

    token = csrf_token(page)
    refused = client.post(f"{INCIDENT}/disbursements/{c2_payment}/retry", data={"csrf_token": token},
                          follow_redirects=True)
    assert refused.status_code == 200
    assert f"Payment #{c2_payment} was not sent again" in refused.text
    assert "fix the payout account" in refused.text
    assert payments(app)["C2"][0][0] == "needs_attention"
    # A failed payment is still accounted for: the books balance while it waits.
    assert "Reconciled to the yen" in client.get(f"{INCIDENT}/reconciliation").text
    # Another incident's URL does not reach it.
    assert client.post(f"/staff/incidents/NOPE/disbursements/{c2_payment}/retry",
                       data={"csrf_token": token}).status_code == 404

    approve_destination(app, "C2", "7654321")
    retried = client.post(f"{INCIDENT}/disbursements/{c2_payment}/retry", data={"csrf_token": token},
                          follow_redirects=True)
    assert f"Payment #{c2_payment} sent again" in retried.text
    assert payments(app)["C2"] == [("paid", 12_500_000, "")]
    assert "No payment needs attention." in retried.text
    assert status_row(retried.text, "Paid").split() == ["2", "JPY", "17,500,000"]
    again = client.post(f"{INCIDENT}/disbursements/{c2_payment}/retry", data={"csrf_token": token},
                        follow_redirects=True)
    assert "only a payment that needs attention is retried" in again.text


@pytest.mark.usefixtures("approved_claims")
def test_sweep_now_sends_what_no_job_took(app, client_for):  # type: ignore[no-untyped-def]
    fund_and_commit(app, dispatch=False)  # as if Redis lost every job
    assert {s for rows in payments(app).values() for s, _a, _r in rows} == {"pending"}
    client = client_for(Role.APPROVER)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/disbursements").text
    assert status_row(page, "Pending").split() == ["2", "JPY", "17,500,000"]
    swept = client.post(f"{INCIDENT}/disbursements/sweep", data={"csrf_token": csrf_token(page)},
                        follow_redirects=True)
    assert "Sweep done: 0 new batches planned, 1 batches enqueued." in swept.text
    assert status_row(swept.text, "Paid").split() == ["2", "JPY", "17,500,000"]


@pytest.mark.usefixtures("approved_claims")
def test_an_insurers_payment_releases_its_layer_once_complete(app, client_for):  # type: ignore[no-untyped-def]
    session = app.extensions["payouts"].session_factory()
    funding.create_policy(session, STAFF, policy_number="P-1", insurer="Test Marine",
                          period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 12, 31))
    funding.add_layer(session, STAFF, policy_number="P-1", code="L1", attachment_jpy=0, limit_jpy=10_000_000,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    session.close()
    fund_and_commit(app, reserve=7_500_000)
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/disbursements").text
    insurers = page.split('id="insurers"', 1)[1]
    assert "L1: JPY 10,000,000 still owed" in insurers and "Record an insurer's payment" in insurers
    recon = client.get(f"{INCIDENT}/reconciliation").text
    assert "Reconciled to the yen" in recon
    l1 = re.search(r"<td data-label=\"Source\">L1</td>(.*?)</tr>", recon, re.S).group(1)
    assert re.sub(r"<[^>]+>", " ", l1).split() == ["JPY", "10,000,000", "JPY", "10,000,000", "JPY", "0", "JPY", "0"]

    token = csrf_token(page)
    too_much = client.post(f"{INCIDENT}/insurer-payments", data={"csrf_token": token, "layer_code": "L1",
                                                                 "amount_jpy": "10000001"})
    assert too_much.status_code == 422 and "still owed by layer L1" in too_much.text
    unknown = client.post(f"{INCIDENT}/insurer-payments", data={"csrf_token": token, "layer_code": "L9",
                                                               "amount_jpy": "1"})
    assert unknown.status_code == 422
    part = client.post(f"{INCIDENT}/insurer-payments", data={"csrf_token": token, "layer_code": "L1",
                                                             "amount_jpy": "4000000"}, follow_redirects=True)
    assert "JPY 6,000,000 still owed" in part.text
    assert sum(a for rows in payments(app).values() for s, a, _r in rows if s == "paid") == 7_500_000
    rest = client.post(f"{INCIDENT}/insurer-payments", data={"csrf_token": token, "layer_code": "L1",
                                                             "amount_jpy": "6000000"}, follow_redirects=True)
    assert "paid in full" in rest.text
    assert sum(a for rows in payments(app).values() for s, a, _r in rows if s == "paid") == 17_500_000
    assert "Record an insurer's payment" not in rest.text  # nothing is owed any more
    recon = client.get(f"{INCIDENT}/reconciliation").text
    l1 = re.search(r"<td data-label=\"Source\">L1</td>(.*?)</tr>", recon, re.S).group(1)
    assert re.sub(r"<[^>]+>", " ", l1).split() == ["JPY", "10,000,000", "JPY", "0", "JPY", "10,000,000", "JPY", "0"]
    assert "Reconciled to the yen" in recon


@pytest.mark.usefixtures("approved_claims")
def test_a_difference_is_flagged_in_words(app, client_for):  # type: ignore[no-untyped-def]
    fund_and_commit(app)
    session = app.extensions["payouts"].session_factory()
    first = session.scalar(select(Disbursement.id).order_by(Disbursement.id))
    session.execute(update(Disbursement).where(Disbursement.id == first).values(amount_jpy=4_999_999))
    session.commit()
    session.close()
    client = client_for(Role.REGULATOR)
    client.get("/lang/en")
    recon = client.get(f"{INCIDENT}/reconciliation").text
    assert '<h2 class="error">Difference found</h2>' in recon and "Reconciled to the yen" not in recon
    assert '<strong class="error">Difference: JPY 1</strong>' in recon
    rows = list(csv.reader(io.StringIO(client.get(f"{INCIDENT}/reconciliation.csv").text)))
    assert ["source", "reserve", "", "17500000", "0", "17499999", "", "1"] in rows
    assert rows[-1][:2] == ["result", "difference_found"]


@pytest.mark.usefixtures("approved_claims")
def test_regulator_reads_every_page_without_forms_and_cannot_post(app, client_for):  # type: ignore[no-untyped-def]
    fund_and_commit(app, c2_account="0000000")
    staff_page = client_for(Role.STAFF).get(f"{INCIDENT}/disbursements").text
    c2_payment = int(re.search(r'/disbursements/(\d+)/retry', staff_page).group(1))
    client = client_for(Role.REGULATOR)
    for url in (f"{INCIDENT}/disbursements", f"{INCIDENT}/reconciliation", "/staff/zengin"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert '<form method="post"' not in main(page.text), url
    assert client.get(f"{INCIDENT}/reconciliation.csv").status_code == 200
    token = csrf_token(client.get("/", follow_redirects=True).text)
    for url in (f"{INCIDENT}/disbursements/{c2_payment}/retry", f"{INCIDENT}/disbursements/sweep",
                f"{INCIDENT}/insurer-payments", "/staff/zengin/paying-accounts", "/staff/zengin/files",
                "/staff/zengin/1/result"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403, url
    assert payments(app)["C2"][0][0] == "needs_attention"


@pytest.mark.usefixtures("approved_claims")
def test_customers_cannot_see_payment_pages(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.CUSTOMER)
    for url in (f"{INCIDENT}/disbursements", f"{INCIDENT}/reconciliation", f"{INCIDENT}/reconciliation.csv",
                "/staff/zengin"):
        assert client.get(url).status_code == 403, url


def test_queue_depth_from_redis_and_when_it_is_down(app, client_for, monkeypatch):  # type: ignore[no-untyped-def]
    import fakeredis
    from rq import Queue

    from payouts.web.staff import disbursement_views

    fake = fakeredis.FakeRedis()
    queue = Queue("payouts-default", connection=fake)
    for _ in range(3):
        queue.enqueue("payouts.jobs.disbursements.pay_batch", 1)
    state = app.extensions["payouts"]
    monkeypatch.setattr(state, "config", replace(state.config, redis_url="redis://queue.invalid:6379/0"))
    monkeypatch.setattr(disbursement_views.Redis, "from_url", classmethod(lambda cls, url, **kw: fake))
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get(f"{INCIDENT}/disbursements").text
    assert "Jobs waiting in the queue</dt><dd>\n      3" in page
    assert "inline (no queue)" not in page

    def down(cls, url, **kw):  # type: ignore[no-untyped-def]
        raise disbursement_views.RedisError("connection refused")

    monkeypatch.setattr(disbursement_views.Redis, "from_url", classmethod(down))
    page = client.get(f"{INCIDENT}/disbursements")
    assert page.status_code == 200 and "unavailable: the queue (Redis) does not answer" in page.text


def test_japanese_is_the_default_and_yen_is_written_in_yen(app, client_for):  # type: ignore[no-untyped-def]
    session = app.extensions["payouts"].session_factory()
    from tests.helpers import approve_all_claims

    approve_all_claims(session, STAFF, "INC-1")
    session.close()
    fund_and_commit(app)
    client = client_for(Role.STAFF)
    page = client.get(f"{INCIDENT}/disbursements", headers={"Accept-Language": "ja"})
    assert '<html lang="ja">' in page.text and "¥17,500,000" in page.text and "JPY" not in page.text
    assert "¥17,500,000" in client.get(f"{INCIDENT}/reconciliation").text
