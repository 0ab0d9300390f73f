"""Disbursements: payment instructions from committed runs, paid through a rail by jobs.

Instructions are created in the transaction that commits a run (or records an insurer's
payment), one per customer, source and destination, each with its own idempotency key. Work is
enqueued only after commit, and a sweeper re-enqueues whatever the database says is pending,
so a lost job or a flushed Redis delays a payment but never loses it; the rail honours the
idempotency key, so a repeated job never pays twice.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_events
from payouts.db.models import Disbursement, PayoutDestination
from payouts.db.types import utcnow
from payouts.domain.disbursements import DisbursementStatus, idempotency_key
from payouts.domain.roles import Actor


def destination_approved(session: Session, actor: Actor, destination: PayoutDestination) -> int:
    """A customer's newly approved account releases their held payments to it (inside the
    caller's transaction). Returns how many were released."""
    held = list(session.scalars(select(Disbursement.id).where(
        Disbursement.customer_id == destination.customer_id,
        Disbursement.status == DisbursementStatus.HELD.value).with_for_update()))
    now = utcnow()
    for disbursement_id in held:
        session.execute(update(Disbursement).where(Disbursement.id == disbursement_id).values(
            status=DisbursementStatus.PENDING.value, destination_id=destination.id,
            idempotency_key=idempotency_key(disbursement_id, destination.id), updated_at=now))
    record_events(session, actor, (
        ("disbursement.released", "disbursement", i,
         f"Payment #{i} released to approved destination #{destination.id}",
         {"status": [DisbursementStatus.HELD.value, DisbursementStatus.PENDING.value],
          "destination_id": destination.id}) for i in held))
    return len(held)
