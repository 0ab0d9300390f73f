"""Disbursements over the records: instructions from a committed run, paid through the sandbox
bank exactly once, whatever is repeated, held until an account is approved, retried on
transient failures, parked for staff on rejections, reconciled to the yen and audited.

Runs on SQLite and on PostgreSQL (PAYOUTS_TEST_DATABASE_URL). Jobs run inline here (no Redis):
tests/integration/test_disbursement_reliability.py runs them on real RQ workers.
"""

from __future__ import annotations

import datetime as dt
import threading
from fractions import Fraction

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from payouts.db.models import (
    AllocationRun,
    AuditEvent,
    Claim,
    Customer,
    Disbursement,
    DisbursementBatch,
    InsuranceReceivable,
    Notice,
    PayoutDestination,
    ReserveEntry,
    User,
)
from payouts.db.session import make_session_factory
from payouts.db.types import utcnow
from payouts.domain.disbursements import MAX_ATTEMPTS, PERMANENT_REASONS
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, TransitionError, ValidationError
from payouts.domain.roles import Actor, Role
from payouts.jobs.disbursements import JOB_ACTOR
from payouts.jobs.runtime import make_dispatch
from payouts.rails.base import RailResult
from payouts.rails.sandbox import CLOSED_ACCOUNT_NUMBER, SandboxRail, count_transfers, find_transfer, total_paid
from payouts.services import allocation, audit_trail, destinations, disbursements, funding, users
from payouts.domain.disbursements import payment_key
from tests.conftest import REGULATOR, STAFF, make_config
from tests.integration.test_allocation_runs import setup_case

ADMIN = Actor(label="admin@test", role=Role.ADMIN)
REFS = ("C001", "C002", "C003", "C004", "C005")
# From tests/data/allocation_case_priority_tranches.json: each customer's part by source.
RESERVE_PARTS = {"C001": 76923, "C002": 102564, "C003": 307692, "C004": 307693, "C005": 205128}
L1_PARTS = {"C001": 73077, "C002": 97436, "C003": 292308, "C004": 292308, "C005": 194872}
RESERVE_USED = 1_000_000
L1_USED = 950_001


# --- helpers ----------------------------------------------------------------------------------
# On SQLite every transaction, reads included, takes the write lock (BEGIN IMMEDIATE): helpers
# that read end their transaction, so that the sandbox bank's own connection can write.


def end(session: Session, value):  # type: ignore[no-untyped-def]
    session.commit()
    return value


def bank_count(session: Session, engine: Engine, outcome: str | None = None) -> int:
    session.commit()
    return count_transfers(engine, outcome=outcome)


def bank_total(session: Session, engine: Engine) -> int:
    session.commit()
    return total_paid(engine)


def bank_transfer(session: Session, engine: Engine, key: str) -> dict[str, object]:
    session.commit()
    transfer = find_transfer(engine, key)
    assert transfer is not None, key
    return transfer


def customer_ids(session: Session) -> dict[str, int]:
    return end(session, dict(session.execute(select(Customer.external_ref, Customer.id)).all()))


