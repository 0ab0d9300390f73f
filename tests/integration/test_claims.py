"""Claims over the records: opening, the customer's moves, staff review with four eyes,
adjustments, bulk approval, the audit trail of every move, and two staff racing on one claim
(PostgreSQL).

Desk (below) is shared with the destination, activation and evidence tests.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from payouts.db.models import (
    AuditEvent,
    Claim,
    ClaimApproval,
    ClaimDispute,
    ClaimPosition,
    ClaimVersion,
    Customer,
    Incident,
    Notice,
    User,
)
from payouts.db.session import make_session_factory
from payouts.domain.claims import FourEyesPolicy
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, TransitionError, ValidationError
from payouts.domain.roles import SYSTEM_ACTOR, Actor, Role
from payouts.services import allocation, audit_trail, claim_queue, claims, incidents
from payouts.services.loss_import import import_losses
from payouts.services.users import create_user
from tests.conftest import REGULATOR, STAFF

T = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
THRESHOLD = 1_000_000
POLICY = FourEyesPolicy(THRESHOLD)
PASSWORD = "correct horse battery staple"
REF = "INC-C"

PRICES = {"BTC": "10000000.5", "ETH": "500000.5", "JPY": "1"}
LEDGER = (
    "customer_ref,asset,amount,name\n"
    "C1,BTC,0.12345678,Aoki\n"
    "C1,ETH,1.000000000000000001,Aoki\n"  # 18 decimals
    "C2,JPY,500000,Baba\n"
    "C3,JPY,1000000,Chiba\n"  # exactly the threshold: one approval
    "C4,JPY,250000,Doi\n"
    "C5,BTC,0.01,Endo\n"
    "C6,JPY,1000001,Fujii\n"  # one yen above: two approvals
)


def exact_total(positions: dict[str, str]) -> int:
    """floor(sum of amount * price), computed independently of the code under test."""
    return int(sum(Fraction(amount) * Fraction(PRICES[asset]) for asset, amount in positions.items()) // 1)


EXPECTED_TOTALS = {
    "C1": exact_total({"BTC": "0.12345678", "ETH": "1.000000000000000001"}),
    "C2": 500_000, "C3": 1_000_000, "C4": 250_000,
    "C5": exact_total({"BTC": "0.01"}),
    "C6": 1_000_001,
}


def record_case(session, ref: str = REF, ledger: str = LEDGER, prices: dict[str, str] | None = None, *,
                importer: Actor = STAFF, pricer: Actor = STAFF) -> None:
    """An incident with prices and an imported ledger, claims not yet open."""
    incidents.record_incident(session, STAFF, ref=ref, title="Hot wallet", incident_type="hack",
                              occurred_at=T, discovered_at=T)
    for asset, price in (PRICES if prices is None else prices).items():
        incidents.set_reference_price(session, pricer, incident_ref=ref, asset_code=asset, price=price,
                                      source="exchange close")
    report = import_losses(session, importer, ref, io.BytesIO(ledger.encode()), f"{ref}.csv")
    assert report.status == "imported", report.problems


def make_user(session, username: str, role: Role, customer_ref: str | None = None,
              password: str | None = PASSWORD) -> Actor:
    user = create_user(session, SYSTEM_ACTOR, username=username, display_name=username.title(), role=role,
                       password=password, customer_ref=customer_ref)
    return Actor(user.username, role, user.id)


class Desk:
    """One incident with open claims, four reviewers and the customers' logins."""

    def __init__(self, session, ref: str = REF, ledger: str = LEDGER, *, importer: Actor = STAFF,
                 pricer: Actor = STAFF) -> None:
        self.session = session
        self.ref = ref
        record_case(session, ref, ledger, importer=importer, pricer=pricer)
        self.staff1 = make_user(session, "staff1", Role.STAFF)
        self.staff2 = make_user(session, "staff2", Role.STAFF)
        self.approver1 = make_user(session, "approver1", Role.APPROVER)
        self.approver2 = make_user(session, "approver2", Role.APPROVER)
        self.opened = claims.open_claims(session, STAFF, ref)
        incident = session.scalar(select(Incident).where(Incident.ref == ref))
        self.ids = {ref_: cid for ref_, cid in session.execute(
            select(Customer.external_ref, Claim.id).join(Claim, Claim.customer_id == Customer.id)
            .where(Claim.incident_id == incident.id))}

    def claim(self, ref: str) -> Claim:
        """The claim as the database holds it now."""
        return self.session.get(Claim, self.ids[ref], populate_existing=True)

    def rv(self, ref: str) -> int:
        return self.claim(ref).row_version

    def customer(self, ref: str) -> Actor:
        user = self.session.scalar(select(User).join(Customer, Customer.id == User.customer_id)
                                   .where(Customer.external_ref == ref))
        return Actor(user.username, Role.CUSTOMER, user.id)

    # the moves, each with the row version read just before
    def accept(self, ref: str) -> Claim:
        return claims.accept_claim(self.session, self.customer(ref), self.ids[ref], self.rv(ref))

    def dispute(self, ref: str, reason: str = "I had more", corrected: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return claims.dispute_claim(self.session, self.customer(ref), self.ids[ref], self.rv(ref), reason=reason,
                                    corrected=corrected or {})

    def approve(self, actor: Actor, ref: str) -> Claim:
        return claims.approve_claim(self.session, actor, self.ids[ref], self.rv(ref), POLICY)

    def adjust(self, actor: Actor, ref: str, amounts: dict[str, str], reason: str = "statement") -> Claim:
        return claims.adjust_claim(self.session, actor, self.ids[ref], self.rv(ref), amounts=amounts, reason=reason)

    def request_information(self, actor: Actor, ref: str, question: str = "Which wallet?") -> Claim:
        return claims.request_information(self.session, actor, self.ids[ref], self.rv(ref), question)

    def reject(self, actor: Actor, ref: str, reason: str = "duplicate") -> Claim:
        return claims.reject_claim(self.session, actor, self.ids[ref], self.rv(ref), reason)

    def approvals(self, ref: str, *, active: bool = True) -> list[ClaimApproval]:
        query = select(ClaimApproval).where(ClaimApproval.claim_id == self.ids[ref]).order_by(ClaimApproval.id)
        if active:
            query = query.where(ClaimApproval.voided_at.is_(None))
        return list(self.session.scalars(query.execution_options(populate_existing=True)))

    def notices(self, ref: str) -> list[Notice]:
        return list(self.session.scalars(select(Notice).where(Notice.claim_id == self.ids[ref]).order_by(Notice.id)))


@pytest.fixture
def desk(session) -> Desk:  # type: ignore[no-untyped-def]
    return Desk(session)


def audit_count(session) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(AuditEvent))


def events_since(session, count: int) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(AuditEvent).where(AuditEvent.seq > count).order_by(AuditEvent.seq)))


class Moved:
    """Asserts that the block wrote exactly one audit event for the claim, with the status move."""

    def __init__(self, desk: Desk, ref: str, action: str, before: str, after: str) -> None:
        self.desk, self.ref, self.action, self.status = desk, ref, action, [before, after]

    def __enter__(self) -> Moved:
        self.count = audit_count(self.desk.session)
        assert self.desk.claim(self.ref).status == self.status[0]
        return self

    def __exit__(self, exc_type, *_args) -> None:  # type: ignore[no-untyped-def]
        if exc_type is not None:
            return
        events = events_since(self.desk.session, self.count)
        assert [(e.action, e.subject_type, e.subject_id) for e in events] == [
            (self.action, "claim", str(self.desk.ids[self.ref]))]
        self.event = events[0]
        self.details = json.loads(events[0].details)
        assert self.details["status"] == self.status
        assert self.desk.claim(self.ref).status == self.status[1]


