"""The customer portal over claims: lines and totals, accept, dispute with evidence, withdraw,
receipts, payout accounts, notices, and that nobody else reaches any of it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from payouts.db.models import Claim, Customer, EvidenceFile, PayoutDestination
from payouts.domain.roles import Role
from payouts.services import claims, notices
from tests.conftest import STAFF, make_config
from tests.web.conftest import csrf_token

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64


@pytest.fixture
def app(db_url, tmp_path):  # type: ignore[no-untyped-def]
    """The usual app, with evidence kept under the test's own directory."""
    from payouts.web.app import create_app

    application = create_app(make_config(db_url, tmp_path, evidence_dir=str(tmp_path / "evidence")))
    application.config["TESTING"] = True
    yield application
    application.extensions["payouts"].engine.dispose()


@pytest.fixture
def evidence_dir(app) -> Path:  # type: ignore[no-untyped-def]
    return Path(app.extensions["payouts"].config.evidence_dir)


@pytest.fixture
def session(app, accounts):  # type: ignore[no-untyped-def]
    s = app.extensions["payouts"].session_factory()
    yield s
    s.close()


@pytest.fixture
def opened(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """INC-1's claims open: customer ref -> claim id (C1 is "customer", C2 is "other")."""
    claims.open_claims(session, STAFF, "INC-1")
    rows = dict(session.execute(select(Customer.external_ref, Claim.id)
                                .join(Claim, Claim.customer_id == Customer.id)).all())
    session.commit()  # SQLite: no transaction (and its write lock) left open across requests
    return rows


@pytest.fixture
def customer(client_for):  # type: ignore[no-untyped-def]
    return english(client_for(Role.CUSTOMER))


def english(client):  # type: ignore[no-untyped-def]
    client.get("/lang/en")
    return client


def row_version(html: str) -> str:
    match = re.search(r'name="row_version" type="hidden" value="(\d+)"|name="row_version" value="(\d+)"', html)
    assert match, "page has no row_version field"
    return match.group(1) or match.group(2)


def claim_status(session, claim_id: int) -> str:  # type: ignore[no-untyped-def]
    return read(session, select(Claim.status).where(Claim.id == claim_id))


def read(session, query):  # type: ignore[no-untyped-def]
    """One value, read fresh, ending the transaction at once (SQLite's write lock with it)."""
    session.expire_all()
    value = session.scalar(query)
    session.commit()
    return value


def dispute(client, claim_id: int, **fields):  # type: ignore[no-untyped-def]
    page = client.get(f"/portal/claims/{claim_id}")
    data = {"csrf_token": csrf_token(page.text), "row_version": row_version(page.text), **fields}
    return client.post(f"/portal/claims/{claim_id}/dispute", data=data, content_type="multipart/form-data")


# --- seeing the claim -----------------------------------------------------------------------


def test_customer_sees_own_claim_lines_and_total(customer, opened):  # type: ignore[no-untyped-def]
    home = customer.get("/portal/")
    assert home.status_code == 200
    assert f'/portal/claims/{opened["C1"]}"' in home.text
    assert f'/portal/claims/{opened["C2"]}"' not in home.text
    assert "JPY 5,000,000" in home.text and "Open: waiting for you" in home.text
    assert "accept the claim or dispute it" in home.text

    page = customer.get(f"/portal/claims/{opened['C1']}")
    assert page.status_code == 200
    # 0.5 BTC at JPY 10,000,000 from "test VWAP": the line, exact, and the total rounded down once.
    assert ">0.5<" in page.text and "JPY 10,000,000" in page.text and "test VWAP" in page.text
    assert page.text.count("JPY 5,000,000") >= 2
    assert ">1.25<" not in page.text  # the other customer's 1.25 BTC (a timestamp may hold "1.25")
    assert "Claim opened with the positions" in page.text  # the timeline starts
    assert 'action="/portal/claims/%d/accept"' % opened["C1"] in page.text
    assert 'href="/portal/claims/%d/dispute"' % opened["C1"] in page.text
    dispute_page = customer.get(f"/portal/claims/{opened['C1']}/dispute")
    assert dispute_page.status_code == 200 and 'enctype="multipart/form-data"' in dispute_page.text
    assert "PDF, PNG or JPEG, at most 10 MB each" in dispute_page.text and "JPY 5,000,000" in dispute_page.text


def test_home_keeps_the_losses_of_incidents_whose_claims_are_not_open(customer):  # type: ignore[no-untyped-def]
    home = customer.get("/portal/")
    assert "Your claim is not open yet" in home.text and "JPY 5,000,000" in home.text
    assert "Missing: add the bank account" in home.text


# --- accepting ------------------------------------------------------------------------------


def test_accept_moves_the_claim_and_a_stale_page_gets_the_conflict(customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    page = customer.get(f"/portal/claims/{claim_id}")
    token, seen = csrf_token(page.text), row_version(page.text)
    done = customer.post(f"/portal/claims/{claim_id}/accept", data={"csrf_token": token, "row_version": seen})
    assert done.status_code == 302
    assert claim_status(session, claim_id) == "accepted"
    after = customer.get(f"/portal/claims/{claim_id}")
    assert "Accepted by you" in after.text and "Review by staff" in after.text
    assert "usually within 5 business days" in after.text
    assert f"/portal/claims/{claim_id}/receipt" in after.text

    # The same page sent again (the claim moved on meanwhile): refused, and the fresh claim shown.
    again = customer.post(f"/portal/claims/{claim_id}/accept", data={"csrf_token": token, "row_version": seen})
    assert again.status_code == 409
    assert "changed since you opened the page" in again.text
    assert "Accepted by you" in again.text
    assert row_version(customer.get(f"/portal/claims/{claim_id}/dispute").text) != seen


def test_a_dispute_against_a_version_staff_changed_is_refused(customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    page = customer.get(f"/portal/claims/{claim_id}")
    token, seen = csrf_token(page.text), row_version(page.text)
    claims.adjust_claim(session, STAFF, claim_id, int(seen), amounts={"BTC": "0.6"}, reason="A missed deposit")
    response = customer.post(f"/portal/claims/{claim_id}/dispute", content_type="multipart/form-data",
                             data={"csrf_token": token, "row_version": seen, "reason": "too low"})
    assert response.status_code == 409
    assert "changed since you opened the page" in response.text
    assert "JPY 6,000,000" in response.text and "A missed deposit" in response.text
    assert "too low" in response.text  # what the customer typed is kept
    assert claim_status(session, claim_id) == "open"


def test_adjusted_claim_shows_the_new_version_reason_and_notice(customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    claims.adjust_claim(session, STAFF, claim_id, 1, amounts={"BTC": "0.6"}, reason="A missed deposit")
    home = customer.get("/portal/")
    assert "1 unread" in home.text
    page = customer.get(f"/portal/claims/{claim_id}")
    assert "Why staff adjusted this claim" in page.text and "A missed deposit" in page.text
    assert ">0.6<" in page.text and "JPY 6,000,000" in page.text
    assert "1 unread" in page.text  # the badges come with the claim, in the same query
    assert "Adjusted by staff: version 2" in page.text
    assert "Accept version 2" in page.text


# --- disputing with evidence ----------------------------------------------------------------


def test_dispute_with_a_png_is_stored_and_only_its_owner_downloads_it(  # type: ignore[no-untyped-def]
        customer, client_for, opened, session, evidence_dir):
    claim_id = opened["C1"]
    response = dispute(customer, claim_id, reason="My statement shows 0.6 BTC", corrected_0="0.6",
                       evidence=[(io.BytesIO(PNG), "statement.png")])
    assert response.status_code == 302, response.text
    assert claim_status(session, claim_id) == "disputed"
    row = read(session, select(EvidenceFile).where(EvidenceFile.claim_id == claim_id))
    assert row is not None and row.content_type == "image/png" and row.byte_size == len(PNG)
    assert (evidence_dir / row.storage_name).read_bytes() == PNG

    page = customer.get(f"/portal/claims/{claim_id}")
    assert "Disputed by you" in page.text and "My statement shows 0.6 BTC" in page.text
    assert "0.6 BTC" in page.text and "statement.png" in page.text
    assert f"/portal/evidence/{row.id}" in page.text
    assert "usually within 10 business days" in page.text

    download = customer.get(f"/portal/evidence/{row.id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.mimetype == "image/png"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "statement.png" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    other = client_for("other")
    assert other.get(f"/portal/evidence/{row.id}").status_code == 404
    assert other.get(f"/portal/claims/{claim_id}").status_code == 404
    assert client_for(Role.STAFF).get(f"/portal/evidence/{row.id}").status_code == 403


def test_an_exe_named_png_is_refused_and_nothing_stays_behind(customer, opened, session, evidence_dir):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    response = dispute(customer, claim_id, reason="see files",
                       evidence=[(io.BytesIO(PNG), "good.png"), (io.BytesIO(EXE), "photo.png")])
    assert response.status_code == 422
    assert "photo.png: only PDF, PNG or JPEG files are accepted" in response.text
    assert 'id="evidence-error"' in response.text
    assert claim_status(session, claim_id) == "open"
    assert read(session, select(EvidenceFile.id)) is None
    assert not evidence_dir.exists() or list(evidence_dir.iterdir()) == []  # the good file was discarded too


def test_a_dispute_needs_a_reason(customer, opened, session, evidence_dir):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    response = dispute(customer, claim_id, reason="   ", evidence=[(io.BytesIO(PNG), "a.png")])
    assert response.status_code == 422
    assert "Tell us what is wrong with the claim." in response.text
    assert 'aria-describedby="reason-hint reason-error"' in response.text
    assert claim_status(session, claim_id) == "open"
    assert not evidence_dir.exists() or list(evidence_dir.iterdir()) == []


def test_a_bad_corrected_amount_is_shown_next_to_its_field(customer, opened, session, evidence_dir):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    response = dispute(customer, claim_id, reason="wrong", corrected_0="0.5.1",
                       evidence=[(io.BytesIO(PNG), "a.png")])
    assert response.status_code == 422
    assert 'id="corrected_0-error"' in response.text and "is not a plain decimal number" in response.text
    assert claim_status(session, claim_id) == "open"
    assert list(evidence_dir.iterdir()) == []  # stored before the service refused, then discarded


def test_at_most_five_files(customer, opened, session):  # type: ignore[no-untyped-def]
    files = [(io.BytesIO(PNG), f"{n}.png") for n in range(6)]
    response = dispute(customer, opened["C1"], reason="many files", evidence=files)
    assert response.status_code == 422 and "Send at most 5 files." in response.text
    assert claim_status(session, opened["C1"]) == "open"


# --- withdrawing ----------------------------------------------------------------------------


def test_withdraw_asks_for_confirmation(customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    confirm = customer.get(f"/portal/claims/{claim_id}/withdraw")
    assert confirm.status_code == 200 and "will not be paid" in confirm.text
    data = {"csrf_token": csrf_token(confirm.text), "row_version": row_version(confirm.text)}
    unconfirmed = customer.post(f"/portal/claims/{claim_id}/withdraw", data=data)
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.text
    assert claim_status(session, claim_id) == "open"
    done = customer.post(f"/portal/claims/{claim_id}/withdraw", data={**data, "confirm": "y"})
    assert done.status_code == 302
    assert claim_status(session, claim_id) == "withdrawn"
    page = customer.get(f"/portal/claims/{claim_id}")
    assert "You withdrew the claim." in page.text and "/accept" not in page.text


# --- receipt --------------------------------------------------------------------------------


def test_receipt_only_after_accepting_and_downloadable(customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    before = customer.get(f"/portal/claims/{claim_id}/receipt")
    assert before.status_code == 404 and "once you have accepted" in before.text
    page = customer.get(f"/portal/claims/{claim_id}")
    customer.post(f"/portal/claims/{claim_id}/accept",
                  data={"csrf_token": csrf_token(page.text), "row_version": row_version(page.text)})
    receipt = customer.get(f"/portal/claims/{claim_id}/receipt")
    assert receipt.status_code == 200
    for text in ("C1", "Customer One", "Test hack", "INC-1", "JPY 5,000,000", "JPY 10,000,000", "Accepted by you"):
        assert text in receipt.text, text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d JST", receipt.text)
    download = customer.get(f"/portal/claims/{claim_id}/receipt?download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f"attachment; filename=receipt-INC-1-{claim_id}.html"
    assert "JPY 5,000,000" in download.text and "<style>" in download.text


# --- payout account -------------------------------------------------------------------------


def _destination(client, **fields):  # type: ignore[no-untyped-def]
    page = client.get("/portal/destination")
    data = {"csrf_token": csrf_token(page.text), "bank_code": "0005", "branch_code": "001",
            "account_type": "ordinary", "account_number": "1234567", "holder_kana": "ヤマダ タロウ", **fields}
    return client.post("/portal/destination", data=data)


def test_destination_errors_are_shown_next_to_their_fields(customer, session):  # type: ignore[no-untyped-def]
    bad_bank = _destination(customer, bank_code="12")
    assert bad_bank.status_code == 422
    assert 'id="bank_code-error"' in bad_bank.text and "must be 4 digits" in bad_bank.text
    kanji = _destination(customer, holder_kana="山田太郎")
    assert kanji.status_code == 422
    assert 'id="holder_kana-error"' in kanji.text and "cannot be sent in a bank transfer" in kanji.text
    assert 'aria-invalid="true"' in kanji.text
    assert read(session, select(PayoutDestination.id)) is None


def test_destination_is_sent_for_approval_and_shown_masked(customer, session):  # type: ignore[no-untyped-def]
    done = _destination(customer, holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ", account_number="１２３４５")  # half-width kana, full-width digits
    assert done.status_code == 302
    row = read(session, select(PayoutDestination))
    assert row.status == "pending" and row.account_number == "0012345" and row.holder_kana == "ﾔﾏﾀﾞ ﾀﾛｳ"
    page = customer.get("/portal/destination")
    assert "Waiting for approval by staff" in page.text and "****345" in page.text
    assert "0012345" not in page.text
    assert "Waiting for approval by staff" in customer.get("/portal/").text


# --- notices --------------------------------------------------------------------------------


def test_notices_are_worded_newest_first_and_marked_read(customer, opened, session):  # type: ignore[no-untyped-def]
    claims.request_information(session, STAFF, opened["C1"], 1, "Which wallet did you use?")
    c1 = read(session, select(Customer.id).where(Customer.external_ref == "C1"))
    from payouts.db.session import transaction

    with transaction(session):
        notices.notify(session, c1, None, "destination.rejected", {"reason": "holder name differs"})
    assert "2 unread" in customer.get("/portal/").text
    page = customer.get("/portal/notices")
    assert page.status_code == 200
    first = page.text.index("Your payout account was not approved. Reason: holder name differs")
    second = page.text.index("Staff need more information about your claim: Which wallet did you use?")
    assert first < second
    assert page.text.count(">New<") == 2
    session.expire_all()
    assert notices.unread_count(session, c1) == 0
    session.commit()
    assert "unread" not in customer.get("/portal/notices").text.split("<h1>")[0]
    claim_page = customer.get(f"/portal/claims/{opened['C1']}")
    assert "What staff asked you" in claim_page.text and "Which wallet did you use?" in claim_page.text


def test_a_payment_whose_outcome_is_unknown_is_worded_as_delayed_not_failed(customer, opened, session):  # type: ignore[no-untyped-def]
    from payouts.db.session import transaction

    c1 = read(session, select(Customer.id).where(Customer.external_ref == "C1"))
    with transaction(session):
        notices.notify(session, c1, None, "payment.delayed", {"reason": "timeout"})
    page = customer.get("/portal/notices").text
    assert "delayed while we confirm it with the bank" in page and "it will not be paid twice" in page
    assert "failed" not in page
    customer.get("/lang/ja")
    assert "二重に支払われることはありません" in customer.get("/portal/notices").text


def test_notices_stay_unread_when_another_site_sends_the_browser_to_them(customer, opened, session):  # type: ignore[no-untyped-def]
    claims.request_information(session, STAFF, opened["C1"], 1, "Which wallet did you use?")
    c1 = read(session, select(Customer.id).where(Customer.external_ref == "C1"))
    page = customer.get("/portal/notices", headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200 and "Which wallet did you use?" in page.text
    session.expire_all()
    assert notices.unread_count(session, c1) == 1
    session.commit()
    customer.get("/portal/notices", headers={"Sec-Fetch-Site": "same-origin"})
    session.expire_all()
    assert notices.unread_count(session, c1) == 0


def test_notices_of_one_customer_stay_with_them(client_for, opened, session):  # type: ignore[no-untyped-def]
    claims.request_information(session, STAFF, opened["C1"], 1, "Which wallet did you use?")
    other = english(client_for("other")).get("/portal/notices")
    assert "Which wallet" not in other.text and "No notices yet." in other.text


# --- access ---------------------------------------------------------------------------------


def test_nobody_else_reaches_a_customers_claim_pages(app, client_for, customer, opened, session):  # type: ignore[no-untyped-def]
    claim_id = opened["C1"]
    assert dispute(customer, claim_id, reason="see file", evidence=[(io.BytesIO(PNG), "s.png")]).status_code == 302
    file_id = read(session, select(EvidenceFile.id))
    urls = [("GET", f"/portal/claims/{claim_id}"), ("POST", f"/portal/claims/{claim_id}/accept"),
            ("POST", f"/portal/claims/{claim_id}/dispute"), ("GET", f"/portal/claims/{claim_id}/withdraw"),
            ("POST", f"/portal/claims/{claim_id}/withdraw"), ("GET", f"/portal/claims/{claim_id}/receipt"),
            ("GET", f"/portal/claims/{claim_id}/receipt?download=1"), ("GET", f"/portal/evidence/{file_id}")]
    assert customer.get(f"/portal/evidence/{file_id}").status_code == 200
    for who, allowed in (("other", (403, 404)), (Role.STAFF, (403,)), (Role.REGULATOR, (403,)),
                         (Role.APPROVER, (403,)), (Role.ADMIN, (403,))):
        client = client_for(who)
        token = csrf_token(client.get("/", follow_redirects=True).text)
        for method, url in urls:
            response = client.open(url, method=method, data={"csrf_token": token, "row_version": "2",
                                                             "reason": "x", "confirm": "y"})
            assert response.status_code in allowed, f"{who} {method} {url} -> {response.status_code}"
    anonymous = app.test_client()
    for method, url in urls:
        if method == "GET":
            response = anonymous.get(url)
            assert response.status_code == 302 and "/login" in response.headers["Location"]
    # Nothing the others sent changed the claim.
    assert claim_status(session, claim_id) == "disputed"


# --- payments and statements ----------------------------------------------------------------


def test_a_paid_payment_has_a_statement_only_its_owner_reads(app, customer, client_for, opened, session):  # type: ignore[no-untyped-def]
    from payouts.db.models import Disbursement, PayoutDestination
    from payouts.services import allocation, funding
    from tests.helpers import approve_all_claims

    approve_all_claims(session, STAFF, "INC-1")
    c1 = session.scalar(select(Customer.id).where(Customer.external_ref == "C1"))
    # C1 has an approved account; C2 has none, so C2's payment is held.
    session.add(PayoutDestination(customer_id=c1, bank_code="0005", branch_code="001", account_type="ordinary",
                                  account_number="1234567", holder_kana="ｶｽﾀﾏ- ﾜﾝ", status="approved",
                                  approvals_required=1, submitted_by_label="test"))
    session.commit()
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=20_000_000, memo="cash")
    allocation.commit_allocation(session, STAFF, "INC-1", dispatch=app.extensions["payouts"].dispatch)
    paid = session.scalar(select(Disbursement).where(Disbursement.customer_id == c1))
    held = session.scalar(select(Disbursement).where(Disbursement.customer_id != c1))
    session.refresh(paid)
    assert paid.status == "paid" and held.status == "held"
    session.commit()  # SQLite: no transaction (and its write lock) left open across requests

    page = customer.get(f"/portal/claims/{opened['C1']}")
    assert "Your payments" in page.text and f"/portal/payments/{paid.id}/statement" in page.text
    statement = customer.get(f"/portal/payments/{paid.id}/statement")
    assert statement.status_code == 200
    assert "JPY 5,000,000" in statement.text and f"INC-1-{paid.id}" in statement.text
    assert "****567" in statement.text and "1234567" not in statement.text
    assert "liability reserve" in statement.text
    download = customer.get(f"/portal/payments/{paid.id}/statement?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    other = english(client_for("other"))
    assert other.get(f"/portal/payments/{paid.id}/statement").status_code == 404  # not theirs
    assert other.get(f"/portal/payments/{held.id}/statement").status_code == 404  # theirs, not paid
    assert client_for(Role.STAFF).get(f"/portal/payments/{paid.id}/statement").status_code == 403


def test_an_approved_claims_next_step_follows_the_payout_account(customer, opened, session):  # type: ignore[no-untyped-def]
    from payouts.db.models import PayoutDestination
    from tests.helpers import approve_all_claims

    approve_all_claims(session, STAFF, "INC-1")
    claim_id = opened["C1"]
    assert "Add a payout account now" in customer.get(f"/portal/claims/{claim_id}").text
    c1 = session.scalar(select(Customer.id).where(Customer.external_ref == "C1"))
    # The account changes; the claim does not (same row version): the page must still follow.
    session.add(PayoutDestination(customer_id=c1, bank_code="0005", branch_code="001", account_type="ordinary",
                                  account_number="1234567", holder_kana="ｶｽﾀﾏ- ﾜﾝ", status="approved",
                                  approvals_required=1, submitted_by_label="test"))
    session.commit()
    page = customer.get(f"/portal/claims/{claim_id}").text
    assert "Payment to your approved payout account" in page and "Add a payout account now" not in page