def give_accounts(session: Session, refs=REFS, account_number: str = "1234567") -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Approved payout accounts written directly (the approval flow has tests of its own)."""
    ids = customer_ids(session)
    now = utcnow()
    session.execute(insert(PayoutDestination), [
        {"customer_id": ids[ref], "bank_code": "0005", "branch_code": "123", "account_type": "ordinary",
         "account_number": account_number, "holder_kana": f"ﾃｽﾄ {ref}", "status": "approved",
         "approvals_required": 1, "submitted_by_label": "test", "submitted_at": now, "decided_at": now,
         "row_version": 1} for ref in refs])
    session.commit()
    return {ref: session.scalar(select(PayoutDestination.id).where(
        PayoutDestination.customer_id == ids[ref], PayoutDestination.status == "approved")) for ref in refs}


def inline_dispatch(engine: Engine, db_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """Jobs run at once, in this process, on this database (the embedded default)."""
    return make_dispatch(make_config(db_url, tmp_path), engine=engine, session_factory=make_session_factory(engine))


def rows(session: Session, *where) -> list[Disbursement]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return end(session, list(session.scalars(select(Disbursement).where(*where).order_by(Disbursement.id))))


def by_ref(session: Session, *where) -> dict[str, Disbursement]:  # type: ignore[no-untyped-def]
    refs = {i: r for r, i in customer_ids(session).items()}
    return {refs[d.customer_id]: d for d in rows(session, *where)}


def batch_ids(session: Session) -> list[int]:
    return end(session, list(session.scalars(select(DisbursementBatch.id).order_by(DisbursementBatch.id))))


def pay_batches(session: Session, rail, ids=None) -> list[disbursements.BatchOutcome]:  # type: ignore[no-untyped-def]
    return [disbursements.process_batch(session, JOB_ACTOR, rail, b) for b in (ids or batch_ids(session))]


def make_due(session: Session) -> None:
    """Time passes: every scheduled retry is due now."""
    session.execute(update(Disbursement).where(Disbursement.next_attempt_at.is_not(None))
                    .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
    session.commit()


def claim_statuses(session: Session) -> dict[str, str]:
    session.expire_all()
    return end(session, dict(session.execute(select(Customer.external_ref, Claim.status)
                                             .join(Claim, Claim.customer_id == Customer.id)).all()))


def events(session: Session, action: str) -> list[AuditEvent]:
    return end(session, list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                             .order_by(AuditEvent.seq))))


def assert_chain_verifies(session: Session) -> None:
    result = audit_trail.verify(session, REGULATOR)
    assert result.ok, result.problem


def staff_users(session: Session) -> tuple[Actor, Actor]:
    staff = users.create_user(session, ADMIN, username="staff1", display_name="Staff", role=Role.STAFF, password=None)
    approver = users.create_user(session, ADMIN, username="approver1", display_name="Approver",
                                 role=Role.APPROVER, password=None)
    return (Actor(label="staff1", role=Role.STAFF, user_id=staff.id),
            Actor(label="approver1", role=Role.APPROVER, user_id=approver.id))


def customer_actor(session: Session, ref: str) -> Actor:
    """The customer's own login (opening claims created one for every customer)."""
    user_id = end(session, session.scalar(select(User.id).join(Customer, Customer.id == User.customer_id)
                                          .where(Customer.external_ref == ref)))
    assert user_id is not None
    return Actor(label=ref.lower(), role=Role.CUSTOMER, user_id=user_id)


def submit(session: Session, actor: Actor, ref: str, account_number: str = "7654321") -> PayoutDestination:
    return destinations.submit_destination(
        session, actor, customer_ids(session)[ref], bank_code="0005", branch_code="123",
        account_type="ordinary", account_number=account_number, holder_name="ヤマダ タロウ")


def change_account(session: Session, ref: str) -> PayoutDestination:
    """The customer enters a new account and two people approve it (a change needs both)."""
    staff, approver = staff_users(session)
    proposed = submit(session, customer_actor(session, ref), ref)
    destinations.approve_destination(session, staff, proposed.id, proposed.row_version)
    session.refresh(proposed)
    destinations.approve_destination(session, approver, proposed.id, proposed.row_version)
    return proposed


def commit_with_c005_held(session: Session, engine: Engine, db_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """The case committed and paid by inline jobs: C001-C004 have accounts, C005 is held.
    Returns the dispatch, for what the test does next."""
    setup_case(session)
    give_accounts(session, REFS[:4])
    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    return dispatch


# --- instructions -----------------------------------------------------------------------------


def test_commit_instructs_the_reserve_part_of_every_customer_in_the_same_transaction(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    accounts = give_accounts(session)
    run = allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2)
    got = by_ref(session)
    assert set(got) == set(REFS)
    assert {ref: d.amount_jpy for ref, d in got.items()} == RESERVE_PARTS
    assert {d.source_id for d in got.values()} == {"reserve"}
    assert {d.status for d in got.values()} == {"pending"}
    assert sum(d.amount_jpy for d in got.values()) == RESERVE_USED
    # One key per customer, source and destination: unique, and what the bank will see.
    keys = [d.idempotency_key for d in got.values()]
    assert len(set(keys)) == len(keys)
    ids = customer_ids(session)
    assert all(d.idempotency_key == payment_key(run.id, ids[ref], "reserve", accounts[ref]) for ref, d in got.items())
    assert all(d.destination_id == accounts[ref] and d.attempts == 0 for ref, d in got.items())
    # Batches of two: 5 payments, 3 batches, every payment in one.
    batches = batch_ids(session)
    assert len(batches) == 3
    assert sorted(session.scalars(select(DisbursementBatch.size))) == [1, 2, 2]
    assert all(d.batch_id in batches for d in got.values())
    # The insurer's part waits for the insurer's money.
    assert not rows(session, Disbursement.source_id == "L1")
    [event] = events(session, "disbursements.instructed")
    assert event.subject_id == str(run.id) and '"pending":5' in event.details
    # Without a dispatch nothing was enqueued: the sweeper will find them.
    assert session.scalar(select(func.count()).select_from(DisbursementBatch)
                          .where(DisbursementBatch.enqueued_at.is_not(None))) == 0
    assert_chain_verifies(session)


def test_a_commit_that_fails_leaves_no_instructions(session, monkeypatch):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    real = allocation.record_event

    def failing(session_, actor, action, *args, **kwargs):  # type: ignore[no-untyped-def]
        if action == "allocation.committed":  # after the instructions were written
            raise RuntimeError("the database went away")
        return real(session_, actor, action, *args, **kwargs)

    monkeypatch.setattr(allocation, "record_event", failing)
    dispatched: list[tuple[object, ...]] = []
    with pytest.raises(RuntimeError, match="went away"):
        allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2,
                                     dispatch=lambda *a, **k: dispatched.append(a))
    assert session.scalar(select(func.count()).select_from(Disbursement)) == 0
    assert session.scalar(select(func.count()).select_from(DisbursementBatch)) == 0
    assert session.scalar(select(func.count()).select_from(AllocationRun)) == 0
    assert not events(session, "disbursements.instructed")
    assert dispatched == []
    monkeypatch.undo()
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2)
    assert len(rows(session)) == 5


