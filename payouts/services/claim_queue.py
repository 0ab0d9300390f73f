"""The staff review queue: claims by what needs a person, a page at a time.

Filters follow the questions reviewers ask: what is disputed, whose payout account changed,
what is above the four-eyes threshold, what waits for a second approval. Pages are keyed by
claim id (a cursor), so a queue of a million claims pages as fast as one of ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payouts.db.models import Claim, Customer, Incident, PayoutDestination
from payouts.domain.claims import ClaimStatus, FourEyesPolicy
from payouts.domain.errors import ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, Actor
from payouts.services.access import require_role

PAGE_SIZE = 50


class QueueFilter(str, Enum):
    ALL = "all"
    NEEDS_ACTION = "needs_action"  # accepted, disputed or waiting for a second approval
    DISPUTED = "disputed"
    DESTINATION_CHANGED = "destination_changed"
    ABOVE_THRESHOLD = "above_threshold"
    SECOND_APPROVAL = "second_approval"


@dataclass(frozen=True)
class QueueRow:
    claim: Claim
    customer_ref: str
    customer_name: str
    incident_ref: str
    destination_pending: bool


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: int | None


def parse_filter(value: str | None) -> QueueFilter:
    try:
        return QueueFilter(value or QueueFilter.NEEDS_ACTION.value)
    except ValueError:
        raise ValidationError("filter", f"unknown filter {value!r}") from None


def review_queue(session: Session, actor: Actor, policy: FourEyesPolicy, *, which: QueueFilter,
                 incident_ref: str | None = None, status: str | None = None, after: int | None = None,
                 limit: int = PAGE_SIZE) -> QueuePage:
    require_role(actor, BACK_OFFICE_READERS, "read the review queue")
    pending_destination = (select(PayoutDestination.id)
                           .where(PayoutDestination.customer_id == Claim.customer_id,
                                  PayoutDestination.status == "pending").exists())
    query = (select(Claim, Customer.external_ref, Customer.name, Incident.ref, pending_destination)
             .join(Customer, Customer.id == Claim.customer_id)
             .join(Incident, Incident.id == Claim.incident_id))
    if which is QueueFilter.NEEDS_ACTION:
        query = query.where(Claim.status.in_((ClaimStatus.ACCEPTED.value, ClaimStatus.DISPUTED.value,
                                              ClaimStatus.UNDER_REVIEW.value)))
    elif which is QueueFilter.DISPUTED:
        query = query.where(Claim.status == ClaimStatus.DISPUTED.value)
    elif which is QueueFilter.DESTINATION_CHANGED:
        query = query.where(pending_destination)
    elif which is QueueFilter.ABOVE_THRESHOLD:
        query = query.where(Claim.total_jpy > policy.threshold_jpy)
    elif which is QueueFilter.SECOND_APPROVAL:
        query = query.where(Claim.status == ClaimStatus.UNDER_REVIEW.value)
    if status:
        try:
            query = query.where(Claim.status == ClaimStatus(status).value)
        except ValueError:
            raise ValidationError("status", f"unknown status {status!r}") from None
    if incident_ref:
        query = query.where(Incident.ref == incident_ref)
    if after is not None:
        query = query.where(Claim.id > after)
    rows = session.execute(query.order_by(Claim.id).limit(limit + 1)).all()
    page = [QueueRow(c, ref, name, inc, bool(dest)) for c, ref, name, inc, dest in rows[:limit]]
    return QueuePage(page, page[-1].claim.id if len(rows) > limit else None)


def claim_counts(session: Session, actor: Actor, incident_id: int) -> dict[str, int]:
    """Claims of an incident by state (for the incident page and the regulator's report)."""
    require_role(actor, BACK_OFFICE_READERS, "read claims")
    rows = session.execute(select(Claim.status, func.count()).where(Claim.incident_id == incident_id)
                           .group_by(Claim.status))
    counts = {s.value: 0 for s in ClaimStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts
