"""Incidents and their reference prices: record, price, list, read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db.models import AllocationRun, Asset, Incident, LossImport, LossPosition, ReferencePrice
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import ConflictError, NotFoundError, ValidationError
from payouts.domain.incidents import IncidentStatus, check_incident_ref, check_incident_type
from payouts.domain.money import canonical_decimal, parse_price
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.services.access import require_role

MAX_TITLE = 200
MAX_SOURCE = 500


@dataclass(frozen=True)
class IncidentSummary:
    incident: Incident
    customers: int
    positions: int
    imports: int


def record_incident(
    session: Session,
    actor: Actor,
    *,
    ref: str,
    title: str,
    incident_type: str,
    occurred_at: dt.datetime,
    discovered_at: dt.datetime,
    description: str = "",
) -> Incident:
    require_role(actor, STAFF_WRITERS, "record incidents")
    check_incident_ref(ref)
    kind = check_incident_type(incident_type)
    title = (title or "").strip()
    if not title:
        raise ValidationError("title", "is required")
    if len(title) > MAX_TITLE:
        raise ValidationError("title", f"must be at most {MAX_TITLE} characters")
    for name, value in (("occurred_at", occurred_at), ("discovered_at", discovered_at)):
        if value.tzinfo is None:
            raise ValidationError(name, "must include a time zone")
        if value > utcnow() + dt.timedelta(minutes=5):
            raise ValidationError(name, "cannot be in the future")
    if discovered_at < occurred_at:
        raise ValidationError("discovered_at", "cannot be before occurred_at")
    with transaction(session):
        if session.scalar(select(Incident.id).where(Incident.ref == ref)) is not None:
            raise ValidationError("ref", f"an incident {ref!r} already exists")
        incident = Incident(
            ref=ref,
            title=title,
            incident_type=kind.value,
            status=IncidentStatus.RECORDED.value,
            occurred_at=occurred_at,
            discovered_at=discovered_at,
            description=(description or "").strip(),
            created_by_id=actor.user_id,
        )
        session.add(incident)
        session.flush()
        record_event(
            session,
            actor,
            "incident.recorded",
            "incident",
            incident.ref,
            f"Incident {ref} ({kind.value}) recorded: {title}",
            {
                "ref": [None, ref],
                "title": [None, title],
                "incident_type": [None, kind.value],
                "occurred_at": [None, occurred_at.isoformat()],
                "discovered_at": [None, discovered_at.isoformat()],
            },
        )
    return incident


#: Advisory-lock namespace of an incident's claims ("clms"); the second key is the incident id.
_CLAIMS_LOCK = 0x636C6D73


def hold_claims_still(session: Session, incident_id: int) -> None:
    """Wait for the incident's claim moves under way, and keep new ones waiting until this
    transaction ends (PostgreSQL; SQLite has a single writer anyway). Committing an
    allocation takes it, so it pays the claims as the moves left them."""
    _claims_lock(session, func.pg_advisory_xact_lock, incident_id)


def claim_move_under_way(session: Session, incident_id: int | ColumnElement[int]) -> None:
    """The shared side of hold_claims_still, for one claim move: many at once, never during a
    commit. An advisory lock, not a share lock on the incident's row, which would rewrite the
    row's header for every move and pile up on the busiest row of launch day. ``incident_id``
    may be a scalar subquery; when it finds no incident, nothing is locked."""
    _claims_lock(session, func.pg_advisory_xact_lock_shared, incident_id)


def _claims_lock(session: Session, lock: Any, incident_id: int | ColumnElement[int]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # The two-key form takes two int4 (an incident's bigint id fits: incidents are few).
        session.execute(select(lock(_CLAIMS_LOCK, cast(incident_id, Integer))))


def ensure_not_allocated(session: Session, incident: Incident, what: str) -> None:
    """Once an allocation is committed, the inputs it was computed from are frozen."""
    run_id = session.scalar(select(AllocationRun.id).where(AllocationRun.incident_id == incident.id).limit(1))
    if run_id is not None:
        raise ConflictError(
            f"incident {incident.ref} has a committed allocation (run #{run_id}); its {what} can no longer change"
        )


def ensure_claims_not_open(incident: Incident, what: str) -> None:
    """Customers see and accept claims valued from the prices and the imported ledger, so
    once claims are open those inputs are frozen; corrections are claim adjustments."""
    if incident.status != IncidentStatus.RECORDED.value:
        raise ConflictError(
            f"incident {incident.ref} has its claims open; its {what} can no longer change"
            " (adjust individual claims instead)")


def find_incident(session: Session, ref: str, *, lock: bool = False) -> Incident:
    """The incident with this reference; ``lock`` takes its row lock for the transaction, which
    every change to the incident's inputs or allocation takes first, so they serialise."""
    query = select(Incident).where(Incident.ref == ref)
    if lock:
        query = query.with_for_update()
    incident = session.scalar(query)
    if incident is None:
        raise NotFoundError(f"no incident {ref!r}")
    return incident


def get_incident(session: Session, actor: Actor, ref: str) -> Incident:
    require_role(actor, BACK_OFFICE_READERS, "read incidents")
    return find_incident(session, ref)


def list_incidents(session: Session, actor: Actor) -> list[IncidentSummary]:
    require_role(actor, BACK_OFFICE_READERS, "read incidents")
    positions = (
        select(
            LossPosition.incident_id,
            func.count().label("positions"),
            func.count(func.distinct(LossPosition.customer_id)).label("customers"),
        )
        .group_by(LossPosition.incident_id)
        .subquery()
    )
    imports = (
        select(LossImport.incident_id, func.count().label("imports"))
        .group_by(LossImport.incident_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Incident,
            func.coalesce(positions.c.customers, 0),
            func.coalesce(positions.c.positions, 0),
            func.coalesce(imports.c.imports, 0),
        )
        .outerjoin(positions, positions.c.incident_id == Incident.id)
        .outerjoin(imports, imports.c.incident_id == Incident.id)
        .order_by(Incident.occurred_at.desc(), Incident.id.desc())
    ).all()
    return [IncidentSummary(i, c, p, n) for i, c, p, n in rows]


def summarize_incident(session: Session, actor: Actor, incident: Incident) -> IncidentSummary:
    require_role(actor, BACK_OFFICE_READERS, "read incidents")
    customers, positions = session.execute(
        select(func.count(func.distinct(LossPosition.customer_id)), func.count()).where(
            LossPosition.incident_id == incident.id
        )
    ).one()
    imports = session.scalar(
        select(func.count()).select_from(LossImport).where(LossImport.incident_id == incident.id)
    )
    return IncidentSummary(incident, customers, positions, imports or 0)


def list_imports(session: Session, actor: Actor, incident: Incident) -> list[LossImport]:
    require_role(actor, BACK_OFFICE_READERS, "read imports")
    return list(
        session.scalars(
            select(LossImport)
            .where(LossImport.incident_id == incident.id)
            .order_by(LossImport.id.desc())
        )
    )


def get_import(session: Session, actor: Actor, incident: Incident, import_id: int) -> LossImport:
    require_role(actor, BACK_OFFICE_READERS, "read imports")
    found = session.scalar(
        select(LossImport).where(LossImport.id == import_id, LossImport.incident_id == incident.id)
    )
    if found is None:
        raise NotFoundError(f"no import {import_id} in incident {incident.ref}")
    return found


def list_assets(session: Session) -> list[Asset]:
    return list(session.scalars(select(Asset).order_by(Asset.code)))


def asset_totals(session: Session, actor: Actor, incident: Incident) -> list[tuple[str, int, int]]:
    """(asset, customers, total minor units) of the incident's losses, per asset."""
    require_role(actor, BACK_OFFICE_READERS, "read incidents")
    rows = session.execute(
        select(LossPosition.asset_code, LossPosition.amount_minor).where(
            LossPosition.incident_id == incident.id
        )
    )
    # Summed in Python: SQLite keeps quantities as text, and exactness beats a SUM() here.
    totals: dict[str, list[int]] = {}
    for code, amount in rows:
        entry = totals.setdefault(code, [0, 0])
        entry[0] += 1
        entry[1] += amount
    return [(code, n, total) for code, (n, total) in sorted(totals.items())]


def set_reference_price(
    session: Session, actor: Actor, *, incident_ref: str, asset_code: str, price: str, source: str
) -> ReferencePrice:
    """Fix (or correct) the yen price of one asset for an incident, with where it came from."""
    require_role(actor, STAFF_WRITERS, "set reference prices")
    value: Decimal = parse_price(price, field="price")
    source = (source or "").strip()
    if not source:
        raise ValidationError("source", "is required: say how the price was fixed")
    if len(source) > MAX_SOURCE:
        raise ValidationError("source", f"must be at most {MAX_SOURCE} characters")
    with transaction(session):
        incident = find_incident(session, incident_ref, lock=True)
        ensure_not_allocated(session, incident, "reference prices")
        ensure_claims_not_open(incident, "reference prices")
        asset = session.get(Asset, asset_code)
        if asset is None:
            raise ValidationError("asset", f"unknown asset {asset_code!r}")
        existing = session.scalar(
            select(ReferencePrice).where(
                ReferencePrice.incident_id == incident.id, ReferencePrice.asset_code == asset_code
            )
        )
        before = None
        if existing is None:
            existing = ReferencePrice(incident_id=incident.id, asset_code=asset_code)
            session.add(existing)
        else:
            before = {"price_jpy": canonical_decimal(existing.price_jpy), "source": existing.source}
        existing.price_jpy = value
        existing.source = source
        existing.set_by_id = actor.user_id
        existing.set_by_label = actor.label
        existing.set_at = utcnow()
        session.flush()
        after = {"price_jpy": canonical_decimal(value), "source": source}
        record_event(
            session,
            actor,
            "price.set" if before is None else "price.changed",
            "incident",
            incident.ref,
            f"Reference price of {asset_code} for {incident.ref}: ¥{after['price_jpy']} ({source})",
            {
                "asset": asset_code,
                **{k: [before[k] if before else None, after[k]] for k in after},
            },
        )
    return existing