def test_customers_without_an_approved_account_are_held_until_one_is_approved(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session, REFS[:3])
    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    got = by_ref(session)
    assert {ref: d.status for ref, d in got.items()} == {
        "C001": "paid", "C002": "paid", "C003": "paid", "C004": "held", "C005": "held"}
    assert got["C004"].destination_id is None and got["C004"].batch_id is None
    assert bank_count(session, engine) == 3
    # A held payment is never picked up: not by the sweeper, not by a job.
    assert disbursements.sweep(session, JOB_ACTOR, dispatch, batch_size=2).dispatched == 0
    # The customer enters an account; staff approve it (the first account needs one approval).
    staff, _approver = staff_users(session)
    customer = customer_actor(session, "C004")
    proposed = submit(session, customer, "C004")
    assert proposed.approvals_required == 1
    assert rows(session, Disbursement.status == "held").__len__() == 2  # not released by a proposal
    destinations.approve_destination(session, staff, proposed.id, proposed.row_version)
    released = by_ref(session)["C004"]
    assert (released.status, released.destination_id, released.batch_id) == ("pending", proposed.id, None)
    assert released.idempotency_key.endswith(f"-{proposed.id}")
    assert by_ref(session)["C005"].status == "held"
    [event] = events(session, "disbursement.released")
    assert event.subject_id == str(released.id)
    # The sweeper batches and enqueues it; the job pays it.
    report = disbursements.sweep(session, JOB_ACTOR, dispatch, batch_size=2)
    assert len(report.planned) == 1 and report.dispatched == 1
    assert by_ref(session)["C004"].status == "paid"
    assert bank_transfer(session, engine, released.idempotency_key)["account_number"] == "7654321"
    assert bank_count(session, engine) == 4
    assert bank_total(session, engine) == sum(RESERVE_PARTS[r] for r in ("C001", "C002", "C003", "C004"))
    assert by_ref(session)["C005"].status == "held"
    assert_chain_verifies(session)


# --- paying -----------------------------------------------------------------------------------