class Refused:
    """Asserts the block raised ``error`` and changed nothing: no audit event, same row version."""

    def __init__(self, desk: Desk, ref: str, error: type[Exception], match: str | None = None) -> None:
        self.desk, self.ref, self.error, self.match = desk, ref, error, match

    def __enter__(self) -> Refused:
        self.count = audit_count(self.desk.session)
        self.row_version = self.desk.rv(self.ref)
        self.status = self.desk.claim(self.ref).status
        self.raises = pytest.raises(self.error, match=self.match)
        self.info = self.raises.__enter__()
        return self

    def __exit__(self, *exc) -> bool:  # type: ignore[no-untyped-def]
        handled = self.raises.__exit__(*exc)
        self.desk.session.rollback()
        assert audit_count(self.desk.session) == self.count
        assert self.desk.rv(self.ref) == self.row_version
        assert self.desk.claim(self.ref).status == self.status
        return bool(handled)


# --- opening --------------------------------------------------------------------------------


def test_open_claims_values_every_customer_once_and_rounds_down_once(session):  # type: ignore[no-untyped-def]
    record_case(session)
    before = audit_count(session)
    assert claims.open_claims(session, STAFF, REF) == 6
    rows = dict(session.execute(select(Customer.external_ref, Claim.total_jpy)
                                .join(Claim, Claim.customer_id == Customer.id)).all())
    assert rows == EXPECTED_TOTALS
    # The exact sum floored once: not the floors of the lines, not rounded lines.
    assert EXPECTED_TOTALS["C1"] == 1_734_568
    assert 1_234_567 + 500_000 != EXPECTED_TOTALS["C1"]
    c1 = session.scalar(select(Claim).join(Customer).where(Customer.external_ref == "C1"))
    assert (c1.status, c1.version, c1.row_version, c1.changed_by_id) == ("open", 1, 1, None)
    lines = claims.claim_lines(session, c1)
    assert [(line.asset, line.amount, line.value_exact) for line in lines] == [
        ("BTC", "0.12345678", "1234567.86172839"),
        ("ETH", "1.000000000000000001", "500000.5000000000005000005"),
    ]
    incident = session.scalar(select(Incident).where(Incident.ref == REF))
    assert incident.status == "claims_open"
    # One customer login per customer, without a password, named after the reference.
    logins = session.execute(select(User.username, User.role, User.password_hash, Customer.external_ref)
                             .join(Customer, Customer.id == User.customer_id).order_by(User.username)).all()
    assert logins == [(ref.lower(), "customer", None, ref) for ref in sorted(EXPECTED_TOTALS)]
    events = events_since(session, before)
    assert [e.action for e in events] == ["incident.claims_opened"]
    assert json.loads(events[0].details) == {"status": ["recorded", "claims_open"], "claims": 6,
                                             "customer_logins_created": 6}


def test_open_claims_in_batches_keeps_every_customer(session, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(claims, "_OPEN_BATCH", 2)
    record_case(session)
    assert claims.open_claims(session, STAFF, REF) == 6
    rows = dict(session.execute(select(Customer.external_ref, Claim.total_jpy)
                                .join(Claim, Claim.customer_id == Customer.id)).all())
    assert rows == EXPECTED_TOTALS


def test_customers_with_a_login_keep_it(session):  # type: ignore[no-untyped-def]
    record_case(session)
    existing = make_user(session, "c2-own", Role.CUSTOMER, customer_ref="C2")
    claims.open_claims(session, STAFF, REF)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "incident.claims_opened"))
    assert json.loads(event.details)["customer_logins_created"] == 5
    c2_logins = session.scalars(select(User.id).join(Customer, Customer.id == User.customer_id)
                                .where(Customer.external_ref == "C2")).all()
    assert c2_logins == [existing.user_id]


def test_a_staff_username_equal_to_a_customer_reference_is_refused(session):  # type: ignore[no-untyped-def]
    record_case(session)
    make_user(session, "c4", Role.STAFF)
    with pytest.raises(ConflictError, match="clash with existing usernames"):
        claims.open_claims(session, STAFF, REF)
    assert session.scalar(select(func.count()).select_from(Claim)) == 0
    assert session.scalar(select(Incident.status).where(Incident.ref == REF)) == "recorded"


def test_references_differing_only_in_case_are_refused_with_a_clear_error(session):  # type: ignore[no-untyped-def]
    record_case(session, ledger="customer_ref,asset,amount\nAB1,JPY,10\nab1,JPY,20\n")
    with pytest.raises(ConflictError, match="differ only in upper and lower case"):
        claims.open_claims(session, STAFF, REF)
    assert session.scalar(select(func.count()).select_from(User).where(User.role == "customer")) == 0


def test_second_open_is_refused(desk):  # type: ignore[no-untyped-def]
    before = audit_count(desk.session)
    with pytest.raises(ConflictError, match="already has its claims open"):
        claims.open_claims(desk.session, STAFF, REF)
    assert audit_count(desk.session) == before
    assert desk.session.scalar(select(func.count()).select_from(Claim)) == 6


def test_missing_price_is_refused_naming_the_asset(session):  # type: ignore[no-untyped-def]
    record_case(session, prices={"BTC": "10000000.5", "JPY": "1"})  # no ETH price
    before = audit_count(session)
    with pytest.raises(ValidationError, match="no reference price fixed for ETH") as error:
        claims.open_claims(session, STAFF, REF)
    assert error.value.field == "prices"
    assert audit_count(session) == before
    assert session.scalar(select(func.count()).select_from(Claim)) == 0
    assert session.scalar(select(func.count()).select_from(User)) == 0
    assert session.scalar(select(Incident.status).where(Incident.ref == REF)) == "recorded"


def test_open_claims_needs_losses_and_a_writer(session):  # type: ignore[no-untyped-def]
    incidents.record_incident(session, STAFF, ref="EMPTY", title="t", incident_type="hack",
                              occurred_at=T, discovered_at=T)
    with pytest.raises(ValidationError, match="no imported losses"):
        claims.open_claims(session, STAFF, "EMPTY")
    with pytest.raises(PermissionDenied):
        claims.open_claims(session, REGULATOR, "EMPTY")
    with pytest.raises(NotFoundError):
        claims.open_claims(session, STAFF, "NOPE")


def test_imports_and_prices_are_frozen_once_claims_are_open(desk):  # type: ignore[no-untyped-def]
    with pytest.raises(ConflictError, match="losses can no longer change"):
        import_losses(desk.session, STAFF, REF, io.BytesIO(b"customer_ref,asset,amount\nC9,JPY,1\n"), "late.csv")
    with pytest.raises(ConflictError, match="reference prices can no longer change"):
        incidents.set_reference_price(desk.session, STAFF, incident_ref=REF, asset_code="BTC", price="1",
                                      source="typo fix")
    assert desk.claim("C1").total_jpy == EXPECTED_TOTALS["C1"]


