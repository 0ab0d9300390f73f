"""Payout destinations: the Japanese bank account a customer is paid into.

A customer proposes an account; staff approve it before any money goes there. The first
account needs one approval; any change of an approved account (or an account staff entered for
the customer) needs two different people, the second an approver, and never the person who made
the change: a hijacked login or an insider redirecting payouts is the classic fraud here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from payouts.audit.log import record_event
from payouts.db.models import Customer, DestinationApproval, PayoutDestination
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.bank_accounts import masked, parse_bank_account
from payouts.domain.claims import check_approval
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, TransitionError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, Actor, Role
from payouts.services.access import require_role
from payouts.services.notices import notify

REVIEWERS = frozenset({Role.STAFF, Role.APPROVER})


@dataclass(frozen=True)
class DestinationView:
    destination: PayoutDestination
    approvals: list[DestinationApproval]


def _audit_fields(d: PayoutDestination) -> dict[str, str]:
    # The account number is masked even in the audit trail, which regulators export.
    return {"bank_code": d.bank_code, "branch_code": d.branch_code, "account_type": d.account_type,
            "account_number": "****" + d.account_number[-3:], "holder_kana": d.holder_kana}


def current_destination(session: Session, customer_id: int) -> PayoutDestination | None:
    return session.scalar(select(PayoutDestination).where(
        PayoutDestination.customer_id == customer_id, PayoutDestination.status == "approved"))


def badge_columns(customer_id: int) -> tuple[ColumnElement[bool], ColumnElement[bool], ColumnElement[int]]:
    """What every portal page shows besides its own content, as columns to select: whether the
    customer has an approved account, a pending one, and how many notices are unread."""
    from payouts.db.models import Notice

    approved = select(PayoutDestination.id).where(PayoutDestination.customer_id == customer_id,
                                                  PayoutDestination.status == "approved").exists()
    pending = select(PayoutDestination.id).where(PayoutDestination.customer_id == customer_id,
                                                 PayoutDestination.status == "pending").exists()
    unread = select(func.count()).select_from(Notice).where(
        Notice.customer_id == customer_id, Notice.read_at.is_(None)).scalar_subquery()
    return approved, pending, unread


def badges(has_approved: bool, has_pending: bool, unread: int | None) -> tuple[str, int]:
    """The account's state (approved, pending or missing) and the unread count, from
    badge_columns' values."""
    return ("approved" if has_approved else "pending" if has_pending else "missing"), int(unread or 0)


def portal_badges(session: Session, customer_id: int) -> tuple[str, int]:
    """The account's state and the count of unread notices, in one query: every portal page
    shows both."""
    return badges(*session.execute(select(*badge_columns(customer_id))).one())


def destination_status(session: Session, customer_id: int) -> str:
    """approved, pending or missing, in one query: whether payouts have somewhere to go."""
    found = set(session.scalars(select(PayoutDestination.status).where(
        PayoutDestination.customer_id == customer_id,
        PayoutDestination.status.in_(("approved", "pending"))).distinct()))
    return "approved" if "approved" in found else "pending" if "pending" in found else "missing"


def pending_destination(session: Session, customer_id: int) -> PayoutDestination | None:
    return session.scalar(select(PayoutDestination).where(
        PayoutDestination.customer_id == customer_id, PayoutDestination.status == "pending")
        .order_by(PayoutDestination.id.desc()).limit(1))


def destinations_of(session: Session, customer_id: int) -> list[PayoutDestination]:
    return list(session.scalars(select(PayoutDestination).where(PayoutDestination.customer_id == customer_id)
                                .order_by(PayoutDestination.id.desc())))