def test_paying_pays_each_payment_once_and_again_pays_nothing(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    paid = rows(session, Disbursement.status == "paid")
    assert len(paid) == 5
    assert bank_count(session, engine) == 5 == bank_count(session, engine, "paid")
    assert bank_total(session, engine) == sum(d.amount_jpy for d in paid) == RESERVE_USED
    for d in paid:
        transfer = bank_transfer(session, engine, d.idempotency_key)
        assert transfer["amount_jpy"] == d.amount_jpy
        assert d.rail_reference == transfer["bank_reference"] and d.rail == "sandbox"
        assert d.attempts == 1 and d.paid_at is not None
    assert set(session.scalars(select(DisbursementBatch.status))) == {"done"}
    # The reserve's ledger: the earmark became payments.
    balance = funding.reserve_balance(session)
    assert balance.payments == RESERVE_USED
    assert balance.earmarked == 0
    assert sum(session.scalars(select(ReserveEntry.amount_jpy).where(ReserveEntry.kind == "payment"))) == RESERVE_USED
    # Each customer is told.
    assert session.scalar(select(func.count()).select_from(Notice).where(Notice.kind == "payment.sent")) == 5
    # Everything again: the jobs, the sweeper, the jobs by hand. Nothing more is paid.
    chain_length = session.scalar(select(func.count()).select_from(AuditEvent))
    outcomes = pay_batches(session, SandboxRail(engine))
    assert [o.attempted for o in outcomes] == [0, 0, 0]
    assert disbursements.sweep(session, JOB_ACTOR, dispatch, batch_size=2,
                               stale_after=dt.timedelta(0)).dispatched == 0
    assert bank_count(session, engine) == 5 and bank_total(session, engine) == RESERVE_USED
    assert funding.reserve_balance(session).payments == RESERVE_USED
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == chain_length
    assert_chain_verifies(session)


def test_a_job_delivered_twice_at_once_pays_once(session, engine):  # type: ignore[no-untyped-def]
    """Two workers on the same batch: one takes it, the other finds it locked or done."""
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    [batch] = batch_ids(session)
    factory = make_session_factory(engine)
    outcomes: list[disbursements.BatchOutcome] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work() -> None:
        s = factory()
        try:
            start.wait()
            outcomes.append(disbursements.process_batch(s, JOB_ACTOR, SandboxRail(engine, latency_ms=50), batch))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(o.paid for o in outcomes) == [0, 5]
    assert bank_count(session, engine) == 5 and bank_total(session, engine) == RESERVE_USED
    assert {d.status for d in rows(session)} == {"paid"}
    assert funding.reserve_balance(session).payments == RESERVE_USED


def test_claims_are_paid_once_the_insurers_part_is_paid_too(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    assert {d.status for d in rows(session)} == {"paid"}
    # The reserve's part is paid, the insurer's is outstanding: claims stay approved.
    assert set(claim_statuses(session).values()) == {"approved"}
    # A partial payment from the insurer instructs nothing.
    receivable = disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                                      amount_jpy=500_000, batch_size=2, dispatch=dispatch)
    assert receivable.received_jpy == 500_000
    assert not rows(session, Disbursement.source_id == "L1")
    assert set(claim_statuses(session).values()) == {"approved"}
    # More than is owed is refused, and changes nothing.
    with pytest.raises(ValidationError, match="more than the ¥450,001 still owed"):
        disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                             amount_jpy=450_002, batch_size=2, dispatch=dispatch)
    assert session.scalar(select(InsuranceReceivable.received_jpy)) == 500_000
    with pytest.raises(NotFoundError):
        disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L9",
                                             amount_jpy=1, batch_size=2)
    with pytest.raises(PermissionDenied):
        disbursements.record_insurer_payment(session, REGULATOR, incident_ref="INC-1", layer_code="L1",
                                             amount_jpy=1, batch_size=2)
    # The rest arrives: the layer's part of every payout is instructed and paid.
    disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                         amount_jpy=450_001, batch_size=2, dispatch=dispatch)
    layer = by_ref(session, Disbursement.source_id == "L1")
    assert {ref: d.amount_jpy for ref, d in layer.items()} == L1_PARTS
    assert {d.status for d in layer.values()} == {"paid"}
    assert bank_count(session, engine) == 10
    assert bank_total(session, engine) == RESERVE_USED + L1_USED
    assert set(claim_statuses(session).values()) == {"paid"}
    assert len(events(session, "claim.paid")) == 5
    # The reserve's ledger holds only the reserve's part.
    assert funding.reserve_balance(session).payments == RESERVE_USED
    # Fully paid: nothing more can be recorded.
    with pytest.raises(ValidationError, match="still owed"):
        disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                             amount_jpy=1, batch_size=2)
    report = disbursements.reconcile(session, REGULATOR, "INC-1")
    assert report.balanced
    assert {s.source_id: (s.allocated_jpy, s.awaiting_funds_jpy, s.instructed_jpy) for s in report.sources} == {
        "reserve": (RESERVE_USED, 0, RESERVE_USED), "L1": (L1_USED, 0, L1_USED)}
    assert report.paid_jpy == report.instructed_jpy == RESERVE_USED + L1_USED
    assert [e.details for e in events(session, "insurer.payment_recorded")] == [
        '{"amount_jpy":950001,"received_jpy":[0,500000]}', '{"amount_jpy":950001,"received_jpy":[500000,950001]}']
    assert_chain_verifies(session)


def test_the_sweeper_releases_payments_held_for_an_account_approved_while_they_were_written(  # type: ignore[no-untyped-def]
        session, engine, db_url, tmp_path, monkeypatch):
    """An approval that commits while an allocation is still writing its payments cannot see
    them, so it releases nothing (here: the release is skipped, as that approval would)."""
    dispatch = commit_with_c005_held(session, engine, db_url, tmp_path)
    assert by_ref(session)["C005"].status == "held"
    staff, _approver = staff_users(session)
    proposed = submit(session, customer_actor(session, "C005"), "C005")
    with monkeypatch.context() as patch:
        patch.setattr(disbursements, "destination_approved", lambda *args: 0)
        destinations.approve_destination(session, staff, proposed.id, proposed.row_version)
    assert by_ref(session)["C005"].status == "held"
    report = disbursements.sweep(session, JOB_ACTOR, dispatch, batch_size=2)
    assert len(report.planned) == 1 and report.dispatched == 1
    paid = by_ref(session)["C005"]
    assert (paid.status, paid.destination_id) == ("paid", proposed.id)
    assert [e.subject_id for e in events(session, "disbursement.released")] == [str(paid.id)]
    assert bank_total(session, engine) == RESERVE_USED
    # Nothing is left to release: the next sweep does nothing.
    assert disbursements.sweep(session, JOB_ACTOR, dispatch, batch_size=2).dispatched == 0
    assert_chain_verifies(session)


