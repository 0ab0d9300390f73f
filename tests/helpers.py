"""Test shortcuts shared by several test modules.

approve_all_claims stands in for customers accepting and staff approving, for tests about what
comes after approval (allocation, disbursement). It writes the claim states directly: those
moves have tests of their own (tests/integration/test_claims.py).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.db.models import Claim, Incident
from payouts.domain.roles import Actor
from payouts.services import claims


def approve_all_claims(session: Session, actor: Actor, incident_ref: str) -> int:
    """Open the incident's claims (if not yet) and mark every one approved."""
    incident = session.scalar(select(Incident).where(Incident.ref == incident_ref))
    assert incident is not None
    if incident.status == "recorded":
        claims.open_claims(session, actor, incident_ref)
    result = session.execute(update(Claim).where(Claim.incident_id == incident.id,
                                                 Claim.status.in_(("open", "accepted", "under_review")))
                             .values(status="approved"))
    session.commit()
    return int(result.rowcount or 0)