def submit_destination(session: Session, actor: Actor, customer_id: int, *, bank_code: str, branch_code: str,
                       account_type: str, account_number: str, holder_name: str) -> PayoutDestination:
    """Propose an account for ``customer_id``: by the customer themselves (the caller passes
    the customer id of the login) or by staff fixing a failed payment."""
    if actor.role is Role.CUSTOMER:
        from payouts.services.claims import customer_id_of

        if customer_id_of(session, actor) != customer_id:
            raise NotFoundError("no such customer")
    else:
        require_role(actor, REVIEWERS, "enter payout destinations")
    account = parse_bank_account(bank_code=bank_code, branch_code=branch_code, account_type=account_type,
                                 account_number=account_number, holder_name=holder_name)
    with transaction(session):
        customer = session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise NotFoundError("no such customer")
        had_approved = session.scalar(select(func.count()).select_from(PayoutDestination).where(
            PayoutDestination.customer_id == customer_id,
            PayoutDestination.status.in_(("approved", "superseded")))) or 0
        current = current_destination(session, customer_id)
        if current is not None and (current.bank_code, current.branch_code, current.account_type,
                                    current.account_number, current.holder_kana) == (
                account.bank_code, account.branch_code, account.account_type, account.account_number,
                account.holder_kana):
            raise ValidationError("account_number", "this is already your approved account")
        # A newer proposal replaces an older one still waiting.
        session.execute(update(PayoutDestination).where(
            PayoutDestination.customer_id == customer_id, PayoutDestination.status == "pending")
            .values(status="superseded", decided_at=utcnow(), row_version=PayoutDestination.row_version + 1)
            .execution_options(synchronize_session=False))
        required = 2 if had_approved or actor.role is not Role.CUSTOMER else 1
        destination = PayoutDestination(
            customer_id=customer_id, bank_code=account.bank_code, branch_code=account.branch_code,
            account_type=account.account_type, account_number=account.account_number,
            holder_kana=account.holder_kana, status="pending", approvals_required=required,
            submitted_by_id=actor.user_id, submitted_by_label=actor.label, submitted_at=utcnow())
        session.add(destination)
        session.flush()
        record_event(session, actor, "destination.submitted", "payout_destination", destination.id,
                     f"{actor.label} proposed payout account {masked(account)} for customer {customer.external_ref}",
                     {"customer": customer.external_ref, "approvals_required": required,
                      "change_of_approved": bool(had_approved), **_audit_fields(destination)})
    return destination


def _load(session: Session, destination_id: int, row_version: int | None) -> PayoutDestination:
    # populate_existing: the session may hold an older copy (submit_destination supersedes
    # pending rows with a set-based UPDATE); decide on what the database holds.
    destination = session.scalar(select(PayoutDestination).where(PayoutDestination.id == destination_id)
                                 .with_for_update().execution_options(populate_existing=True))
    if destination is None:
        raise NotFoundError(f"no payout destination #{destination_id}")
    if row_version is not None and destination.row_version != row_version:
        raise ConflictError(f"payout destination #{destination_id} changed since you opened it; reload")
    if destination.status != "pending":
        raise TransitionError(f"payout destination #{destination_id} is {destination.status}, not pending")
    return destination


def _flush(session: Session, destination: PayoutDestination) -> None:
    destination_id = destination.id  # read now: after a failed flush the object cannot be read any more
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError(f"payout destination #{destination_id} was changed at the same time; reload") from None


def approve_destination(session: Session, actor: Actor, destination_id: int, row_version: int) -> PayoutDestination:
    require_role(actor, REVIEWERS, "approve payout destinations")
    if actor.user_id is None:
        raise PermissionDenied("an approval is recorded against a named login; act as a staff or approver user")
    with transaction(session):
        destination = _load(session, destination_id, row_version)
        earlier = set(session.scalars(select(DestinationApproval.user_id)
                                      .where(DestinationApproval.destination_id == destination.id)))
        complete = check_approval(approver_id=actor.user_id, approver_role=actor.role,
                                  maker_id=destination.submitted_by_id, earlier_approver_ids=earlier,
                                  required=destination.approvals_required)
        session.add(DestinationApproval(destination_id=destination.id, user_id=actor.user_id, user_label=actor.label))
        if complete:
            previous = current_destination(session, destination.customer_id)
            if previous is not None:
                previous.status = "superseded"
                previous.decided_at = utcnow()
            destination.status = "approved"
            destination.decided_at = utcnow()
        _flush(session, destination)
        record_event(session, actor, "destination.approved" if complete else "destination.approval_recorded",
                     "payout_destination", destination.id,
                     f"{actor.label} approved payout destination #{destination.id}"
                     + ("" if complete else " (first of two approvals)"),
                     {"status": ["pending", destination.status], "approvals": len(earlier) + 1,
                      "approvals_required": destination.approvals_required})
        if complete:
            notify(session, destination.customer_id, None, "destination.approved",
                   {"account": "****" + destination.account_number[-3:]})
            from payouts.services.disbursements import destination_approved

            destination_approved(session, actor, destination)
    return destination


