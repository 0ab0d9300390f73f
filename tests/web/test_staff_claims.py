"""Staff claim pages: the review queue and its filters, one claim and its actions (four eyes,
adjustments, conflicts), bulk approval, evidence, payout destinations, and who may do what.

States are set up through the services as customers would reach them (open, accept, dispute);
the staff side goes through the pages, as a reviewer would.
"""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from sqlalchemy import select

from payouts.db.models import Claim
from payouts.domain.roles import Actor, Role
from payouts.services import claim_queue, claims, destinations, evidence, users
from tests.conftest import STAFF
from tests.web.conftest import csrf_token

THRESHOLD = 10_000_000  # C1 (0.5 BTC = ¥5,000,000) is below it, C2 (1.25 BTC = ¥12,500,000) above
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Desk:
    """INC-1 with its claims open, and handles on the people who act on them."""

    def __init__(self, app, accounts) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.session = app.extensions["payouts"].session_factory()
        self.actors = {}
        for key in (Role.CUSTOMER, "other", Role.STAFF, Role.APPROVER):
            username, password = accounts[key]
            user = users.authenticate(self.session, username, password)
            assert user is not None
            role = Role.CUSTOMER if key == "other" else key
            self.actors[key] = Actor(label=username, role=role, user_id=user.id)
        claims.open_claims(self.session, STAFF, "INC-1")
        self.ids = {"C1": claims.my_claims(self.session, self.actors[Role.CUSTOMER])[0].id,
                    "C2": claims.my_claims(self.session, self.actors["other"])[0].id}
        self.session.rollback()  # SQLite transactions begin IMMEDIATE: hold none between steps

    def claim(self, ref: str) -> Claim:
        """The claim as it is now, detached (no transaction is left open)."""
        self.session.expire_all()
        claim = self.session.scalar(select(Claim).where(Claim.id == self.ids[ref]))
        assert claim is not None
        self.session.expunge(claim)
        self.session.rollback()
        return claim

    def customer(self, ref: str) -> Actor:
        return self.actors[Role.CUSTOMER if ref == "C1" else "other"]

    def accept(self, ref: str) -> None:
        claims.accept_claim(self.session, self.customer(ref), self.ids[ref], self.claim(ref).row_version)

    def dispute(self, ref: str, evidence_files=()) -> None:  # type: ignore[no-untyped-def]
        claims.dispute_claim(self.session, self.customer(ref), self.ids[ref], self.claim(ref).row_version,
                             reason="I held more", corrected={"BTC": "2"}, evidence=evidence_files)

    def staff_move(self, who, action, ref: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        return action(self.session, self.actors[who], self.ids[ref], self.claim(ref).row_version, *args, **kwargs)


@pytest.fixture
def desk(app, accounts, tmp_path):  # type: ignore[no-untyped-def]
    state = app.extensions["payouts"]
    state.config = dataclasses.replace(state.config, four_eyes_threshold_jpy=THRESHOLD,
                                       evidence_dir=str(tmp_path / "evidence"))
    d = Desk(app, accounts)
    yield d
    d.session.close()


def policy():  # type: ignore[no-untyped-def]
    from payouts.domain.claims import FourEyesPolicy

    return FourEyesPolicy(THRESHOLD)


_ROW_VERSION_RE = re.compile(r'name="row_version"[^>]*value="(\d+)"')


def row_version(html: str) -> str:
    match = _ROW_VERSION_RE.search(html)
    assert match, "page has no action form"
    return match.group(1)


def listed(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/staff/claims/(\d+)"', html)}


def post(client, url: str, page_url: str, **data):  # type: ignore[no-untyped-def]
    page = client.get(page_url)
    return client.post(url, data={"csrf_token": csrf_token(page.text), **data})


# --- the queue ------------------------------------------------------------------------------


def test_queue_filters_return_the_right_claims(desk, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    c1, c2 = desk.ids["C1"], desk.ids["C2"]
    queue = lambda **args: listed(client.get("/staff/claims", query_string=args).text)  # noqa: E731

    assert queue() == set()  # nothing accepted or disputed yet
    assert queue(filter="all") == {c1, c2}
    assert queue(filter="above_threshold") == {c2}

    desk.accept("C1")
    desk.dispute("C2")
    assert queue() == {c1, c2}
    assert queue(filter="disputed") == {c2}
    assert queue(filter="all", status="accepted") == {c1}
    assert queue(filter="second_approval") == set()
    assert queue(filter="all", incident="NOPE") == set()

    # C2 adjusted, accepted again and approved once: it waits for the second approval.
    desk.staff_move(Role.STAFF, claims.adjust_claim, "C2", amounts={"BTC": "1.5"}, reason="wallet statement")
    desk.accept("C2")
    desk.staff_move(Role.APPROVER, claims.approve_claim, "C2", policy())
    assert queue(filter="second_approval") == {c2}
    page = client.get("/staff/claims", query_string={"filter": "second_approval"}).text
    assert "Approvals 1 of 2" in page

    assert queue(filter="destination_changed") == set()
    destinations.submit_destination(desk.session, desk.customer("C1"), desk.claim("C1").customer_id,
                                    bank_code="0001", branch_code="123", account_type="ordinary",
                                    account_number="1234567", holder_name="ヤマダ タロウ")
    assert queue(filter="destination_changed") == {c1}


def test_queue_flags_in_english(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get("/staff/claims").text
    assert "Above the threshold" in page and "Approvals 0 of 2" in page
    assert 'data-label="Total"' in page and "JPY 12,500,000" in page


def test_queue_pages_with_a_cursor(desk, client_for, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(claim_queue.review_queue.__kwdefaults__, "limit", 1)
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    first = client.get("/staff/claims?filter=all&incident=INC-1").text
    assert listed(first) == {desk.ids["C1"]} and "First page" not in first
    following = re.search(r'href="(/staff/claims\?[^"]*after=\d+[^"]*)">Next page', first)
    assert following, "no next-page link"
    second = client.get(following.group(1).replace("&amp;", "&")).text
    assert listed(second) == {desk.ids["C2"]}  # the filters are kept on the next page
    assert "Next page" not in second and "First page" in second


def test_unknown_queue_filter_is_refused_not_a_crash(desk, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    assert client.get("/staff/claims?filter=everything").status_code == 422
    assert client.get("/staff/claims?filter=all&status=lost").status_code == 422


# --- approving ------------------------------------------------------------------------------


def test_staff_approves_a_claim_below_the_threshold(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    client = client_for(Role.STAFF)
    url = f"/staff/claims/{desk.ids['C1']}"
    page = client.get(url)
    assert page.status_code == 200 and "¥5,000,000" in page.text
    response = client.post(url + "/approve", data={"csrf_token": csrf_token(page.text),
                                                   "row_version": row_version(page.text)})
    assert response.status_code == 302
    assert desk.claim("C1").status == "approved"
    assert "claim.approved" in client.get(url).text  # the history comes from the audit trail
    assert client.get("/staff/claims/999999").status_code == 404


def test_above_the_threshold_two_people_approve_the_second_an_approver(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    url = f"/staff/claims/{desk.ids['C2']}"
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    page = staff.get(url).text
    assert staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)}
                      ).status_code == 302
    assert desk.claim("C2").status == "under_review"

    page = staff.get(url).text
    assert "You already approved this version" in page
    assert f'action="{url}/approve"' not in page
    again = staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert again.status_code == 403 and "already approved" in again.text
    assert desk.claim("C2").status == "under_review"

    approver = client_for(Role.APPROVER)
    page = approver.get(url).text
    assert approver.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)}
                         ).status_code == 302
    assert desk.claim("C2").status == "approved"


def test_a_non_approver_cannot_give_the_second_approval(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    desk.staff_move(Role.APPROVER, claims.approve_claim, "C2", policy())
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    page = staff.get(f"/staff/claims/{desk.ids['C2']}").text
    assert "must come from an approver" in page
    refused = staff.post(f"/staff/claims/{desk.ids['C2']}/approve",
                         data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert refused.status_code == 403 and "approver" in refused.text
    assert desk.claim("C2").status == "under_review"


def test_approving_an_open_claim_is_explained_and_refused(desk, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    url = f"/staff/claims/{desk.ids['C1']}"
    page = client.get(url).text
    assert "has not accepted this version yet" in page
    response = client.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert response.status_code == 409 and "cannot approve a claim that is open" in response.text
    assert desk.claim("C1").status == "open"


# --- adjusting, rejecting, asking -----------------------------------------------------------


def test_adjusting_makes_a_new_version_voids_approvals_and_the_adjuster_cannot_approve(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    desk.staff_move(Role.APPROVER, claims.approve_claim, "C2", policy())
    url = f"/staff/claims/{desk.ids['C2']}"
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    page = staff.get(url).text
    assert 'name="amount_BTC"' in page and 'value="1.25"' in page  # prefilled with the current amount
    assert 'name="amount_ETH"' not in page  # only the incident's priced assets
    response = staff.post(url + "/adjust", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page),
        "amount_BTC": "1", "adjust_reason": "exchange statement shows 1 BTC"})
    assert response.status_code == 302, response.text
    claim = desk.claim("C2")
    assert (claim.version, claim.status, claim.total_jpy) == (2, "open", 10_000_000)
    page = staff.get(url).text
    assert "voided" in page and "exchange statement shows 1 BTC" in page

    desk.accept("C2")
    page = staff.get(url).text
    assert "You adjusted this version, so someone else must approve it." in page
    refused = staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert refused.status_code == 403 and desk.claim("C2").status == "accepted"

    approver = client_for(Role.APPROVER)
    page = approver.get(url).text
    assert approver.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)}
                         ).status_code == 302
    assert desk.claim("C2").status == "approved"  # ¥10,000,000 is at the threshold: one approval


def test_a_bad_adjustment_is_shown_next_to_its_field(desk, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    url = f"/staff/claims/{desk.ids['C1']}"
    page = client.get(url).text
    response = client.post(url + "/adjust", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page),
        "amount_BTC": "0.123456789", "adjust_reason": "typo"})
    assert response.status_code == 422
    assert 'aria-describedby="amount_BTC-error"' in response.text and 'id="amount_BTC-error"' in response.text
    assert desk.claim("C1").version == 1
    empty = client.post(url + "/adjust", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page), "amount_BTC": "0.5", "adjust_reason": ""})
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text