# --- reading --------------------------------------------------------------------------------


def test_customers_see_only_their_own_claims(desk):  # type: ignore[no-untyped-def]
    c1 = desk.customer("C1")
    assert [c.id for c in claims.my_claims(desk.session, c1)] == [desk.ids["C1"]]
    detail = claims.my_claim(desk.session, c1, desk.ids["C1"], POLICY)
    assert (detail.total_jpy, detail.approvals_required) == (EXPECTED_TOTALS["C1"], 2)
    with pytest.raises(NotFoundError):
        claims.my_claim(desk.session, c1, desk.ids["C2"], POLICY)
    with pytest.raises(PermissionDenied):
        claims.my_claims(desk.session, desk.staff1)
    assert claims.claim_for_staff(desk.session, REGULATOR, desk.ids["C3"], POLICY).approvals_required == 1
    with pytest.raises(PermissionDenied):
        claims.claim_for_staff(desk.session, c1, desk.ids["C1"], POLICY)


# --- the customer's moves -------------------------------------------------------------------


def test_customer_accepts(desk):  # type: ignore[no-untyped-def]
    with Moved(desk, "C2", "claim.accepted", "open", "accepted") as moved:
        desk.accept("C2")
    claim = desk.claim("C2")
    assert claim.row_version == 2 and claim.accepted_at is not None
    assert moved.event.actor_user_id == desk.customer("C2").user_id
    assert moved.details["total_jpy"] == 500_000 and moved.details["version"] == 1


def test_customer_disputes_with_corrected_amounts(desk):  # type: ignore[no-untyped-def]
    with Moved(desk, "C1", "claim.disputed", "open", "disputed") as moved:
        dispute = desk.dispute("C1", "  My ETH was 1.5  ", {"ETH": "1.50", "BTC": " 0.2 ", "JPY": ""})
    assert (dispute.reason, dispute.version, dispute.created_by_id) == (
        "My ETH was 1.5", 1, desk.customer("C1").user_id)
    assert json.loads(dispute.corrected) == {"BTC": "0.2", "ETH": "1.5"}
    assert moved.details["corrected"] == {"BTC": "0.2", "ETH": "1.5"}
    assert moved.details["reason"] == "My ETH was 1.5"


def test_an_accepted_claim_can_still_be_disputed(desk):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    with Moved(desk, "C2", "claim.disputed", "accepted", "disputed"):
        desk.dispute("C2")


@pytest.mark.parametrize(("corrected", "field", "message"), [
    ({"BTC": "0.123456789"}, "corrected.BTC", "9 decimal places; this asset allows 8"),
    ({"ETH": "1.0000000000000000001"}, "corrected.ETH", "allows 18"),
    ({"JPY": "100.5"}, "corrected.JPY", "allows 0"),
    ({"BTC": "-1"}, "corrected.BTC", "must not be negative"),
    ({"XYZ": "1"}, "corrected.XYZ", "unknown asset 'XYZ'"),
    ({"BTC": "1e3"}, "corrected.BTC", "not a plain decimal"),
])
def test_dispute_amounts_are_checked_against_the_asset(desk, corrected, field, message):  # type: ignore[no-untyped-def]
    with Refused(desk, "C1", ValidationError, message) as refused:
        desk.dispute("C1", corrected=corrected)
    assert refused.info.value.field == field
    assert desk.session.scalar(select(func.count()).select_from(ClaimDispute)) == 0


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_dispute_needs_a_reason(desk, reason):  # type: ignore[no-untyped-def]
    with Refused(desk, "C1", ValidationError) as refused:
        desk.dispute("C1", reason=reason)
    assert refused.info.value.field == "reason"


def test_customer_withdraws_and_then_nothing_moves(desk):  # type: ignore[no-untyped-def]
    with Moved(desk, "C4", "claim.withdrawn", "open", "withdrawn"):
        claims.withdraw_claim(desk.session, desk.customer("C4"), desk.ids["C4"], desk.rv("C4"))
    with Refused(desk, "C4", TransitionError, "cannot accept a claim that is withdrawn"):
        desk.accept("C4")
    with Refused(desk, "C4", TransitionError, "cannot dispute a claim that is withdrawn"):
        desk.dispute("C4")
    with Refused(desk, "C4", TransitionError, "cannot approve a claim that is withdrawn"):
        desk.approve(desk.staff1, "C4")


def test_a_customer_cannot_act_on_another_customers_claim(desk):  # type: ignore[no-untyped-def]
    intruder, target, rv = desk.customer("C1"), desk.ids["C2"], desk.rv("C2")
    with Refused(desk, "C2", NotFoundError):
        claims.accept_claim(desk.session, intruder, target, rv)
    with Refused(desk, "C2", NotFoundError):
        claims.dispute_claim(desk.session, intruder, target, rv, reason="mine", corrected={})
    with Refused(desk, "C2", NotFoundError):
        claims.withdraw_claim(desk.session, intruder, target, rv)


def test_staff_cannot_make_the_customers_moves(desk):  # type: ignore[no-untyped-def]
    for actor in (desk.staff1, desk.approver1, REGULATOR, SYSTEM_ACTOR):
        with Refused(desk, "C2", PermissionDenied, "only the customer"):
            claims.accept_claim(desk.session, actor, desk.ids["C2"], desk.rv("C2"))
        with Refused(desk, "C2", PermissionDenied):
            claims.withdraw_claim(desk.session, actor, desk.ids["C2"], desk.rv("C2"))


def test_a_stale_row_version_is_a_conflict(desk):  # type: ignore[no-untyped-def]
    seen = desk.rv("C2")
    desk.accept("C2")
    with Refused(desk, "C2", ConflictError, "changed by someone else"):
        claims.dispute_claim(desk.session, desk.customer("C2"), desk.ids["C2"], seen, reason="r", corrected={})
    with Refused(desk, "C2", ConflictError, "changed by someone else"):
        claims.approve_claim(desk.session, desk.staff1, desk.ids["C2"], seen, POLICY)
    with Refused(desk, "C2", ConflictError, "changed by someone else"):
        claims.adjust_claim(desk.session, desk.staff1, desk.ids["C2"], seen, amounts={"JPY": "1"}, reason="r")


# --- staff moves ----------------------------------------------------------------------------


def test_approve_below_the_threshold_takes_one_approval(desk):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    with Moved(desk, "C2", "claim.approved", "accepted", "approved") as moved:
        desk.approve(desk.staff1, "C2")
    assert moved.event.actor_user_id == desk.staff1.user_id
    assert moved.details["approvals_required"] == 1
    approvals = desk.approvals("C2")
    assert [(a.user_id, a.version, a.role) for a in approvals] == [(desk.staff1.user_id, 1, "staff")]
    assert desk.claim("C2").decided_at is not None
    assert [(n.kind, json.loads(n.params)) for n in desk.notices("C2")] == [("claim.approved", {"total_jpy": 500_000})]
    # Approved: nobody approves again.
    with Refused(desk, "C2", TransitionError, "cannot approve a claim that is approved"):
        desk.approve(desk.approver1, "C2")


def test_exactly_the_threshold_takes_one_approval(desk):  # type: ignore[no-untyped-def]
    desk.accept("C3")
    with Moved(desk, "C3", "claim.approved", "accepted", "approved"):
        desk.approve(desk.staff1, "C3")