def test_a_customer_held_for_one_source_is_not_marked_paid_by_another(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    dispatch = commit_with_c005_held(session, engine, db_url, tmp_path)
    disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                         amount_jpy=L1_USED, batch_size=2, dispatch=dispatch)
    statuses = claim_statuses(session)
    assert statuses.pop("C005") == "approved"
    assert set(statuses.values()) == {"paid"}
    assert {d.status for d in by_ref(session, Disbursement.source_id == "L1").values()} == {"paid", "held"}


# --- failures ---------------------------------------------------------------------------------


def test_a_closed_account_needs_attention_until_the_account_is_changed(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session, REFS[1:])
    old = give_accounts(session, ["C001"], account_number=CLOSED_ACCOUNT_NUMBER)["C001"]
    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    failed = by_ref(session)["C001"]
    old_key = failed.idempotency_key
    assert failed.status == "needs_attention"
    assert failed.failure_reason == PERMANENT_REASONS["closed_account"]
    assert failed.attempts == 1 and failed.next_attempt_at is None
    assert {d.status for ref, d in by_ref(session).items() if ref != "C001"} == {"paid"}
    assert bank_transfer(session, engine, failed.idempotency_key)["outcome"] == "rejected"
    assert session.scalar(select(Notice.params).where(Notice.kind == "payment.failed",
                                                      Notice.customer_id == failed.customer_id)) is not None
    # The reserve's ledger only counts money that left.
    assert funding.reserve_balance(session).payments == RESERVE_USED - RESERVE_PARTS["C001"]
    # Progress shows it to staff with its reason.
    progress = disbursements.progress(session, STAFF, "INC-1")
    assert [(d.id, ref, d.failure_reason) for d, ref in progress.needs_attention] == [
        (failed.id, "C001", PERMANENT_REASONS["closed_account"])]
    # A retry into the account that refused it is refused.
    with pytest.raises(ConflictError, match="the bank rejected this account"):
        disbursements.retry_payment(session, STAFF, failed.id, batch_size=2, dispatch=dispatch)
    with pytest.raises(PermissionDenied):
        disbursements.retry_payment(session, REGULATOR, failed.id, batch_size=2, dispatch=dispatch)
    # The customer enters a new account: a change, so two people approve it.
    staff, approver = staff_users(session)
    proposed = submit(session, customer_actor(session, "C001"), "C001")
    assert proposed.approvals_required == 2
    destinations.approve_destination(session, staff, proposed.id, proposed.row_version)
    with pytest.raises(ConflictError, match="the bank rejected this account"):  # one approval is not enough
        disbursements.retry_payment(session, STAFF, failed.id, batch_size=2, dispatch=dispatch)
    session.refresh(proposed)
    destinations.approve_destination(session, approver, proposed.id, proposed.row_version)
    assert by_ref(session)["C001"].status == "needs_attention"  # approval releases held ones only
    retried = disbursements.retry_payment(session, STAFF, failed.id, batch_size=2, dispatch=dispatch)
    assert retried.id == failed.id
    paid = by_ref(session)["C001"]
    assert paid.status == "paid" and paid.destination_id == proposed.id != old
    assert paid.idempotency_key != old_key
    assert paid.idempotency_key == payment_key(paid.run_id, paid.customer_id, "reserve", proposed.id)
    assert bank_transfer(session, engine, paid.idempotency_key)["account_number"] == "7654321"
    assert bank_count(session, engine, "rejected") == 1
    assert bank_count(session, engine, "paid") == 5
    assert bank_total(session, engine) == RESERVE_USED
    assert funding.reserve_balance(session).payments == RESERVE_USED
    with pytest.raises(TransitionError, match="is paid"):
        disbursements.retry_payment(session, STAFF, failed.id, batch_size=2, dispatch=dispatch)
    [event] = events(session, "disbursement.retried")
    assert event.details == f'{{"destination_id":[{old},{proposed.id}],"status":["needs_attention","pending"]}}'
    assert disbursements.reconcile(session, REGULATOR, "INC-1").balanced
    assert_chain_verifies(session)


