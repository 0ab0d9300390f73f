"""Paying through Zengin files, end to end through the back office: commit, files, the bank's result."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from sqlalchemy import select

from payouts.db.models import Customer, Disbursement, ReserveEntry, ZenginFile
from payouts.domain.roles import Role
from payouts.rails.zengin import RECORD_LENGTH, make_result_file, parse_transfer_file
from tests.conftest import make_config
from tests.web.conftest import accounts, approved_claims, client_for, csrf_token  # noqa: F401 - fixtures
from tests.web.test_disbursement_pages import approve_destination, fund_and_commit

DAY = dt.date(2026, 2, 2)
RESERVE_ACCOUNT = {"purpose": "reserve", "company_code": "1234567890", "company_name": "カ）コウカンジョ",
                   "bank_code": "0001", "bank_name": "ミズホ", "branch_code": "001", "branch_name": "ホンテン",
                   "account_type": "current", "account_number": "7654321"}


@pytest.fixture
def app(db_url, tmp_path):  # type: ignore[no-untyped-def]
    """The app paying through Zengin files instead of the sandbox bank."""
    from payouts.web.app import create_app

    application = create_app(make_config(db_url, tmp_path, rail="zengin"))
    application.config["TESTING"] = True
    yield application
    application.extensions["payouts"].engine.dispose()


def rows(app) -> dict[str, tuple[int, str, int, str, int | None]]:  # type: ignore[no-untyped-def]
    """customer ref -> (id, status, amount, failure reason, transfer file id)."""
    session = app.extensions["payouts"].session_factory()
    try:
        return {ref: (i, status, amount, reason, file_id) for ref, i, status, amount, reason, file_id in session.execute(
            select(Customer.external_ref, Disbursement.id, Disbursement.status, Disbursement.amount_jpy,
                   Disbursement.failure_reason, Disbursement.zengin_file_id)
            .join(Customer, Customer.id == Disbursement.customer_id))}
    finally:
        session.close()


def post(client, url: str, data: dict, **kw):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get("/staff/zengin").text)
    return client.post(url, data={"csrf_token": token, **data}, **kw)


def upload(client, file_id: int, content: bytes, **kw):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get("/staff/zengin").text)
    return client.post(f"/staff/zengin/{file_id}/result", content_type="multipart/form-data", data={
        "csrf_token": token, f"result-{file_id}-file": (io.BytesIO(content), "result.txt")}, **kw)


def create_files(client, day: dt.date, **kw):  # type: ignore[no-untyped-def]
    return post(client, "/staff/zengin/files", {"transfer_date": day.isoformat()}, **kw)


@pytest.fixture
def staff(app, approved_claims, client_for):  # type: ignore[no-untyped-def]  # noqa: F811
    fund_and_commit(app)
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    return client


def test_commit_leaves_payments_submitted_until_a_file_and_its_result(app, staff):  # type: ignore[no-untyped-def]
    before = rows(app)
    assert {status for _i, status, _a, _r, _f in before.values()} == {"submitted"}
    page = staff.get("/staff/zengin").text
    assert re.search(r"Payments waiting for a transfer file: <strong>2</strong> \(JPY 17,500,000\)", page)

    no_account = create_files(staff, DAY, follow_redirects=True)
    assert "no paying account for the reserve is set" in no_account.text
    assert post(staff, "/staff/zengin/paying-accounts", RESERVE_ACCOUNT).status_code == 302
    assert "ｶ)ｺｳｶﾝｼﾞﾖ" in staff.get("/staff/zengin").text

    created = create_files(staff, DAY, follow_redirects=True)
    assert "Transfer files created for 2026-02-02: #1 (2 payments, JPY 17,500,000)." in created.text
    assert "Payments waiting for a transfer file: <strong>0</strong>" in created.text
    assert "Awaiting the bank's result" in created.text
    assert {f for _i, _s, _a, _r, f in rows(app).values()} == {1}

    download = staff.get("/staff/zengin/1/download")
    assert download.status_code == 200
    assert download.mimetype == "application/octet-stream"
    assert download.headers["Content-Disposition"] == 'attachment; filename="zengin-2026-02-02-1.txt"'
    assert download.headers["Cache-Control"] == "no-store"
    content = download.data
    records = content.split(b"\r\n")
    assert records.pop() == b""
    assert [len(r) for r in records] == [RECORD_LENGTH] * 5
    assert [r[:1] for r in records] == [b"1", b"2", b"2", b"8", b"9"]
    for record in records:
        assert len(record.decode("cp932")) == RECORD_LENGTH  # Shift_JIS, one byte a character
    header, items, trailer = parse_transfer_file(content)
    assert header["company_code"] == "1234567890" and header["transfer_date"] == "0202"
    assert {(i.disbursement_id, i.amount_jpy) for i in items} == {(r[0], r[2]) for r in before.values()}
    assert (trailer.count, trailer.total_jpy) == (2, 17_500_000)
    assert create_files(staff, DAY, follow_redirects=True).status_code == 422  # nothing left to file

    c1, c2 = before["C1"][0], before["C2"][0]
    done = upload(staff, 1, make_result_file(content, {c2: "closed_account"}), follow_redirects=True)
    assert "Result of transfer file #1 imported: 1 paid, 1 failed." in done.text
    after = rows(app)
    assert after["C1"][1] == "paid"
    assert after["C2"][1:3] == ("needs_attention", 12_500_000)
    assert "closed" in after["C2"][3]
    assert "Awaiting the bank's result" not in done.text and "Imported 20" in done.text

    session = app.extensions["payouts"].session_factory()
    paid_entries = session.scalars(select(ReserveEntry.amount_jpy).where(ReserveEntry.kind == "payment")).all()
    session.close()
    assert paid_entries == [5_000_000]

    again = upload(staff, 1, make_result_file(content, {}), follow_redirects=True)
    assert "was already imported" in again.text
    assert rows(app) == after

    disbursements = staff.get("/staff/incidents/INC-1/disbursements").text
    attention = disbursements.split('id="attention"', 1)[1].split("</section>", 1)[0]
    assert "C2" in attention and "The receiving account is closed" in attention
    assert "Reconciled to the yen" in staff.get("/staff/incidents/INC-1/reconciliation").text


def test_a_malformed_result_is_refused_by_line_and_changes_nothing(app, staff):  # type: ignore[no-untyped-def]
    post(staff, "/staff/zengin/paying-accounts", RESERVE_ACCOUNT)
    create_files(staff, DAY)
    content = staff.get("/staff/zengin/1/download").data
    before = rows(app)
    result = make_result_file(content, {}).split(b"\r\n")
    short = b"\r\n".join([result[0], result[1][:-1], *result[2:]])  # line 2 loses a byte
    refused = upload(staff, 1, short)
    assert refused.status_code == 422
    assert "line 2: is 119 bytes; a Zengin record is 120" in refused.text
    assert "was refused; nothing was changed" in refused.text
    assert rows(app) == before

    transfer_not_result = upload(staff, 1, content)
    assert transfer_not_result.status_code == 422
    assert "line 2: no result code at byte 114" in transfer_not_result.text
    empty = upload(staff, 1, b"")
    assert empty.status_code == 422
    assert rows(app) == before
    session = app.extensions["payouts"].session_factory()
    assert session.scalar(select(ZenginFile.result_imported_at)) is None
    session.close()
    assert upload(staff, 1, make_result_file(content, {})).status_code == 302
    assert {status for _i, status, _a, _r, _f in rows(app).values()} == {"paid"}


def test_a_retried_payment_goes_into_the_next_file(app, staff):  # type: ignore[no-untyped-def]
    post(staff, "/staff/zengin/paying-accounts", RESERVE_ACCOUNT)
    create_files(staff, DAY)
    content = staff.get("/staff/zengin/1/download").data
    c2 = rows(app)["C2"][0]
    upload(staff, 1, make_result_file(content, {c2: "closed_account"}))
    token = csrf_token(staff.get("/staff/incidents/INC-1/disbursements").text)
    refused = staff.post(f"/staff/incidents/INC-1/disbursements/{c2}/retry", data={"csrf_token": token},
                         follow_redirects=True)
    assert "fix the payout account" in refused.text

    approve_destination(app, "C2", "7654321")
    staff.post(f"/staff/incidents/INC-1/disbursements/{c2}/retry", data={"csrf_token": token})
    assert rows(app)["C2"][1] == "submitted"
    same_day = create_files(staff, DAY, follow_redirects=True)
    assert "already exists; choose another date" in same_day.text
    created = create_files(staff, DAY + dt.timedelta(days=1), follow_redirects=True)
    assert "#2 (1 payments, JPY 12,500,000)" in created.text
    second = staff.get("/staff/zengin/2/download").data
    assert [i.account.account_number for i in parse_transfer_file(second)[1]] == ["7654321"]
    upload(staff, 2, make_result_file(second, {}))
    assert rows(app)["C2"][1:3] == ("paid", 12_500_000)


def test_paying_account_refusals_name_the_field(app, staff):  # type: ignore[no-untyped-def]
    short = post(staff, "/staff/zengin/paying-accounts", {**RESERVE_ACCOUNT, "company_code": "123"})
    assert short.status_code == 422
    assert '<p class="error" id="company_code-error">must be 10 digits</p>' in short.text
    kanji = post(staff, "/staff/zengin/paying-accounts", {**RESERVE_ACCOUNT, "bank_name": "みずほ銀行"})
    assert kanji.status_code == 422
    assert re.search(r'id="bank_name-error">[^<]*cannot be sent in a bank transfer', kanji.text)


def test_regulator_sees_the_files_but_not_account_numbers_and_changes_nothing(app, staff, client_for):  # type: ignore[no-untyped-def]  # noqa: F811,E501
    post(staff, "/staff/zengin/paying-accounts", RESERVE_ACCOUNT)
    create_files(staff, DAY)
    regulator = client_for(Role.REGULATOR)
    regulator.get("/lang/en")
    page = regulator.get("/staff/zengin")
    assert page.status_code == 200
    body = page.text.split("<main", 1)[1]
    assert '<form method="post"' not in body
    assert "JPY 17,500,000" in body and "Awaiting the bank's result" in body
    assert "/staff/zengin/1/download" not in body
    # The file holds customers' full account numbers: staff hand it to the bank, nobody else.
    assert regulator.get("/staff/zengin/1/download").status_code == 403
    token = csrf_token(regulator.get("/", follow_redirects=True).text)
    content = staff.get("/staff/zengin/1/download").data
    assert regulator.post("/staff/zengin/1/result", content_type="multipart/form-data", data={
        "csrf_token": token, "result-1-file": (io.BytesIO(make_result_file(content, {})), "r.txt")}).status_code == 403
    assert regulator.post("/staff/zengin/files", data={"csrf_token": token, "transfer_date": "2026-03-01"}).status_code == 403
    assert {status for _i, status, _a, _r, _f in rows(app).values()} == {"submitted"}
    assert staff.get("/staff/zengin/99/download").status_code == 404
