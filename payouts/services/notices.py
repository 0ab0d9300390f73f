"""Notices to customers: written with the change they describe, read inside the portal only.

Nothing here sends e-mail: earlier payouts taught customers to click links in messages, and
phishers followed. A notice says what happened; the customer acts by logging in themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session

from payouts.audit.chain import canonical_json
from payouts.db.models import Claim, Notice
from payouts.db.session import transaction
from payouts.db.types import UTCDateTime, utcnow
from payouts.domain.roles import Actor, Role
from payouts.services.access import require_role

#: The kinds the portal knows how to word (payouts/web/portal/notices.py).
KINDS = frozenset({
    "claim.adjusted", "claim.approved", "claim.rejected", "claim.information_requested",
    "claim.paid", "destination.approved", "destination.rejected", "payment.sent", "payment.delayed",
    "payment.failed",
})


def notify(session: Session, customer_id: int, claim_id: int | None, kind: str,
           params: dict[str, Any] | None = None) -> None:
    """Leave a notice for a customer inside the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    session.add(Notice(customer_id=customer_id, claim_id=claim_id, kind=kind,
                       params=canonical_json(params or {}), created_at=utcnow()))


def notify_many(session: Session, incident_id: int, claim_ids: Iterable[int], kind: str) -> None:
    """The same notice for many claims of one incident (a bulk approval), set-based."""
    ids = list(claim_ids)
    now = utcnow()
    for start in range(0, len(ids), 10_000):
        chunk = ids[start:start + 10_000]
        session.execute(insert(Notice).from_select(
            ["customer_id", "claim_id", "kind", "params", "created_at"],
            select(Claim.customer_id, Claim.id, literal(kind), literal("{}"), literal(now, UTCDateTime))
            .where(Claim.id.in_(chunk), Claim.incident_id == incident_id)))


def my_notices(session: Session, actor: Actor, customer_id: int, limit: int = 50) -> list[Notice]:
    require_role(actor, {Role.CUSTOMER}, "read notices")
    return list(session.scalars(select(Notice).where(Notice.customer_id == customer_id)
                                .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit)))


def unread_count(session: Session, customer_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Notice).where(
        Notice.customer_id == customer_id, Notice.read_at.is_(None))) or 0)


def mark_all_read(session: Session, actor: Actor, customer_id: int) -> None:
    """Reading a notice is not a state change of the claim, so it is not an audit event."""
    require_role(actor, {Role.CUSTOMER}, "read notices")
    with transaction(session):
        session.execute(update(Notice).where(Notice.customer_id == customer_id, Notice.read_at.is_(None))
                        .values(read_at=utcnow()))