def test_above_the_threshold_takes_two_people_the_second_an_approver(desk):  # type: ignore[no-untyped-def]
    desk.accept("C6")
    with Moved(desk, "C6", "claim.approved", "accepted", "under_review") as moved:
        desk.approve(desk.staff1, "C6")
    assert "first of two" in moved.event.summary and moved.details["approvals_required"] == 2
    assert desk.claim("C6").decided_at is None
    assert desk.notices("C6") == []
    with Refused(desk, "C6", PermissionDenied, "already approved"):
        desk.approve(desk.staff1, "C6")
    with Refused(desk, "C6", PermissionDenied, "second approval must come from an approver"):
        desk.approve(desk.staff2, "C6")
    with Moved(desk, "C6", "claim.approved", "under_review", "approved"):
        desk.approve(desk.approver1, "C6")
    assert [a.user_id for a in desk.approvals("C6")] == [desk.staff1.user_id, desk.approver1.user_id]
    assert [n.kind for n in desk.notices("C6")] == ["claim.approved"]
    with Refused(desk, "C6", TransitionError, "approved"):
        desk.approve(desk.approver2, "C6")
    assert len(desk.approvals("C6")) == 2


def test_whoever_made_the_ledger_figures_may_not_approve_the_claims_computed_from_them(session):  # type: ignore[no-untyped-def]
    importer = make_user(session, "importer", Role.STAFF)
    pricer = make_user(session, "pricer", Role.APPROVER)
    desk = Desk(session, importer=importer, pricer=pricer)
    for ref in ("C2", "C3", "C6"):
        desk.accept(ref)
    for maker in (importer, pricer):
        with Refused(desk, "C2", PermissionDenied, "imported this incident's losses or set its reference prices"):
            desk.approve(maker, "C2")
        with Refused(desk, "C6", PermissionDenied, "imported this incident's losses"):
            desk.approve(maker, "C6")
        with Refused(desk, "C3", PermissionDenied, "imported this incident's losses"):
            claims.bulk_approve(session, maker, REF, POLICY)
    # Anyone else approves as before: one person at the threshold, two above it.
    assert claims.bulk_approve(session, desk.staff1, REF, POLICY) == 2  # C2 and C3
    desk.approve(desk.staff1, "C6")
    assert desk.approve(desk.approver1, "C6").status == "approved"
    # An adjusted version's figures are its adjuster's: the importer may approve those.
    desk.accept("C4")
    desk.adjust(desk.staff2, "C4", {"JPY": "249999"})
    desk.accept("C4")
    assert desk.approve(importer, "C4").status == "approved"


def test_whoever_queued_an_import_job_may_not_approve_the_claims_computed_from_it(session, tmp_path):  # type: ignore[no-untyped-def]
    from payouts.services import import_jobs

    importer = make_user(session, "importer", Role.STAFF)
    approver = make_user(session, "approver", Role.APPROVER)
    incidents.record_incident(session, STAFF, ref=REF, title="Hot wallet", incident_type="hack",
                              occurred_at=T, discovered_at=T)
    for asset, price in PRICES.items():
        incidents.set_reference_price(session, STAFF, incident_ref=REF, asset_code=asset, price=price, source="close")
    job = import_jobs.queue_import(session, importer, REF, io.BytesIO(LEDGER.encode()), "big.csv", tmp_path)
    assert import_jobs.run_import(session, job.id, tmp_path).outcome == "imported"
    claims.open_claims(session, STAFF, REF)
    claim_id = session.scalar(select(Claim.id).join(Customer, Customer.id == Claim.customer_id)
                              .where(Customer.external_ref == "C2"))
    customer = session.scalar(select(User).join(Customer, Customer.id == User.customer_id)
                              .where(Customer.external_ref == "C2"))
    accepted = claims.accept_claim(session, Actor(customer.username, Role.CUSTOMER, customer.id), claim_id, 1)
    with pytest.raises(PermissionDenied, match="imported this incident's losses"):
        claims.approve_claim(session, importer, claim_id, accepted.row_version, POLICY)
    session.rollback()
    with pytest.raises(PermissionDenied, match="imported this incident's losses"):
        claims.bulk_approve(session, importer, REF, POLICY)
    session.rollback()
    assert claims.approve_claim(session, approver, claim_id, accepted.row_version, POLICY).status == "approved"


def test_only_accepted_claims_are_approved_and_only_by_reviewers(desk):  # type: ignore[no-untyped-def]
    with Refused(desk, "C2", TransitionError, "cannot approve a claim that is open"):
        desk.approve(desk.staff1, "C2")
    desk.accept("C2")
    for actor in (REGULATOR, desk.customer("C2"), SYSTEM_ACTOR):
        with Refused(desk, "C2", PermissionDenied):
            desk.approve(actor, "C2")
    # The CLI operator has no login, and an approval names a person.
    with Refused(desk, "C2", PermissionDenied, "named login"):
        desk.approve(Actor("cli", Role.STAFF), "C2")
    assert desk.approvals("C2") == []


def test_reject_needs_a_reason_and_tells_the_customer(desk):  # type: ignore[no-untyped-def]
    desk.dispute("C1")
    for reason in ("", "  "):
        with Refused(desk, "C1", ValidationError) as refused:
            desk.reject(desk.staff1, "C1", reason)
        assert refused.info.value.field == "reason"
    with Moved(desk, "C1", "claim.rejected", "disputed", "rejected") as moved:
        desk.reject(desk.staff1, "C1", " Not our customer at the time ")
    assert moved.details["reason"] == "Not our customer at the time"
    claim = desk.claim("C1")
    assert claim.status_reason == "Not our customer at the time" and claim.decided_at is not None
    assert [(n.kind, json.loads(n.params), n.customer_id) for n in desk.notices("C1")] == [
        ("claim.rejected", {"reason": "Not our customer at the time"}, claim.customer_id)]
    with Refused(desk, "C1", TransitionError, "rejected"):
        desk.accept("C1")


def test_request_information_needs_a_question_and_the_customer_answers_by_accepting(desk):  # type: ignore[no-untyped-def]
    with Refused(desk, "C4", ValidationError) as refused:
        desk.request_information(desk.staff1, "C4", "")
    assert refused.info.value.field == "question"
    with Moved(desk, "C4", "claim.information_requested", "open", "needs_information"):
        desk.request_information(desk.staff1, "C4", "Which wallet did you use?")
    assert desk.claim("C4").status_reason == "Which wallet did you use?"
    assert [(n.kind, json.loads(n.params)) for n in desk.notices("C4")] == [
        ("claim.information_requested", {"question": "Which wallet did you use?"})]
    with Moved(desk, "C4", "claim.accepted", "needs_information", "accepted"):
        desk.accept("C4")
    assert desk.claim("C4").status_reason == ""


