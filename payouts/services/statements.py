"""Payout statements: what a customer was paid, payment by payment, for their records and tax.

A customer sees only their own payments; another customer's payment is reported as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.db.models import Claim, Customer, Disbursement, Incident, InsuranceLayer, InsurancePolicy, PayoutDestination
from payouts.domain.disbursements import DisbursementStatus
from payouts.domain.errors import NotFoundError
from payouts.domain.roles import Actor
from payouts.services.claims import customer_id_of


@dataclass(frozen=True)
class Statement:
    payment: Disbursement
    incident: Incident
    customer: Customer
    claim: Claim | None
    destination: PayoutDestination
    #: "reserve", "recovery", or the insurer's name for a layer.
    payer: str


def claim_payments(session: Session, actor: Actor, claim: Claim) -> list[Disbursement]:
    """The payments of the acting customer's claim (its incident), oldest first."""
    if claim.customer_id != customer_id_of(session, actor):
        raise NotFoundError(f"no claim #{claim.id}")
    return list(session.scalars(select(Disbursement).where(
        Disbursement.customer_id == claim.customer_id, Disbursement.incident_id == claim.incident_id)
        .order_by(Disbursement.id)))


def statement(session: Session, actor: Actor, payment_id: int) -> Statement:
    """The statement of one of the acting customer's payments, once it has been paid."""
    customer_id = customer_id_of(session, actor)
    payment = session.scalar(select(Disbursement).where(
        Disbursement.id == payment_id, Disbursement.customer_id == customer_id,
        Disbursement.status == DisbursementStatus.PAID.value))
    if payment is None or payment.destination_id is None:
        raise NotFoundError(f"no paid payment #{payment_id}")
    incident = session.get(Incident, payment.incident_id)
    customer = session.get(Customer, customer_id)
    destination = session.get(PayoutDestination, payment.destination_id)
    assert incident is not None and customer is not None and destination is not None
    claim = session.scalar(select(Claim).where(Claim.incident_id == incident.id, Claim.customer_id == customer_id))
    insurer = session.scalar(select(InsurancePolicy.insurer).join(InsuranceLayer, InsuranceLayer.policy_id ==
                                                                  InsurancePolicy.id)
                             .where(InsuranceLayer.code == payment.source_id))
    return Statement(payment, incident, customer, claim, destination, insurer or payment.source_id)