def reject_destination(session: Session, actor: Actor, destination_id: int, row_version: int,
                       reason: str) -> PayoutDestination:
    require_role(actor, REVIEWERS, "reject payout destinations")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", "is required")
    with transaction(session):
        destination = _load(session, destination_id, row_version)
        destination.status = "rejected"
        destination.decided_at = utcnow()
        destination.decision_reason = reason[:1000]
        _flush(session, destination)
        record_event(session, actor, "destination.rejected", "payout_destination", destination.id,
                     f"{actor.label} rejected payout destination #{destination.id}",
                     {"status": ["pending", "rejected"], "reason": reason[:1000]})
        notify(session, destination.customer_id, None, "destination.rejected", {"reason": reason[:1000]})
    return destination


def destination_for_staff(session: Session, actor: Actor, destination_id: int) -> DestinationView:
    require_role(actor, BACK_OFFICE_READERS, "read payout destinations")
    destination = session.get(PayoutDestination, destination_id)
    if destination is None:
        raise NotFoundError(f"no payout destination #{destination_id}")
    approvals = list(session.scalars(select(DestinationApproval).where(
        DestinationApproval.destination_id == destination_id).order_by(DestinationApproval.id)))
    return DestinationView(destination, approvals)


def pending_destinations(session: Session, actor: Actor, limit: int = 200) -> list[PayoutDestination]:
    require_role(actor, BACK_OFFICE_READERS, "read payout destinations")
    return list(session.scalars(select(PayoutDestination).where(PayoutDestination.status == "pending")
                                .order_by(PayoutDestination.submitted_at).limit(limit)))


# --- reading for the back office (added with the staff destination pages) ------------------


@dataclass(frozen=True)
class DestinationRow:
    """A destination with what a reviewer needs beside it: whose it is and how far approved."""

    destination: PayoutDestination
    customer_ref: str
    customer_name: str
    approvals: int


def _rows(session: Session, destinations: list[PayoutDestination]) -> list[DestinationRow]:
    if not destinations:
        return []
    counts = {i: int(n) for i, n in session.execute(
        select(DestinationApproval.destination_id, func.count())
        .where(DestinationApproval.destination_id.in_([d.id for d in destinations]))
        .group_by(DestinationApproval.destination_id))}
    names = {i: (ref, name) for i, ref, name in session.execute(
        select(Customer.id, Customer.external_ref, Customer.name)
        .where(Customer.id.in_({d.customer_id for d in destinations})))}
    return [DestinationRow(d, *names.get(d.customer_id, ("", "")), counts.get(d.id, 0)) for d in destinations]


def pending_for_review(session: Session, actor: Actor, limit: int = 200) -> list[DestinationRow]:
    """pending_destinations with each one's customer and approvals so far."""
    return _rows(session, pending_destinations(session, actor, limit))


def destination_rows_of(session: Session, actor: Actor, customer_id: int) -> list[DestinationRow]:
    """Every destination of one customer, newest first, with approvals so far."""
    require_role(actor, BACK_OFFICE_READERS, "read payout destinations")
    return _rows(session, destinations_of(session, customer_id))


def destination_row(session: Session, actor: Actor, destination_id: int) -> DestinationRow:
    view = destination_for_staff(session, actor, destination_id)
    return _rows(session, [view.destination])[0]


def customer_by_ref(session: Session, actor: Actor, customer_ref: str) -> Customer:
    """The customer with this exchange reference, for staff entering a payout account."""
    require_role(actor, BACK_OFFICE_READERS, "read customers")
    customer = session.scalar(select(Customer).where(Customer.external_ref == customer_ref))
    if customer is None:
        raise NotFoundError(f"no customer {customer_ref!r}")
    return customer