def test_asking_for_information_voids_a_first_approval_and_the_same_person_may_approve_again(desk):  # type: ignore[no-untyped-def]
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    with Moved(desk, "C6", "claim.information_requested", "under_review", "needs_information"):
        desk.request_information(desk.staff2, "C6")
    assert desk.approvals("C6") == [] and len(desk.approvals("C6", active=False)) == 1
    desk.accept("C6")
    # The voided approval no longer counts, and does not block a fresh one by the same person.
    with Moved(desk, "C6", "claim.approved", "accepted", "under_review"):
        desk.approve(desk.staff1, "C6")
    with Moved(desk, "C6", "claim.approved", "under_review", "approved"):
        desk.approve(desk.approver1, "C6")
    assert sorted(a.user_id for a in desk.approvals("C6")) == sorted([desk.staff1.user_id, desk.approver1.user_id])


def test_adjust_makes_a_new_version_the_customer_accepts_and_someone_else_approves(desk):  # type: ignore[no-untyped-def]
    desk.dispute("C1", corrected={"BTC": "0.2"})
    with Moved(desk, "C1", "claim.adjusted", "disputed", "open") as moved:
        desk.adjust(desk.staff1, "C1", {"BTC": "0.2", "ETH": "1", "JPY": ""}, reason="Wallet statement")
    total = exact_total({"BTC": "0.2", "ETH": "1"})
    assert total == 2_500_000
    claim = desk.claim("C1")
    assert (claim.version, claim.total_jpy, claim.changed_by_id, claim.status_reason) == (
        2, total, desk.staff1.user_id, "Wallet statement")
    assert claim.accepted_at is None
    version = desk.session.scalar(select(ClaimVersion).where(ClaimVersion.claim_id == claim.id))
    assert (version.version, version.total_jpy, version.created_by_id, version.reason) == (
        2, total, desk.staff1.user_id, "Wallet statement")
    positions = desk.session.execute(select(ClaimPosition.version, ClaimPosition.asset_code, ClaimPosition.amount_minor)
                                     .where(ClaimPosition.claim_id == claim.id).order_by(ClaimPosition.asset_code)).all()
    assert positions == [(2, "BTC", 20_000_000), (2, "ETH", 10**18)]
    assert claims.claim_positions(desk.session, claim) == [("BTC", 20_000_000), ("ETH", 10**18)]
    assert moved.details["version"] == [1, 2]
    assert moved.details["total_jpy"] == [EXPECTED_TOTALS["C1"], total]
    assert [(n.kind, json.loads(n.params)) for n in desk.notices("C1")] == [
        ("claim.adjusted", {"total_jpy": total, "version": 2, "reason": "Wallet statement"})]
    # The customer must accept the new version before anyone approves it.
    with Refused(desk, "C1", TransitionError, "cannot approve a claim that is open"):
        desk.approve(desk.approver1, "C1")
    desk.accept("C1")
    with Refused(desk, "C1", PermissionDenied, "you made this change"):
        desk.approve(desk.staff1, "C1")
    with Moved(desk, "C1", "claim.approved", "accepted", "under_review"):
        desk.approve(desk.approver1, "C1")
    with Refused(desk, "C1", PermissionDenied, "you made this change"):
        desk.approve(desk.staff1, "C1")
    with Moved(desk, "C1", "claim.approved", "under_review", "approved"):
        desk.approve(desk.approver2, "C1")
    assert {(a.user_id, a.version) for a in desk.approvals("C1")} == {
        (desk.approver1.user_id, 2), (desk.approver2.user_id, 2)}


def test_adjusting_voids_every_approval(desk):  # type: ignore[no-untyped-def]
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    with Moved(desk, "C6", "claim.adjusted", "under_review", "open") as moved:
        desk.adjust(desk.staff2, "C6", {"JPY": "900000"})
    assert moved.details["approvals_voided"] == 1
    [voided] = desk.approvals("C6", active=False)
    assert voided.voided_at is not None and voided.version == 1
    assert desk.approvals("C6") == []
    # The new version is below the threshold now: one approval, by someone other than staff2.
    desk.accept("C6")
    with Refused(desk, "C6", PermissionDenied):
        desk.approve(desk.staff2, "C6")
    with Moved(desk, "C6", "claim.approved", "accepted", "approved"):
        desk.approve(desk.staff1, "C6")


def test_editing_an_approved_claim_voids_its_approvals(desk):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    desk.approve(desk.staff1, "C2")
    with Moved(desk, "C2", "claim.adjusted", "approved", "open") as moved:
        desk.adjust(desk.staff2, "C2", {"JPY": "400000"}, reason="fees were refunded")
    assert moved.details["approvals_voided"] == 1
    claim = desk.claim("C2")
    assert (claim.version, claim.total_jpy, claim.decided_at) == (2, 400_000, None)
    assert desk.approvals("C2") == []


def test_an_adjustment_that_changes_nothing_is_refused(desk):  # type: ignore[no-untyped-def]
    same = {"BTC": "0.12345678", "ETH": "1.000000000000000001"}
    for amounts in (same, {**same, "JPY": "0"}, {**same, "JPY": ""}, {"BTC": "0.123456780", **{"ETH": same["ETH"]}}):
        with Refused(desk, "C1", ValidationError, "changes nothing"):
            desk.adjust(desk.staff1, "C1", amounts)
    assert desk.session.scalar(select(func.count()).select_from(ClaimVersion)) == 0


def test_adjust_refuses_bad_amounts_and_unpriced_assets(desk):  # type: ignore[no-untyped-def]
    with Refused(desk, "C2", ValidationError, "allows 8") as refused:
        desk.adjust(desk.staff1, "C2", {"BTC": "0.000000001"})
    assert refused.info.value.field == "corrected.BTC"
    with Refused(desk, "C2", ValidationError, "reason"):
        desk.adjust(desk.staff1, "C2", {"JPY": "1"}, reason="")
    with Refused(desk, "C2", ValidationError, "no reference price fixed for USDT"):
        desk.adjust(desk.staff1, "C2", {"USDT": "1"})
    with Refused(desk, "C2", PermissionDenied):
        desk.adjust(REGULATOR, "C2", {"JPY": "1"})
    with Refused(desk, "C2", PermissionDenied):
        desk.adjust(desk.customer("C2"), "C2", {"JPY": "1"})


def test_a_zero_adjustment_leaves_no_zero_rows(desk):  # type: ignore[no-untyped-def]
    desk.adjust(desk.staff1, "C1", {"BTC": "0.1", "ETH": "0"})
    assert claims.claim_positions(desk.session, desk.claim("C1")) == [("BTC", 10_000_000)]
    assert desk.claim("C1").total_jpy == exact_total({"BTC": "0.1"})


# --- audit: one event per move, none for a refused or rolled-back one -----------------------


def test_a_move_rolled_back_after_its_event_leaves_no_event(desk, monkeypatch):  # type: ignore[no-untyped-def]
    desk.accept("C2")

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("notice store down")

    monkeypatch.setattr(claims, "notify", broken)
    with Refused(desk, "C2", RuntimeError, "notice store down"):
        desk.approve(desk.staff1, "C2")
    assert desk.approvals("C2", active=False) == []
    with Refused(desk, "C2", RuntimeError):
        desk.reject(desk.staff1, "C2")
    with Refused(desk, "C2", RuntimeError):
        desk.adjust(desk.staff1, "C2", {"JPY": "1"})
    assert desk.claim("C2").version == 1
    assert desk.session.scalar(select(func.count()).select_from(ClaimVersion)) == 0
    monkeypatch.undo()
    desk.approve(desk.staff1, "C2")
    assert audit_trail.verify(desk.session, REGULATOR).ok


