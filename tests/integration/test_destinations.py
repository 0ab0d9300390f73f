"""Payout destinations: who proposes, how many approve, what supersedes what."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from payouts.db.models import AuditEvent, DestinationApproval, Notice, PayoutDestination
from payouts.db.session import make_session_factory
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, TransitionError, ValidationError
from payouts.domain.roles import Actor, Role
from payouts.services import destinations
from tests.conftest import REGULATOR
from tests.integration.test_claims import Desk, audit_count, events_since

ACCOUNT = {"bank_code": "0005", "branch_code": "123", "account_type": "ordinary", "account_number": "1234567",
           "holder_name": "ヤマダ タロウ"}


@pytest.fixture
def desk(session) -> Desk:  # type: ignore[no-untyped-def]
    return Desk(session)


def customer_id(desk: Desk, ref: str) -> int:
    return desk.claim(ref).customer_id


def submit(desk: Desk, actor: Actor, ref: str, **changes: str) -> PayoutDestination:
    return destinations.submit_destination(desk.session, actor, customer_id(desk, ref), **{**ACCOUNT, **changes})


def fresh(desk: Desk, destination_id: int) -> PayoutDestination:
    return desk.session.get(PayoutDestination, destination_id, populate_existing=True)


def approve(desk: Desk, actor: Actor, destination_id: int) -> PayoutDestination:
    return destinations.approve_destination(desk.session, actor, destination_id, fresh(desk, destination_id).row_version)


def approvals(desk: Desk, destination_id: int) -> list[int]:
    return list(desk.session.scalars(select(DestinationApproval.user_id)
                                     .where(DestinationApproval.destination_id == destination_id)
                                     .order_by(DestinationApproval.id)))


def refused(desk: Desk, error: type[Exception], call, match: str | None = None):  # type: ignore[no-untyped-def]
    """The call raises ``error`` and writes no audit event."""
    before = audit_count(desk.session)
    with pytest.raises(error, match=match) as info:
        call()
    desk.session.rollback()
    assert audit_count(desk.session) == before
    return info.value


def test_the_first_destination_takes_one_approval(desk):  # type: ignore[no-untyped-def]
    c1 = desk.customer("C1")
    before = audit_count(desk.session)
    first = submit(desk, c1, "C1", account_number="98765")
    assert (first.status, first.approvals_required, first.account_number, first.holder_kana) == (
        "pending", 1, "0098765", "ﾔﾏﾀﾞ ﾀﾛｳ")
    assert (first.submitted_by_id, first.submitted_by_label) == (c1.user_id, c1.label)
    [event] = events_since(desk.session, before)
    details = json.loads(event.details)
    assert (event.action, event.subject_id) == ("destination.submitted", str(first.id))
    assert details["account_number"] == "****765" and "0098765" not in event.details + event.summary
    assert details["approvals_required"] == 1 and details["change_of_approved"] is False
    assert destinations.current_destination(desk.session, customer_id(desk, "C1")) is None

    before = audit_count(desk.session)
    approve(desk, desk.staff1, first.id)
    assert fresh(desk, first.id).status == "approved"
    assert fresh(desk, first.id).decided_at is not None
    [event] = events_since(desk.session, before)
    assert event.action == "destination.approved"
    assert json.loads(event.details)["status"] == ["pending", "approved"]
    assert destinations.current_destination(desk.session, customer_id(desk, "C1")).id == first.id
    notices = desk.session.scalars(select(Notice).where(Notice.customer_id == customer_id(desk, "C1"))).all()
    assert [(n.kind, json.loads(n.params)) for n in notices] == [("destination.approved", {"account": "****765"})]
    refused(desk, TransitionError, lambda: approve(desk, desk.approver1, first.id), "approved, not pending")


def test_a_change_takes_two_people_the_second_an_approver(desk):  # type: ignore[no-untyped-def]
    c1 = desk.customer("C1")
    first = submit(desk, c1, "C1")
    approve(desk, desk.staff1, first.id)
    change = submit(desk, c1, "C1", account_number="7654321")
    assert change.approvals_required == 2
    assert json.loads(desk.session.scalar(select(AuditEvent.details).where(
        AuditEvent.action == "destination.submitted", AuditEvent.subject_id == str(change.id))))["change_of_approved"]

    before = audit_count(desk.session)
    approve(desk, desk.staff1, change.id)
    [event] = events_since(desk.session, before)
    assert event.action == "destination.approval_recorded" and "first of two" in event.summary
    assert fresh(desk, change.id).status == "pending"
    assert destinations.current_destination(desk.session, customer_id(desk, "C1")).id == first.id

    refused(desk, PermissionDenied, lambda: approve(desk, desk.staff1, change.id), "already approved")
    refused(desk, PermissionDenied, lambda: approve(desk, desk.staff2, change.id), "must come from an approver")
    approve(desk, desk.approver1, change.id)
    assert fresh(desk, change.id).status == "approved"
    assert fresh(desk, first.id).status == "superseded"
    assert destinations.current_destination(desk.session, customer_id(desk, "C1")).id == change.id
    assert approvals(desk, change.id) == [desk.staff1.user_id, desk.approver1.user_id]
    assert desk.session.scalar(select(func.count()).select_from(PayoutDestination).where(
        PayoutDestination.customer_id == customer_id(desk, "C1"), PayoutDestination.status == "approved")) == 1


def test_a_destination_staff_entered_takes_two_and_its_maker_cannot_approve(desk):  # type: ignore[no-untyped-def]
    entered = submit(desk, desk.staff1, "C2")
    assert (entered.approvals_required, entered.submitted_by_id) == (2, desk.staff1.user_id)
    refused(desk, PermissionDenied, lambda: approve(desk, desk.staff1, entered.id), "you made this change")
    approve(desk, desk.staff2, entered.id)
    refused(desk, PermissionDenied, lambda: approve(desk, desk.staff1, entered.id), "you made this change")
    approve(desk, desk.approver1, entered.id)
    assert fresh(desk, entered.id).status == "approved"
    # An approver who entered one cannot approve it either, even as the second.
    mine = submit(desk, desk.approver2, "C3")
    approve(desk, desk.staff1, mine.id)
    refused(desk, PermissionDenied, lambda: approve(desk, desk.approver2, mine.id), "you made this change")
    assert fresh(desk, mine.id).status == "pending"


@pytest.mark.parametrize(("changes", "field"), [
    ({"bank_code": "12"}, "bank_code"),
    ({"bank_code": "00a5"}, "bank_code"),
    ({"branch_code": "1234"}, "branch_code"),
    ({"branch_code": ""}, "branch_code"),
    ({"account_type": "checking"}, "account_type"),
    ({"account_number": "12345678"}, "account_number"),
    ({"account_number": "12-34"}, "account_number"),
    ({"holder_name": "John Smith 😀"}, "holder_kana"),
])
def test_invalid_accounts_are_refused_naming_the_field(desk, changes, field):  # type: ignore[no-untyped-def]
    error = refused(desk, ValidationError, lambda: submit(desk, desk.customer("C1"), "C1", **changes))
    assert error.field == field
    assert desk.session.scalar(select(func.count()).select_from(PayoutDestination)) == 0


def test_the_approved_account_again_is_refused(desk):  # type: ignore[no-untyped-def]
    first = submit(desk, desk.customer("C1"), "C1")
    approve(desk, desk.staff1, first.id)
    error = refused(desk, ValidationError, lambda: submit(desk, desk.customer("C1"), "C1", account_number=" 1234567 "))
    assert error.field == "account_number"


def test_only_the_customer_or_reviewers_submit(desk):  # type: ignore[no-untyped-def]
    refused(desk, NotFoundError, lambda: submit(desk, desk.customer("C1"), "C2"))
    refused(desk, PermissionDenied, lambda: submit(desk, REGULATOR, "C2"))
    pending = submit(desk, desk.customer("C2"), "C2")
    refused(desk, PermissionDenied, lambda: approve(desk, desk.customer("C2"), pending.id))
    refused(desk, PermissionDenied, lambda: approve(desk, REGULATOR, pending.id))
    refused(desk, PermissionDenied, lambda: approve(desk, Actor("cli", Role.STAFF), pending.id), "named login")
    refused(desk, NotFoundError, lambda: destinations.approve_destination(desk.session, desk.staff1, 999_999, 1))
    refused(desk, ConflictError, lambda: destinations.approve_destination(
        desk.session, desk.staff1, pending.id, pending.row_version + 5))


def test_a_newer_submission_supersedes_an_older_pending_one(desk):  # type: ignore[no-untyped-def]
    c1 = desk.customer("C1")
    approve(desk, desk.staff1, submit(desk, c1, "C1").id)
    older = submit(desk, c1, "C1", account_number="1111111")
    approve(desk, desk.staff1, older.id)  # first of two
    newer = submit(desk, c1, "C1", account_number="2222222")
    # Even through the same session, which still holds the older row as it was before the
    # newer submission superseded it with a set-based UPDATE.
    refused(desk, TransitionError, lambda: destinations.approve_destination(desk.session, desk.approver1, older.id, None),
            "superseded, not pending")
    assert fresh(desk, older.id).status == "superseded"
    assert destinations.pending_destination(desk.session, customer_id(desk, "C1")).id == newer.id
    assert approvals(desk, older.id) == [desk.staff1.user_id]
    # The newer one starts from no approvals.
    approve(desk, desk.staff1, newer.id)
    approve(desk, desk.approver1, newer.id)
    assert destinations.current_destination(desk.session, customer_id(desk, "C1")).account_number == "2222222"


def test_reject_needs_a_reason_and_tells_the_customer(desk):  # type: ignore[no-untyped-def]
    pending = submit(desk, desk.customer("C1"), "C1")
    error = refused(desk, ValidationError, lambda: destinations.reject_destination(
        desk.session, desk.staff1, pending.id, pending.row_version, "  "))
    assert error.field == "reason"
    before = audit_count(desk.session)
    destinations.reject_destination(desk.session, desk.staff1, pending.id, fresh(desk, pending.id).row_version,
                                    "name does not match")
    assert fresh(desk, pending.id).status == "rejected"
    assert [e.action for e in events_since(desk.session, before)] == ["destination.rejected"]
    notice = desk.session.scalar(select(Notice).where(Notice.kind == "destination.rejected"))
    assert json.loads(notice.params) == {"reason": "name does not match"}
    refused(desk, TransitionError, lambda: approve(desk, desk.staff1, pending.id))


def test_staff_views(desk):  # type: ignore[no-untyped-def]
    pending = submit(desk, desk.customer("C1"), "C1")
    approve(desk, desk.staff1, submit(desk, desk.customer("C2"), "C2").id)
    assert [d.id for d in destinations.pending_destinations(desk.session, REGULATOR)] == [pending.id]
    view = destinations.destination_for_staff(desk.session, REGULATOR, pending.id)
    assert view.destination.id == pending.id and view.approvals == []
    with pytest.raises(PermissionDenied):
        destinations.pending_destinations(desk.session, desk.customer("C1"))


# --- at the same time (PostgreSQL) ----------------------------------------------------------


def at_once(factory, calls):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(calls), timeout=30)
    outcomes: dict[int, str] = {}

    def run(i, call):  # type: ignore[no-untyped-def]
        with factory() as session:
            barrier.wait()
            try:
                call(session)
                outcomes[i] = "ok"
            except (PermissionDenied, ConflictError) as exc:
                outcomes[i] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001
                outcomes[i] = f"error: {exc!r}"

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return [outcomes[i] for i in range(len(calls))]


@pytest.mark.postgres
def test_two_submissions_at_once_leave_one_pending(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    with factory() as session:
        desk = Desk(session)
        c1, cid = desk.customer("C1"), customer_id(desk, "C1")
    for _round in range(3):
        outcomes = at_once(factory, [
            lambda s, n=n: destinations.submit_destination(s, c1, cid, **{**ACCOUNT, "account_number": n})
            for n in ("1111111", "2222222")])
        assert outcomes == ["ok", "ok"]
    with factory() as session:
        rows = session.execute(select(PayoutDestination.status, PayoutDestination.id)
                               .where(PayoutDestination.customer_id == cid).order_by(PayoutDestination.id)).all()
        assert [s for s, _i in rows] == ["superseded"] * 5 + ["pending"]


@pytest.mark.postgres
def test_two_staff_approving_a_change_at_once_cannot_make_two_eyes_of_one_role(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    with factory() as session:
        desk = Desk(session)
        entered = submit(desk, desk.approver2, "C1")  # staff-entered: needs two
        seen = entered.row_version
    outcomes = at_once(factory, [
        lambda s: destinations.approve_destination(s, desk.staff1, entered.id, seen),
        lambda s: destinations.approve_destination(s, desk.staff2, entered.id, seen)])
    assert sorted(o.split(":")[0] for o in outcomes) == ["PermissionDenied", "ok"], outcomes
    with factory() as session:
        assert session.get(PayoutDestination, entered.id).status == "pending"
        assert session.scalar(select(func.count()).select_from(DestinationApproval)) == 1
    outcomes = at_once(factory, [
        lambda s: destinations.approve_destination(s, desk.approver1, entered.id, seen),
        lambda s: destinations.approve_destination(s, desk.approver1, entered.id, seen)])
    assert outcomes.count("ok") == 1, outcomes
    assert any(o.startswith(("TransitionError", "ConflictError")) for o in outcomes), outcomes
    with factory() as session:
        assert session.get(PayoutDestination, entered.id).status == "approved"
        assert session.scalar(select(func.count()).select_from(DestinationApproval)) == 2