def test_transient_failures_retry_later_then_need_attention(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    down = SandboxRail(engine, transient_failure_rate=Fraction(1))
    [outcome] = pay_batches(session, down)
    assert (outcome.attempted, outcome.retrying, outcome.paid) == (5, 5, 0)
    first = rows(session)
    assert {d.status for d in first} == {"retrying"}
    assert all(d.attempts == 1 and d.next_attempt_at > utcnow() + dt.timedelta(seconds=29) for d in first)
    assert all(d.failure_reason for d in first)
    # Not due yet: neither the job nor the sweeper sends them again.
    assert pay_batches(session, down)[0].attempted == 0
    sent: list[tuple[object, ...]] = []
    assert disbursements.sweep(session, JOB_ACTOR, lambda *a, **k: sent.append(a), batch_size=10).dispatched == 0
    # Due: the sweeper enqueues the batch again.
    make_due(session)
    assert disbursements.sweep(session, JOB_ACTOR, lambda *a, **k: sent.append(a), batch_size=10).dispatched == 1
    assert sent == [(disbursements.PAY_BATCH_JOB, first[0].batch_id)]
    for attempt in range(2, MAX_ATTEMPTS + 1):
        [outcome] = pay_batches(session, down)
        assert outcome.attempted == 5
        assert {d.attempts for d in rows(session)} == {attempt}
        make_due(session)
    assert outcome.needs_attention == 5
    final = rows(session)
    assert {d.status for d in final} == {"needs_attention"}
    assert bank_count(session, engine) == 0
    assert len(events(session, "disbursement.retry_scheduled")) == 5 * (MAX_ATTEMPTS - 1)
    assert len(events(session, "disbursement.needs_attention")) == 5
    # A run of transient failures is not a rejection: staff may send it again to the same account.
    again = disbursements.retry_payment(session, STAFF, final[0].id, batch_size=10)
    assert again.status == "pending" and again.idempotency_key == final[0].idempotency_key
    assert again.batch_id is not None
    disbursements.process_batch(session, JOB_ACTOR, SandboxRail(engine), again.batch_id)
    assert rows(session, Disbursement.id == again.id)[0].status == "paid"
    assert bank_count(session, engine) == 1
    assert_chain_verifies(session)


def test_a_timeout_after_the_bank_accepted_is_not_paid_twice(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    [outcome] = pay_batches(session, SandboxRail(engine, timeout_after_accept_rate=Fraction(1)))
    assert outcome.timed_out and outcome.retrying == 5
    assert {d.status for d in rows(session)} == {"retrying"}
    # The bank has them all, though we were not told.
    assert bank_count(session, engine) == 5 and bank_total(session, engine) == RESERVE_USED
    references = {d.idempotency_key: bank_transfer(session, engine, d.idempotency_key)["bank_reference"]
                  for d in rows(session)}
    assert funding.reserve_balance(session).payments == 0
    make_due(session)
    [outcome] = pay_batches(session, SandboxRail(engine))
    assert outcome.paid == 5
    paid = rows(session)
    assert {d.status for d in paid} == {"paid"}
    assert {d.idempotency_key: d.rail_reference for d in paid} == references
    assert all(d.attempts == 2 for d in paid)
    assert bank_count(session, engine) == 5 and bank_total(session, engine) == RESERVE_USED
    assert funding.reserve_balance(session).payments == RESERVE_USED
    assert_chain_verifies(session)


def test_a_payment_whose_key_went_unanswered_goes_again_with_it_even_after_an_account_change(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    # The bank books the payments but its answer is lost; then it says "try again later" (an
    # answer drawn before it looks at the key: it says nothing of the booked payment).
    pay_batches(session, SandboxRail(engine, timeout_after_accept_rate=Fraction(1)))
    make_due(session)
    for _ in range(MAX_ATTEMPTS - 1):
        pay_batches(session, SandboxRail(engine, transient_failure_rate=Fraction(1)))
        make_due(session)
    row = by_ref(session)["C001"]
    assert row.status == "needs_attention" and row.failure_reason not in ("", "timeout")
    assert row.key_unanswered
    assert bank_total(session, engine) == RESERVE_USED  # the bank has in fact paid everyone
    # The customer is told the payment is delayed, not that it failed (which invites a new account).
    kinds = session.scalars(select(Notice.kind).where(Notice.customer_id == row.customer_id)).all()
    assert "payment.delayed" in kinds and "payment.failed" not in kinds
    # The customer changes account anyway, and two people approve it; staff send the payment again.
    change_account(session, "C001")
    key, destination_id = row.idempotency_key, row.destination_id
    again = disbursements.retry_payment(session, STAFF, row.id, batch_size=10)
    # Same key, same account: the bank answers with the payment it booked, and pays nothing more.
    assert (again.idempotency_key, again.destination_id) == (key, destination_id)
    disbursements.process_batch(session, JOB_ACTOR, SandboxRail(engine), again.batch_id)
    settled = rows(session, Disbursement.id == row.id)[0]
    assert settled.status == "paid" and not settled.key_unanswered
    assert settled.rail_reference == bank_transfer(session, engine, key)["bank_reference"]
    assert bank_total(session, engine) == RESERVE_USED
    assert_chain_verifies(session)


def test_migration_0012_keeps_payments_whose_last_attempt_timed_out_on_their_key(session, engine):  # type: ignore[no-untyped-def]
    """Payments from before the flag existed: a timeout as the last answer is all there is to go
    by, so those are the ones marked; any other reason is not."""
    from alembic import command

    from payouts.db.migrate import alembic_config

    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    pay_batches(session, SandboxRail(engine, timeout_after_accept_rate=Fraction(1)))
    first, *others = rows(session)
    session.execute(update(Disbursement).where(Disbursement.id == first.id)
                    .values(failure_reason="bank temporarily unavailable (simulated)"))
    session.commit()
    session.close()
    engine.dispose()
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    command.downgrade(cfg, "0011")  # as it was before the flag
    command.upgrade(cfg, "head")
    flags = dict(session.execute(select(Disbursement.id, Disbursement.key_unanswered)).all())
    assert flags == {first.id: False, **{d.id: True for d in others}} and others


def test_a_payment_that_definitely_failed_moves_to_the_new_account(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    down = SandboxRail(engine, transient_failure_rate=Fraction(1))  # refused each time: nothing booked
    for _ in range(MAX_ATTEMPTS):
        pay_batches(session, down)
        make_due(session)
    row = by_ref(session)["C001"]
    assert row.status == "needs_attention" and row.failure_reason not in ("", "timeout")
    assert not row.key_unanswered
    proposed = change_account(session, "C001")
    old_key = row.idempotency_key
    again = disbursements.retry_payment(session, STAFF, row.id, batch_size=10)
    assert again.destination_id == proposed.id and again.idempotency_key != old_key
    disbursements.process_batch(session, JOB_ACTOR, SandboxRail(engine), again.batch_id)
    assert rows(session, Disbursement.id == row.id)[0].status == "paid"
    assert bank_count(session, engine) == 1


def test_a_worker_that_died_mid_call_is_resent_with_the_same_key(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)
    [batch] = batch_ids(session)

    class Dies:
        """The bank books the payments, then the worker dies before recording anything."""

        name = "sandbox"

        def pay(self, orders):  # type: ignore[no-untyped-def]
            SandboxRail(engine).pay(orders)
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        disbursements.process_batch(session, JOB_ACTOR, Dies(), batch)
    session.rollback()
    assert {d.status for d in rows(session)} == {"submitting"}
    assert bank_count(session, engine) == 5
    # A fresh job of the same batch soon after (the dead one's lock is gone) resends them.
    sent: list[tuple[object, ...]] = []
    assert disbursements.sweep(session, JOB_ACTOR, lambda *a, **k: sent.append(a), batch_size=10,
                               stale_after=dt.timedelta(0)).dispatched == 1
    [outcome] = pay_batches(session, SandboxRail(engine))
    assert outcome.paid == 5
    assert bank_count(session, engine) == 5 and bank_total(session, engine) == RESERVE_USED
    [event] = events(session, "disbursement_batch.submitting")[-1:]
    assert '"resent_after_interruption":[' in event.details and '"resent_after_interruption":[]' not in event.details
    assert funding.reserve_balance(session).payments == RESERVE_USED


def test_a_rail_that_answers_for_unknown_keys_settles_only_its_own(session, engine):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=10)

    class Partial:
        name = "sandbox"

        def pay(self, orders):  # type: ignore[no-untyped-def]
            results = SandboxRail(engine).pay(orders[:2])
            return [*results, RailResult("pay-unknown", results[0].outcome, "X", "")]

    [outcome] = pay_batches(session, Partial())
    assert outcome.paid == 2
    statuses = sorted(d.status for d in rows(session))
    assert statuses == ["paid", "paid", "submitting", "submitting", "submitting"]
    # The unanswered ones are picked up again.
    [outcome] = pay_batches(session, SandboxRail(engine))
    assert outcome.paid == 3 and bank_count(session, engine) == 5
    assert funding.reserve_balance(session).payments == RESERVE_USED


# --- reconciliation and the audit trail --------------------------------------------------------


def test_reconcile_balances_after_a_full_run_and_finds_tampering(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    commit_with_c005_held(session, engine, db_url, tmp_path)
    report = disbursements.reconcile(session, REGULATOR, "INC-1")
    assert report.balanced
    # The insurer's part is awaited; the held payment counts as pending, not as missing.
    assert {s.source_id: s.difference_jpy for s in report.sources} == {"reserve": 0, "L1": 0}
    assert report.pending_jpy == RESERVE_PARTS["C005"]
    assert report.paid_jpy == RESERVE_USED - RESERVE_PARTS["C005"]
    assert {t.status: t.count for t in report.by_status} == {"paid": 4, "held": 1}
    with pytest.raises(PermissionDenied):
        disbursements.reconcile(session, Actor(label="c", role=Role.CUSTOMER, user_id=1), "INC-1")
    # Someone edits an amount behind the application's back.
    target = by_ref(session)["C002"]
    session.execute(update(Disbursement).where(Disbursement.id == target.id)
                    .values(amount_jpy=Disbursement.amount_jpy + 1000))
    session.commit()
    tampered = disbursements.reconcile(session, REGULATOR, "INC-1")
    assert not tampered.balanced
    assert {s.source_id: s.difference_jpy for s in tampered.sources}["reserve"] == -1000
    # ... or deletes a payment.
    session.execute(update(Disbursement).where(Disbursement.id == target.id)
                    .values(amount_jpy=Disbursement.amount_jpy - 1000))
    session.execute(delete(Disbursement).where(Disbursement.id == by_ref(session)["C005"].id))
    session.commit()
    deleted = disbursements.reconcile(session, REGULATOR, "INC-1")
    assert not deleted.balanced
    assert {s.source_id: s.difference_jpy for s in deleted.sources}["reserve"] == RESERVE_PARTS["C005"]


def test_reconcile_compares_payments_with_the_reserve_ledger(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    commit_with_c005_held(session, engine, db_url, tmp_path)
    report = disbursements.reconcile(session, REGULATOR, "INC-1")
    paid = RESERVE_USED - RESERVE_PARTS["C005"]
    assert (report.reserve_paid_jpy, report.reserve_ledger_paid_jpy, report.ledger_difference_jpy) == (paid, paid, 0)
    assert report.balanced
    # The reserve ledger shows a payment no payment record stands behind: every other check
    # still adds up, the ledger's does not.
    incident_id = by_ref(session)["C001"].incident_id
    session.execute(insert(ReserveEntry).values(kind="payment", amount_jpy=1_000, incident_id=incident_id,
                                                created_by_label="someone", memo="", created_at=utcnow()))
    session.commit()
    tampered = disbursements.reconcile(session, REGULATOR, "INC-1")
    assert tampered.status_difference_jpy == 0 and all(s.difference_jpy == 0 for s in tampered.sources)
    assert tampered.ledger_difference_jpy == -1_000 and not tampered.balanced


def test_every_change_of_a_payment_is_in_the_audit_trail(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    dispatch = commit_with_c005_held(session, engine, db_url, tmp_path)
    disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                         amount_jpy=L1_USED, batch_size=2, dispatch=dispatch)
    paid = rows(session, Disbursement.status == "paid")
    assert len(paid) == 8
    paid_events = events(session, "disbursement.paid")
    assert sorted(int(e.subject_id) for e in paid_events) == sorted(d.id for d in paid)
    assert all(e.actor == JOB_ACTOR.label and '"status":["submitting","paid"]' in e.details for e in paid_events)
    submitting = events(session, "disbursement_batch.submitting")
    sent = sorted(i for e in submitting for i in map(int, e.details.split('"disbursements":[')[1].split("]")[0]
                                                                 .split(",")))
    assert sent == sorted(d.id for d in paid)
    assert [e.subject_id for e in events(session, "disbursements.instructed")] == [
        str(r) for r in session.scalars(select(AllocationRun.id))] * 2
    assert len(events(session, "claim.paid")) == 4
    assert_chain_verifies(session)
    if session.get_bind().dialect.name == "sqlite":  # PostgreSQL's trigger refuses the edit itself
        # The chain notices an edited payment event.
        session.execute(update(AuditEvent).where(AuditEvent.seq == paid_events[0].seq)
                        .values(summary="Payment of ¥1"))
        session.commit()
        assert audit_trail.verify(session, REGULATOR).first_bad_seq == paid_events[0].seq


def test_progress_shows_batches_and_throughput(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    setup_case(session)
    give_accounts(session)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=inline_dispatch(engine, db_url, tmp_path))
    progress = disbursements.progress(session, STAFF, "INC-1")
    assert [(t.status, t.count, t.amount_jpy) for t in progress.by_status] == [("paid", 5, RESERVE_USED)]
    assert progress.paid_last_minute == 5 == progress.paid_last_hour
    assert [(b.status, counts) for b, counts in progress.batches] == [
        ("done", {"paid": 1}), ("done", {"paid": 2}), ("done", {"paid": 2})]
    assert progress.needs_attention == []