def test_every_move_moves_the_row_version_by_one(desk):  # type: ignore[no-untyped-def]
    moves = [
        lambda: desk.accept("C6"),
        lambda: desk.approve(desk.staff1, "C6"),
        lambda: desk.request_information(desk.staff2, "C6"),
        lambda: desk.dispute("C6"),
        lambda: desk.adjust(desk.staff2, "C6", {"JPY": "2000000"}),
        lambda: desk.accept("C6"),
        lambda: desk.approve(desk.staff1, "C6"),
        lambda: desk.adjust(desk.staff1, "C6", {"JPY": "3"}),
        lambda: desk.reject(desk.approver1, "C6"),
    ]
    for n, move in enumerate(moves, start=1):
        move()
        assert desk.rv("C6") == n + 1, n


def test_every_move_leaves_a_verifiable_chain(desk):  # type: ignore[no-untyped-def]
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    desk.request_information(desk.staff2, "C6")
    desk.dispute("C6")
    desk.adjust(desk.staff2, "C6", {"JPY": "999"})
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    claims.withdraw_claim(desk.session, desk.customer("C4"), desk.ids["C4"], desk.rv("C4"))
    moves = desk.session.execute(select(AuditEvent.action, AuditEvent.details).where(
        AuditEvent.subject_id == str(desk.ids["C6"]), AuditEvent.subject_type == "claim").order_by(AuditEvent.seq)).all()
    assert [(a, json.loads(d)["status"]) for a, d in moves] == [
        ("claim.accepted", ["open", "accepted"]),
        ("claim.approved", ["accepted", "under_review"]),
        ("claim.information_requested", ["under_review", "needs_information"]),
        ("claim.disputed", ["needs_information", "disputed"]),
        ("claim.adjusted", ["disputed", "open"]),
        ("claim.accepted", ["open", "accepted"]),
        ("claim.approved", ["accepted", "approved"]),
    ]
    result = audit_trail.verify(desk.session, REGULATOR)
    assert result.ok and result.count == audit_count(desk.session)


# --- bulk approval --------------------------------------------------------------------------


def test_bulk_approve_takes_only_accepted_unadjusted_undisputed_claims_within_the_threshold(desk):  # type: ignore[no-untyped-def]
    for ref in ("C1", "C2", "C3", "C5", "C6"):
        desk.accept(ref)  # C4 stays open
    desk.dispute("C5")  # disputed, then accepted again at version 1: still not "matches the ledger"
    desk.request_information(desk.staff1, "C5")
    desk.accept("C5")
    assert desk.claim("C5").status == "accepted" and desk.claim("C5").version == 1
    desk.adjust(desk.staff1, "C2", {"JPY": "499999"})  # adjusted, then accepted: version 2
    desk.accept("C2")
    before = audit_count(desk.session)
    approved = claims.bulk_approve(desk.session, desk.staff2, REF, POLICY)
    assert approved == 1  # only C3 (C1 and C6 above the threshold)
    statuses = {ref: desk.claim(ref).status for ref in desk.ids}
    assert statuses == {"C1": "accepted", "C2": "accepted", "C3": "approved", "C4": "open", "C5": "accepted",
                        "C6": "accepted"}
    events = events_since(desk.session, before)
    assert [(e.action, e.subject_id, json.loads(e.details)["status"]) for e in events] == [
        ("claim.approved", str(desk.ids["C3"]), ["accepted", "approved"])]
    assert [(a.user_id, a.version) for a in desk.approvals("C3")] == [(desk.staff2.user_id, 1)]
    assert [n.kind for n in desk.notices("C3")] == ["claim.approved"]
    assert desk.claim("C3").row_version == 3  # opened 1, accepted 2, approved 3
    assert claims.bulk_approve(desk.session, desk.staff2, REF, POLICY) == 0
    assert audit_trail.verify(desk.session, REGULATOR).ok


def test_bulk_approve_respects_the_limit_and_chains_one_event_per_claim(session):  # type: ignore[no-untyped-def]
    ledger = "customer_ref,asset,amount\n" + "".join(f"K{n:02d},JPY,{1000 + n}\n" for n in range(12))
    desk = Desk(session, ledger=ledger)
    for ref in desk.ids:
        desk.accept(ref)
    before = audit_count(session)
    assert claims.bulk_approve(session, desk.approver1, REF, POLICY, limit=5) == 5
    assert claims.bulk_approve(session, desk.approver1, REF, POLICY, limit=5) == 5
    assert claims.bulk_approve(session, desk.approver1, REF, POLICY, limit=5) == 2
    events = events_since(session, before)
    assert [e.action for e in events] == ["claim.approved"] * 12
    assert sorted(int(e.subject_id) for e in events) == sorted(desk.ids.values())
    # The first five by id went first.
    assert [int(e.subject_id) for e in events[:5]] == sorted(desk.ids.values())[:5]
    assert all(json.loads(e.details)["bulk"] is True for e in events)
    assert [e.seq for e in events] == list(range(before + 1, before + 13))
    assert session.scalar(select(func.count()).select_from(Notice).where(Notice.kind == "claim.approved")) == 12
    assert session.scalar(select(func.count()).select_from(ClaimApproval)) == 12
    result = audit_trail.verify(session, REGULATOR)
    assert result.ok, result.problem
    assert result.count == audit_count(session)


def test_bulk_approve_renews_a_voided_approval_of_the_same_person(desk):  # type: ignore[no-untyped-def]
    # Under a lower threshold C3 needed two people; staff1 gave the first, then information was
    # asked for (voiding it) and the customer accepted the same version again.
    strict = FourEyesPolicy(100)
    desk.accept("C3")
    claims.approve_claim(desk.session, desk.staff1, desk.ids["C3"], desk.rv("C3"), strict)
    desk.request_information(desk.staff2, "C3")
    desk.accept("C3")
    assert claims.bulk_approve(desk.session, desk.staff1, REF, POLICY) == 1
    [approval] = desk.approvals("C3", active=False)
    assert (approval.user_id, approval.voided_at) == (desk.staff1.user_id, None)


def test_a_claim_held_by_the_session_is_read_afresh_after_a_bulk_approval(desk):  # type: ignore[no-untyped-def]
    """bulk_approve moves rows with a set-based UPDATE; a copy the same session still holds
    (a CLI run, a request that listed the queue first) must not decide the next move."""
    desk.accept("C3")
    held = desk.claim("C3")
    assert (held.status, held.row_version) == ("accepted", 2)
    claims.bulk_approve(desk.session, desk.staff1, REF, POLICY)
    current = desk.session.scalar(select(Claim.row_version).where(Claim.id == held.id))
    assert current == 3
    claims.adjust_claim(desk.session, desk.staff2, held.id, current, amounts={"JPY": "999999"}, reason="fee")
    assert (held.status, held.version, held.row_version) == ("open", 2, 4)
    assert desk.approvals("C3") == []


def test_bulk_approve_needs_a_named_reviewer(desk):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    for actor in (REGULATOR, STAFF, desk.customer("C2")):
        with Refused(desk, "C2", PermissionDenied):
            claims.bulk_approve(desk.session, actor, REF, POLICY)


# --- the review queue -----------------------------------------------------------------------


