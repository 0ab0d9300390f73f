"""Cursor-paged reads for the API: every list is keyed by an increasing id, so a page stays
right while rows are added and costs the same on page 1 and page 10,000.

Each function returns up to ``limit + 1`` rows; the caller shows ``limit`` and continues after
the last one shown. Role checks are the same as the pages' (back-office readers).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from payouts.db.models import (
    AllocationLine,
    AllocationRun,
    AuditCheckpoint,
    Claim,
    Customer,
    Disbursement,
    ExternalIncident,
    Incident,
    LossImport,
    ReferencePrice,
    TradingVolume,
    WalletSnapshot,
)
from payouts.domain.claims import ClaimStatus
from payouts.domain.disbursements import DisbursementStatus
from payouts.domain.errors import NotFoundError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, Actor
from payouts.services.access import require_role
from payouts.services.incidents import find_incident


def _read(actor: Actor, what: str) -> None:
    require_role(actor, BACK_OFFICE_READERS, f"read {what}")


def _page(query: Select[Any], key: Any, after: int | None, limit: int) -> Select[Any]:
    """``query`` in ``key`` order from just after ``after``: ``limit`` rows and one more, which
    tells the caller that another page follows."""
    if after is not None:
        query = query.where(key > after)
    return query.order_by(key).limit(limit + 1)


def incidents_page(session: Session, actor: Actor, after: int | None, limit: int) -> list[Incident]:
    _read(actor, "incidents")
    query = select(Incident)
    return list(session.scalars(_page(query, Incident.id, after, limit)))


def prices_of(session: Session, incident: Incident) -> list[ReferencePrice]:
    return list(session.scalars(select(ReferencePrice).where(ReferencePrice.incident_id == incident.id)
                                .order_by(ReferencePrice.asset_code)))


def imports_page(session: Session, actor: Actor, incident_ref: str, after: int | None, limit: int) -> list[LossImport]:
    _read(actor, "loss imports")
    incident = find_incident(session, incident_ref)
    query = select(LossImport).where(LossImport.incident_id == incident.id)
    return list(session.scalars(_page(query, LossImport.id, after, limit)))


def customers_page(session: Session, actor: Actor, after: int | None, limit: int) -> list[Customer]:
    _read(actor, "customers")
    query = select(Customer)
    return list(session.scalars(_page(query, Customer.id, after, limit)))


def customer(session: Session, actor: Actor, customer_ref: str) -> tuple[Customer, list[tuple[Claim, str]]]:
    """A customer and their claims (with each claim's incident reference)."""
    _read(actor, "customers")
    found = session.scalar(select(Customer).where(Customer.external_ref == customer_ref))
    if found is None:
        raise NotFoundError(f"no customer {customer_ref!r}")
    claims = [(c, ref) for c, ref in session.execute(
        select(Claim, Incident.ref).join(Incident, Incident.id == Claim.incident_id)
        .where(Claim.customer_id == found.id).order_by(Claim.id))]
    return found, claims


def _status(value: str | None, known: type, field: str) -> str | None:
    if not value:
        return None
    try:
        return str(known(value).value)
    except ValueError:
        raise ValidationError(field, f"unknown state {value!r}") from None


def claims_page(session: Session, actor: Actor, *, incident_ref: str | None, status: str | None,
                customer_ref: str | None, after: int | None, limit: int) -> list[tuple[Claim, str, str]]:
    """(claim, incident ref, customer ref) by claim id."""
    _read(actor, "claims")
    wanted = _status(status, ClaimStatus, "state")
    query = (select(Claim, Incident.ref, Customer.external_ref)
             .join(Incident, Incident.id == Claim.incident_id)
             .join(Customer, Customer.id == Claim.customer_id))
    if incident_ref:
        query = query.where(Incident.ref == incident_ref)
    if customer_ref:
        query = query.where(Customer.external_ref == customer_ref)
    if wanted:
        query = query.where(Claim.status == wanted)
    return [(c, i, r) for c, i, r in session.execute(_page(query, Claim.id, after, limit))]


def runs_page(session: Session, actor: Actor, incident_ref: str, after: int | None, limit: int) -> list[AllocationRun]:
    _read(actor, "allocation runs")
    incident = find_incident(session, incident_ref)
    query = select(AllocationRun).where(AllocationRun.incident_id == incident.id)
    return list(session.scalars(_page(query, AllocationRun.id, after, limit)))


def lines_page(session: Session, actor: Actor, run: AllocationRun, after: int | None,
               limit: int) -> list[tuple[AllocationLine, str]]:
    """A run's lines by customer id, with each customer's reference."""
    _read(actor, "allocation runs")
    query = (select(AllocationLine, Customer.external_ref).join(Customer, Customer.id == AllocationLine.customer_id)
             .where(AllocationLine.run_id == run.id))
    return [(line, ref) for line, ref in session.execute(_page(query, AllocationLine.customer_id, after, limit))]


def disbursements_page(session: Session, actor: Actor, *, incident_ref: str | None, status: str | None,
                       run_id: int | None, after: int | None, limit: int) -> list[tuple[Disbursement, str, str]]:
    """(payment, incident ref, customer ref) by payment id."""
    _read(actor, "disbursements")
    wanted = _status(status, DisbursementStatus, "state")
    query = (select(Disbursement, Incident.ref, Customer.external_ref)
             .join(Incident, Incident.id == Disbursement.incident_id)
             .join(Customer, Customer.id == Disbursement.customer_id))
    if incident_ref:
        query = query.where(Incident.ref == incident_ref)
    if wanted:
        query = query.where(Disbursement.status == wanted)
    if run_id is not None:
        query = query.where(Disbursement.run_id == run_id)
    return [(d, i, r) for d, i, r in session.execute(_page(query, Disbursement.id, after, limit))]


def disbursement(session: Session, actor: Actor, disbursement_id: int) -> tuple[Disbursement, str, str]:
    _read(actor, "disbursements")
    row = session.execute(
        select(Disbursement, Incident.ref, Customer.external_ref)
        .join(Incident, Incident.id == Disbursement.incident_id)
        .join(Customer, Customer.id == Disbursement.customer_id)
        .where(Disbursement.id == disbursement_id)).first()
    if row is None:
        raise NotFoundError(f"no disbursement #{disbursement_id}")
    return row[0], row[1], row[2]


def checkpoints_page(session: Session, actor: Actor, after: int | None, limit: int) -> list[AuditCheckpoint]:
    _read(actor, "audit checkpoints")
    query = select(AuditCheckpoint)
    return list(session.scalars(_page(query, AuditCheckpoint.id, after, limit)))


def adequacy_inputs_page(session: Session, actor: Actor, kind: str, after: int | None, limit: int) -> list:  # type: ignore[type-arg]
    """Trading volumes, wallet snapshots or the incident history, as recorded, by id."""
    _read(actor, "reserve adequacy inputs")
    model = {"volumes": TradingVolume, "snapshots": WalletSnapshot, "history": ExternalIncident}[kind]
    query = select(model)
    return list(session.scalars(_page(query, model.id, after, limit)))