def test_reject_and_request_information(desk, client_for):  # type: ignore[no-untyped-def]
    desk.dispute("C1")
    client = client_for(Role.STAFF)
    url = f"/staff/claims/{desk.ids['C1']}"
    page = client.get(url).text
    assert "I held more" in page and "2 BTC" in page  # the dispute and its corrected amounts
    asked = client.post(url + "/request-information", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page), "question": "Send a statement"})
    assert asked.status_code == 302
    claim = desk.claim("C1")
    assert claim.status == "needs_information" and claim.status_reason == "Send a statement"
    page = client.get(url).text
    rejected = client.post(url + "/reject", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page), "reason": "No loss shown"})
    assert rejected.status_code == 302 and desk.claim("C1").status == "rejected"
    page = client.get(url).text
    assert f'action="{url}/reject"' not in page and f'action="{url}/adjust"' not in page


def test_someone_else_acting_first_shows_the_claim_as_it_is_now(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    url = f"/staff/claims/{desk.ids['C1']}"
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    page = staff.get(url).text
    seen = row_version(page)
    desk.staff_move(Role.APPROVER, claims.reject_claim, "C1", "duplicate account")  # meanwhile
    response = staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": seen})
    assert response.status_code == 409
    assert "This claim was changed by someone else; here it is as it is now." in response.text
    assert "Rejected" in response.text and "duplicate account" in response.text
    assert desk.claim("C1").status == "rejected"


def test_a_form_without_its_version_is_a_bad_request(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    client = client_for(Role.STAFF)
    url = f"/staff/claims/{desk.ids['C1']}"
    response = post(client, url + "/approve", url, row_version="x")
    assert response.status_code == 400 and desk.claim("C1").status == "accepted"


# --- bulk approval --------------------------------------------------------------------------


def test_bulk_approve_approves_only_accepted_unadjusted_undisputed_claims_at_or_below_the_threshold(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    desk.accept("C2")  # above the threshold: stays for two people
    client = client_for(Role.APPROVER)
    client.get("/lang/en")
    page = client.get("/staff/claims").text
    assert "was never disputed" in page and 'action="/staff/incidents/INC-1/claims/bulk-approve"' in page
    response = client.post("/staff/incidents/INC-1/claims/bulk-approve", data={"csrf_token": csrf_token(page)},
                           follow_redirects=True)
    assert response.status_code == 200 and "1 claim of INC-1 approved." in response.text
    assert desk.claim("C1").status == "approved" and desk.claim("C2").status == "accepted"


def test_who_set_the_incidents_prices_is_told_why_they_cannot_approve_and_offered_no_bulk_approval(desk, client_for):  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from payouts.db.models import ReferencePrice

    desk.accept("C1")
    desk.session.execute(update(ReferencePrice).values(set_by_id=desk.actors[Role.APPROVER].user_id))
    desk.session.commit()
    client = client_for(Role.APPROVER)
    client.get("/lang/en")
    page = client.get(f"/staff/claims/{desk.ids['C1']}").text
    assert "or set its reference prices, so someone else must approve" in page
    assert 'action="/staff/incidents/INC-1/claims/bulk-approve"' not in client.get("/staff/claims").text
    # Someone else still may.
    other = client_for(Role.STAFF)
    other.get("/lang/en")
    assert "set its reference prices" not in other.get(f"/staff/claims/{desk.ids['C1']}").text
    assert 'action="/staff/incidents/INC-1/claims/bulk-approve"' in other.get("/staff/claims").text


def test_bulk_approve_leaves_adjusted_and_disputed_claims(desk, client_for, app):  # type: ignore[no-untyped-def]
    state = app.extensions["payouts"]
    state.config = dataclasses.replace(state.config, four_eyes_threshold_jpy=50_000_000)  # both below
    desk.dispute("C1")
    desk.staff_move(Role.STAFF, claims.request_information, "C1", "statement please")
    desk.accept("C1")  # accepted, but it was disputed
    desk.staff_move(Role.STAFF, claims.adjust_claim, "C2", amounts={"BTC": "1.2"}, reason="fee")
    desk.accept("C2")  # accepted, but adjusted
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    response = post(client, "/staff/incidents/INC-1/claims/bulk-approve", "/staff/claims")
    assert response.status_code == 302
    assert "0 claims of INC-1 approved." in client.get(response.headers["Location"]).text
    assert desk.claim("C1").status == "accepted" and desk.claim("C2").status == "accepted"


# --- opening claims from the incident page --------------------------------------------------


def test_open_claims_from_the_incident_page(accounts, client_for):  # type: ignore[no-untyped-def]
    regulator = client_for(Role.REGULATOR)
    assert 'action="/staff/incidents/INC-1/claims/open"' not in regulator.get("/staff/incidents/INC-1").text
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get("/staff/incidents/INC-1").text
    assert "Open claims to customers" in page
    response = client.post("/staff/incidents/INC-1/claims/open", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert "2 claims opened to customers." in client.get(response.headers["Location"]).text
    page = client.get("/staff/incidents/INC-1").text
    assert "Claims by state" in page and "Open claims to customers" not in page
    assert re.search(r"Open: waiting for the customer</a></td>\s*<td[^>]*>2<", page)
    again = client.post("/staff/incidents/INC-1/claims/open", data={"csrf_token": csrf_token(page)},
                        follow_redirects=True)
    assert "already has its claims open" in again.text


# --- evidence -------------------------------------------------------------------------------


def test_evidence_is_downloaded_as_an_attachment(desk, client_for, app):  # type: ignore[no-untyped-def]
    directory = app.extensions["payouts"].config.evidence_dir
    stored = evidence.store(directory, "statement.png", io.BytesIO(PNG))
    desk.dispute("C2", [stored])
    client = client_for(Role.STAFF)
    page = client.get(f"/staff/claims/{desk.ids['C2']}").text
    link = re.search(r'href="(/staff/evidence/\d+)"', page)
    assert link and "statement.png" in page
    for role in (Role.STAFF, Role.REGULATOR):
        response = client_for(role).get(link.group(1))
        assert response.status_code == 200 and response.data == PNG
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert "statement.png" in response.headers["Content-Disposition"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == "image/png"
    assert client_for(Role.CUSTOMER).get(link.group(1)).status_code == 403
    assert client.get("/staff/evidence/999999").status_code == 404


# --- who may do what ------------------------------------------------------------------------


def _claim_posts(desk):  # type: ignore[no-untyped-def]
    c = desk.ids["C1"]
    return [f"/staff/claims/{c}/approve", f"/staff/claims/{c}/reject", f"/staff/claims/{c}/request-information",
            f"/staff/claims/{c}/adjust", "/staff/incidents/INC-1/claims/bulk-approve",
            "/staff/incidents/INC-1/claims/open", "/staff/destinations/1/approve", "/staff/destinations/1/reject",
            "/staff/customers/C1/destination"]


def test_regulator_reads_the_queue_and_a_claim_with_no_forms(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    desk.dispute("C2")
    client = client_for(Role.REGULATOR)
    queue = client.get("/staff/claims")
    assert queue.status_code == 200 and listed(queue.text) == {desk.ids["C1"], desk.ids["C2"]}
    assert "bulk-approve" not in queue.text
    for ref in ("C1", "C2"):
        page = client.get(f"/staff/claims/{desk.ids[ref]}")
        assert page.status_code == 200
        assert 'name="row_version"' not in page.text
        assert page.text.count('method="post"') == 1  # only the log-out button
    assert client.get("/staff/destinations").status_code == 200
    token = csrf_token(queue.text)
    for url in _claim_posts(desk):
        assert client.post(url, data={"csrf_token": token, "row_version": "1", "reason": "x"}).status_code == 403, url
    assert client.get("/staff/customers/C1/destination").status_code == 403
    assert desk.claim("C1").status == "accepted"


def test_admin_reads_but_does_not_act_on_claims(desk, client_for):  # type: ignore[no-untyped-def]
    desk.accept("C1")
    client = client_for(Role.ADMIN)
    page = client.get(f"/staff/claims/{desk.ids['C1']}")
    assert page.status_code == 200 and 'name="row_version"' not in page.text
    response = client.post(f"/staff/claims/{desk.ids['C1']}/approve",
                           data={"csrf_token": csrf_token(page.text), "row_version": "2"})
    assert response.status_code == 403


def test_customers_get_403_on_staff_claim_pages(desk, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.CUSTOMER)
    for url in ("/staff/claims", f"/staff/claims/{desk.ids['C1']}", "/staff/destinations",
                "/staff/destinations/1", "/staff/evidence/1", "/staff/customers/C1/destination"):
        assert client.get(url).status_code == 403, url


# --- payout destinations --------------------------------------------------------------------


def _customer_proposes(desk, ref: str = "C1"):  # type: ignore[no-untyped-def]
    return destinations.submit_destination(desk.session, desk.customer(ref), desk.claim(ref).customer_id,
                                           bank_code="0001", branch_code="123", account_type="ordinary",
                                           account_number="1234567", holder_name="ヤマダ タロウ")


def test_pending_destinations_are_listed_masked_and_approved(desk, client_for):  # type: ignore[no-untyped-def]
    destination = _customer_proposes(desk)
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    listing = client.get("/staff/destinations").text
    assert "C1" in listing and "****567" in listing and "1234567" not in listing
    assert "0 of 1" in listing and "customer@test" in listing
    url = f"/staff/destinations/{destination.id}"
    page = client.get(url).text
    assert "1234567" in page  # the reviewer checks the whole number
    assert "1234567" not in client_for(Role.REGULATOR).get(url).text
    response = client.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert response.status_code == 302
    assert "Approved" in client.get(url).text
    assert "No payout account is waiting for approval." in client.get("/staff/destinations").text


def test_staff_enter_an_account_that_two_other_people_must_approve(desk, client_for):  # type: ignore[no-untyped-def]
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    form = staff.get("/staff/customers/C2/destination")
    assert form.status_code == 200 and 'for="bank_code"' in form.text
    bad = staff.post("/staff/customers/C2/destination", data={
        "csrf_token": csrf_token(form.text), "bank_code": "12", "branch_code": "001", "account_type": "ordinary",
        "account_number": "7654321", "holder_name": "スズキ ハナコ"})
    assert bad.status_code == 422 and 'id="bank_code-error"' in bad.text and "4 digits" in bad.text
    entered = staff.post("/staff/customers/C2/destination", data={
        "csrf_token": csrf_token(form.text), "bank_code": "0005", "branch_code": "001", "account_type": "ordinary",
        "account_number": "7654321", "holder_name": "スズキ ハナコ"})
    assert entered.status_code == 302
    url = entered.headers["Location"]
    page = staff.get(url).text
    assert "You entered this account, so other people must approve it." in page and "0 of 2" in page
    refused = staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert refused.status_code == 403

    approver = client_for(Role.APPROVER)
    approver.get("/lang/en")
    page = approver.get(url).text
    assert approver.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)}
                         ).status_code == 302
    page = approver.get(url).text
    assert "1 of 2" in page and "Waiting for approval" in page
    assert "You already approved this account" in page
    rejected = approver.post(url + "/reject", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page), "reason": "holder name differs"})
    assert rejected.status_code == 302
    assert "holder name differs" in approver.get(url).text


def test_a_destination_changed_meanwhile_is_shown_as_it_is_now(desk, client_for):  # type: ignore[no-untyped-def]
    destination = _customer_proposes(desk)
    url = f"/staff/destinations/{destination.id}"
    staff = client_for(Role.STAFF)
    staff.get("/lang/en")
    page = staff.get(url).text
    destinations.reject_destination(desk.session, desk.actors[Role.APPROVER], destination.id,
                                    destination.row_version, "wrong bank")
    response = staff.post(url + "/approve", data={"csrf_token": csrf_token(page), "row_version": row_version(page)})
    assert response.status_code == 409
    assert "This payout account was changed by someone else; here it is as it is now." in response.text
    assert "wrong bank" in response.text


def test_entering_an_account_for_an_unknown_customer_is_404(desk, client_for):  # type: ignore[no-untyped-def]
    assert client_for(Role.STAFF).get("/staff/customers/NOPE/destination").status_code == 404


def test_an_adjustment_that_only_adds_zeros_changes_nothing(app, accounts, client_for):  # type: ignore[no-untyped-def]
    from payouts.services import incidents

    session = app.extensions["payouts"].session_factory()
    incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="ETH", price="500000",
                                  source="test VWAP")
    claims.open_claims(session, STAFF, "INC-1")
    session.close()
    client = client_for(Role.STAFF)
    client.get("/lang/en")
    page = client.get("/staff/claims/1").text
    assert 'name="amount_ETH"' in page and 'name="amount_BTC"' in page  # every priced asset of the incident
    response = client.post("/staff/claims/1/adjust", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page),
        "amount_BTC": "0.5", "amount_ETH": "0", "adjust_reason": "no change really"})
    assert response.status_code == 422 and "changes nothing" in response.text
    added = client.post("/staff/claims/1/adjust", data={
        "csrf_token": csrf_token(page), "row_version": row_version(page),
        "amount_BTC": "0.5", "amount_ETH": "2", "adjust_reason": "ETH was missed"})
    assert added.status_code == 302
    page = client.get("/staff/claims/1").text
    assert "2 ETH" in page and "JPY 6,000,000" in page