def test_review_queue_filters_and_pages(desk):  # type: ignore[no-untyped-def]
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    desk.accept("C2")
    desk.dispute("C4")
    queue = claim_queue.review_queue
    ids = desk.ids

    def refs(page):  # type: ignore[no-untyped-def]
        return [row.customer_ref for row in page.rows]

    assert refs(queue(desk.session, REGULATOR, POLICY, which=claim_queue.QueueFilter.NEEDS_ACTION)) == ["C2", "C4", "C6"]
    assert refs(queue(desk.session, STAFF, POLICY, which=claim_queue.QueueFilter.SECOND_APPROVAL)) == ["C6"]
    assert refs(queue(desk.session, STAFF, POLICY, which=claim_queue.QueueFilter.DISPUTED)) == ["C4"]
    assert refs(queue(desk.session, STAFF, POLICY, which=claim_queue.QueueFilter.ABOVE_THRESHOLD)) == ["C1", "C6"]
    first = queue(desk.session, STAFF, POLICY, which=claim_queue.QueueFilter.ALL, limit=4)
    assert len(first.rows) == 4 and first.next_cursor == first.rows[-1].claim.id
    rest = queue(desk.session, STAFF, POLICY, which=claim_queue.QueueFilter.ALL, after=first.next_cursor, limit=4)
    assert len(rest.rows) == 2 and rest.next_cursor is None
    assert {r.claim.id for r in first.rows + rest.rows} == set(ids.values())
    with pytest.raises(ValidationError):
        claim_queue.parse_filter("bogus")
    with pytest.raises(PermissionDenied):
        queue(desk.session, desk.customer("C1"), POLICY, which=claim_queue.QueueFilter.ALL)
    incident_id = desk.claim("C1").incident_id
    counts = claim_queue.claim_counts(desk.session, REGULATOR, incident_id)
    assert counts["open"] == 3 and counts["accepted"] == 1 and counts["under_review"] == 1
    assert counts["disputed"] == 1 and sum(counts.values()) == 6


# --- allocation reads approved claims -------------------------------------------------------


def test_allocation_uses_the_approved_version_and_leaves_the_rest_out(desk):  # type: ignore[no-untyped-def]
    desk.adjust(desk.staff1, "C1", {"BTC": "0.05"}, reason="half was recovered")
    desk.accept("C1")
    desk.approve(desk.approver1, "C1")  # 500000.025 yen: one approval
    desk.accept("C2")
    desk.approve(desk.staff1, "C2")
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")  # under review: not payable yet
    preview = allocation.preview(desk.session, STAFF, REF)
    got = {c.id: c.approved_jpy for c in preview.result.customers}
    assert got == {"C1": exact_total({"BTC": "0.05"}), "C2": 500_000}
    assert got["C1"] == 500_000


def test_nothing_moves_once_an_allocation_is_committed(desk):  # type: ignore[no-untyped-def]
    desk.accept("C2")
    desk.approve(desk.staff1, "C2")
    desk.accept("C3")
    desk.accept("C6")
    desk.approve(desk.staff1, "C6")
    allocation.commit_allocation(desk.session, STAFF, REF)
    frozen = "can no longer change"
    with Refused(desk, "C4", ConflictError, frozen):
        desk.accept("C4")
    with Refused(desk, "C4", ConflictError, frozen):
        desk.dispute("C4")
    with Refused(desk, "C4", ConflictError, frozen):
        claims.withdraw_claim(desk.session, desk.customer("C4"), desk.ids["C4"], desk.rv("C4"))
    with Refused(desk, "C3", ConflictError, frozen):
        desk.approve(desk.staff1, "C3")
    with Refused(desk, "C6", ConflictError, frozen):
        desk.approve(desk.approver1, "C6")
    with Refused(desk, "C2", ConflictError, frozen):
        desk.adjust(desk.staff1, "C2", {"JPY": "1"})
    with Refused(desk, "C1", ConflictError, frozen):
        desk.reject(desk.staff1, "C1")
    with Refused(desk, "C1", ConflictError, frozen):
        desk.request_information(desk.staff1, "C1")
    with Refused(desk, "C3", ConflictError, frozen):
        claims.bulk_approve(desk.session, desk.staff1, REF, POLICY)


# --- two staff at once (PostgreSQL) ---------------------------------------------------------


def race(factory, desk: Desk, moves):  # type: ignore[no-untyped-def]
    """Run each move(session, row_version) in its own thread and session, all starting from the
    row version each read for itself before any of them wrote. Returns the outcomes."""
    ready = threading.Barrier(len(moves), timeout=30)
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(index: int, move) -> None:  # type: ignore[no-untyped-def]
        with factory() as session:
            seen = claims.claim_for_staff(session, STAFF, desk.ids["C6"], POLICY).claim.row_version
            session.rollback()
            ready.wait()
            try:
                move(session, seen)
                result = "ok"
            except ConflictError as exc:
                result = f"conflict: {exc}"
            except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
                result = f"error: {exc!r}"
            with lock:
                outcomes.append((index, result))

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate(moves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return [r for _i, r in sorted(outcomes)]


def two_staff_desk(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    with factory() as session:
        desk = Desk(session)
        desk.accept("C6")
        desk.approve(desk.staff1, "C6")  # under review: the next approval completes it
    return factory, desk


def consistent(factory, desk: Desk):  # type: ignore[no-untyped-def]
    with factory() as session:
        claim = session.get(Claim, desk.ids["C6"])
        active = session.scalars(select(ClaimApproval).where(
            ClaimApproval.claim_id == claim.id, ClaimApproval.voided_at.is_(None))).all()
        moves = session.scalars(select(AuditEvent.action).where(
            AuditEvent.subject_type == "claim", AuditEvent.subject_id == str(claim.id)).order_by(AuditEvent.seq)).all()
        assert audit_trail.verify(session, REGULATOR).ok
        return claim, active, moves


@pytest.mark.postgres
def test_two_approvers_at_once_one_wins(pg_engine):  # type: ignore[no-untyped-def]
    factory, desk = two_staff_desk(pg_engine)

    def approve(actor):  # type: ignore[no-untyped-def]
        return lambda session, seen: claims.approve_claim(session, actor, desk.ids["C6"], seen, POLICY)

    outcomes = race(factory, desk, [approve(desk.approver1), approve(desk.approver2)])
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "ok"], outcomes
    claim, active, moves = consistent(factory, desk)
    assert claim.status == "approved" and claim.row_version == 4
    assert len(active) == 2  # staff1's first approval and exactly one of the racers
    assert {a.user_id for a in active} - {desk.staff1.user_id} <= {desk.approver1.user_id, desk.approver2.user_id}
    assert moves.count("claim.approved") == 2


@pytest.mark.postgres
def test_approve_and_adjust_at_once_one_wins(pg_engine):  # type: ignore[no-untyped-def]
    factory, desk = two_staff_desk(pg_engine)
    outcomes = race(factory, desk, [
        lambda session, seen: claims.approve_claim(session, desk.approver1, desk.ids["C6"], seen, POLICY),
        lambda session, seen: claims.adjust_claim(session, desk.staff2, desk.ids["C6"], seen,
                                                  amounts={"JPY": "900000"}, reason="fee"),
    ])
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "ok"], outcomes
    claim, active, moves = consistent(factory, desk)
    if outcomes[0] == "ok":  # the approval won
        assert (claim.status, claim.version, len(active)) == ("approved", 1, 2)
        assert "claim.adjusted" not in moves
    else:  # the adjustment won: a new version, every approval void
        assert (claim.status, claim.version, claim.total_jpy, len(active)) == ("open", 2, 900_000, 0)
        assert moves[-1] == "claim.adjusted"


@pytest.mark.postgres
@pytest.mark.parametrize("second", ["approve", "adjust"])
def test_the_row_version_alone_stops_the_second_writer(pg_engine, monkeypatch, second):  # type: ignore[no-untyped-def]
    """Without the row lock (as on SQLite, or a code path that forgets it), both read the claim
    and pass every check before either writes; the row version still lets only one through."""
    factory, desk = two_staff_desk(pg_engine)
    both_read = threading.Barrier(2, timeout=30)
    load, checked = claims._load, claims._checked
    monkeypatch.setattr(claims, "_load", lambda session, claim_id, lock=False: load(session, claim_id))

    def checked_then_wait(session, claim, row_version):  # type: ignore[no-untyped-def]
        checked(session, claim, row_version)
        both_read.wait()  # both have read and checked the same row version; now both write

    monkeypatch.setattr(claims, "_checked", checked_then_wait)
    if second == "approve":
        rival = lambda session, seen: claims.approve_claim(session, desk.approver2, desk.ids["C6"], seen, POLICY)  # noqa: E731
    else:
        rival = lambda session, seen: claims.adjust_claim(session, desk.staff2, desk.ids["C6"], seen,  # noqa: E731
                                                          amounts={"JPY": "900000"}, reason="fee")
    started = time.monotonic()
    outcomes = race(factory, desk, [
        lambda session, seen: claims.approve_claim(session, desk.approver1, desk.ids["C6"], seen, POLICY),
        rival,
    ])
    assert time.monotonic() - started < 30
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "ok"], outcomes
    assert "changed by someone else at the same time" in next(o for o in outcomes if o.startswith("conflict"))
    claim, active, moves = consistent(factory, desk)
    if claim.version == 1:
        assert claim.status == "approved" and len(active) == 2
        assert moves.count("claim.approved") == 2
    else:
        assert claim.status == "open" and active == [] and moves[-1] == "claim.adjusted"


def _blocked_on_a_lock(factory, thread: threading.Thread) -> bool:  # type: ignore[no-untyped-def]
    """Wait until some session of this database waits for a lock (True), or ``thread`` ends
    without any having waited (False): a condition, not a guess at how long things take."""
    from sqlalchemy import text

    with factory() as session:
        while thread.is_alive():
            if session.scalar(text("SELECT count(*) FROM pg_stat_activity"
                                   " WHERE datname = current_database() AND wait_event_type = 'Lock'")):
                return True
            session.rollback()
            time.sleep(0.005)
    return False


def _allocation_desk(pg_engine):  # type: ignore[no-untyped-def]
    from payouts.services import funding

    factory = make_session_factory(pg_engine)
    with factory() as session:
        desk = Desk(session)
        desk.accept("C4")
        desk.approve(desk.staff1, "C4")  # approved: 250,000 yen
        desk.accept("C3")  # accepted, not yet approved
        funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=10_000_000, memo="cash")
        seen = {ref: desk.rv(ref) for ref in ("C3", "C4")}
    return factory, desk, seen


def _run_lines(factory, run_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from payouts.db.models import AllocationLine

    with factory() as session:
        return dict(session.execute(
            select(Customer.external_ref, AllocationLine.payout_jpy)
            .join(Customer, Customer.id == AllocationLine.customer_id).where(AllocationLine.run_id == run_id)).all())


@pytest.mark.postgres
def test_an_allocation_committed_while_claims_move_waits_and_pays_what_they_left(pg_engine, monkeypatch):  # type: ignore[no-untyped-def]
    factory, desk, seen = _allocation_desk(pg_engine)
    checked, go = claims._checked, threading.Event()
    both_checked = threading.Barrier(3, timeout=30)

    def checked_then_hold(session, claim, row_version):  # type: ignore[no-untyped-def]
        checked(session, claim, row_version)  # "no allocation yet": passed
        both_checked.wait()
        go.wait(30)

    monkeypatch.setattr(claims, "_checked", checked_then_hold)
    failures: list[Exception] = []

    def in_thread(move):  # type: ignore[no-untyped-def]
        def body() -> None:
            try:
                with factory() as session:
                    move(session)
            except Exception as exc:  # a thread's exception would otherwise only be a warning
                failures.append(exc)
        return threading.Thread(target=body)

    moves = [
        in_thread(lambda s: claims.approve_claim(s, desk.approver1, desk.ids["C3"], seen["C3"], POLICY)),
        in_thread(lambda s: claims.adjust_claim(s, desk.staff2, desk.ids["C4"], seen["C4"],
                                                amounts={"JPY": "100000"}, reason="fee")),
    ]
    for thread in moves:
        thread.start()
    both_checked.wait()
    runs: list[int] = []
    commit = in_thread(lambda s: runs.append(allocation.commit_allocation(s, STAFF, REF).id))
    commit.start()
    try:
        assert _blocked_on_a_lock(factory, commit), "the commit did not wait for the moves under way"
    finally:
        go.set()
    for thread in [*moves, commit]:
        thread.join(30)
    assert failures == []
    with factory() as session:
        c3, c4 = session.get(Claim, desk.ids["C3"]), session.get(Claim, desk.ids["C4"])
        assert (c3.status, c4.status, c4.version, c4.total_jpy) == ("approved", "open", 2, 100_000)
    # The run pays the approval made meanwhile, and not the claim adjusted back to open.
    assert _run_lines(factory, runs[0]) == {"C3": 1_000_000}


@pytest.mark.postgres
def test_a_claim_move_during_an_allocation_commit_waits_and_is_refused(pg_engine, monkeypatch):  # type: ignore[no-untyped-def]
    from payouts.services import funding

    factory, desk, seen = _allocation_desk(pg_engine)
    lock_reserve, locked, go = funding.lock_reserve, threading.Event(), threading.Event()

    def lock_then_hold(session):  # type: ignore[no-untyped-def]
        lock_reserve(session)  # the commit holds the incident from here
        locked.set()
        go.wait(30)

    monkeypatch.setattr(funding, "lock_reserve", lock_then_hold)
    runs: list[int] = []
    outcome: list[Exception] = []

    def commit() -> None:
        with factory() as session:
            runs.append(allocation.commit_allocation(session, STAFF, REF).id)

    def approve() -> None:
        with factory() as session:
            try:
                claims.approve_claim(session, desk.approver1, desk.ids["C3"], seen["C3"], POLICY)
            except ConflictError as exc:
                outcome.append(exc)

    committer, approver = threading.Thread(target=commit), threading.Thread(target=approve)
    committer.start()
    assert locked.wait(30)
    approver.start()
    try:
        assert _blocked_on_a_lock(factory, approver), "the approval did not wait for the commit"
    finally:
        go.set()
    committer.join(30)
    approver.join(30)
    assert len(outcome) == 1 and "has a committed allocation" in str(outcome[0])
    with factory() as session:
        assert session.get(Claim, desk.ids["C3"]).status == "accepted"
    assert _run_lines(factory, runs[0]) == {"C4": 250_000}
