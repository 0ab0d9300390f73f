"""Claims: the states a claim moves through, who may move it, and the four-eyes rule.

A claim starts open with the positions the exchange's ledger holds. The customer accepts it,
or disputes it; staff approve, reject, ask for information, or adjust the positions (a new
version the customer must accept again, which voids every earlier approval). Above a
threshold two different people approve, the second an approver; nobody approves a version they
made. Payment marks it paid. Every move is checked here; services only carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from payouts.domain.errors import PermissionDenied, TransitionError
from payouts.domain.roles import Role


class ClaimStatus(str, Enum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DISPUTED = "disputed"
    NEEDS_INFORMATION = "needs_information"
    UNDER_REVIEW = "under_review"  # accepted, approved once, waiting for the second approval
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    PAID = "paid"


class ClaimAction(str, Enum):
    ACCEPT = "accept"
    DISPUTE = "dispute"
    WITHDRAW = "withdraw"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_INFORMATION = "request_information"
    ADJUST = "adjust"
    MARK_PAID = "mark_paid"


S, A = ClaimStatus, ClaimAction
CUSTOMER_ACTIONS = frozenset({A.ACCEPT, A.DISPUTE, A.WITHDRAW})
STAFF_ACTIONS = frozenset({A.APPROVE, A.REJECT, A.REQUEST_INFORMATION, A.ADJUST})

#: Where each action may start. APPROVE lands on UNDER_REVIEW or APPROVED (see approval_needed).
ALLOWED_FROM: dict[ClaimAction, frozenset[ClaimStatus]] = {
    A.ACCEPT: frozenset({S.OPEN, S.NEEDS_INFORMATION}),
    A.DISPUTE: frozenset({S.OPEN, S.NEEDS_INFORMATION, S.ACCEPTED}),
    A.WITHDRAW: frozenset({S.OPEN, S.ACCEPTED, S.DISPUTED, S.NEEDS_INFORMATION}),
    A.APPROVE: frozenset({S.ACCEPTED, S.UNDER_REVIEW}),
    A.REJECT: frozenset({S.OPEN, S.ACCEPTED, S.DISPUTED, S.NEEDS_INFORMATION, S.UNDER_REVIEW}),
    A.REQUEST_INFORMATION: frozenset({S.OPEN, S.ACCEPTED, S.DISPUTED, S.UNDER_REVIEW}),
    A.ADJUST: frozenset(
        {S.OPEN, S.ACCEPTED, S.DISPUTED, S.NEEDS_INFORMATION, S.UNDER_REVIEW, S.APPROVED}
    ),
    A.MARK_PAID: frozenset({S.APPROVED}),
}

_SIMPLE_TARGET: dict[ClaimAction, ClaimStatus] = {
    A.ACCEPT: S.ACCEPTED,
    A.DISPUTE: S.DISPUTED,
    A.WITHDRAW: S.WITHDRAWN,
    A.REJECT: S.REJECTED,
    A.REQUEST_INFORMATION: S.NEEDS_INFORMATION,
    A.ADJUST: S.OPEN,  # a new version: the customer must accept it again
    A.MARK_PAID: S.PAID,
}

#: States a customer can still act in, and the ones allocation pays.
CUSTOMER_CAN_ACT = frozenset({S.OPEN, S.NEEDS_INFORMATION, S.ACCEPTED})
FINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.PAID})
PAYABLE = frozenset({S.APPROVED, S.PAID})


def check_action(status: ClaimStatus | str, action: ClaimAction) -> None:
    """Refuse an action the claim's state does not allow, naming both."""
    current = ClaimStatus(status)
    if current not in ALLOWED_FROM[action]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED_FROM[action]))
        raise TransitionError(
            f"cannot {action.value.replace('_', ' ')} a claim that is {current.value}"
            f" (only when {allowed})"
        )


def next_status(status: ClaimStatus | str, action: ClaimAction, *, approvals_complete: bool = False) -> ClaimStatus:
    """The state after ``action``; for APPROVE, whether enough people have now approved."""
    check_action(status, action)
    if action is A.APPROVE:
        return S.APPROVED if approvals_complete else S.UNDER_REVIEW
    return _SIMPLE_TARGET[action]


def check_actor_may(role: Role, action: ClaimAction) -> None:
    """Customers act on their own claims; staff and approvers review; nobody else writes."""
    if action in CUSTOMER_ACTIONS and role is not Role.CUSTOMER:
        raise PermissionDenied(f"only the customer may {action.value} their claim")
    if action in STAFF_ACTIONS and role not in (Role.STAFF, Role.APPROVER):
        raise PermissionDenied(f"only staff or approvers may {action.value.replace('_', ' ')} a claim")


@dataclass(frozen=True)
class FourEyesPolicy:
    """Above ``threshold_jpy`` (strictly) a claim needs two approvals by different people."""

    threshold_jpy: int

    def approvals_required(self, total_jpy: int) -> int:
        return 2 if total_jpy > self.threshold_jpy else 1


def check_approval(
    *,
    approver_id: int,
    approver_role: Role,
    maker_id: int | None,
    earlier_approver_ids: frozenset[int] | set[int],
    required: int,
) -> bool:
    """Refuse an approval that breaks four eyes; return whether this one completes the set.

    The maker of a version (who adjusted it, or changed a destination) never approves it; the
    same person never approves twice; the approval that makes two must come from an approver.
    """
    if maker_id is not None and approver_id == maker_id:
        raise PermissionDenied("you made this change, so someone else must approve it")
    if approver_id in earlier_approver_ids:
        raise PermissionDenied("you already approved this; a different person must give the second approval")
    count = len(earlier_approver_ids) + 1
    if count > required:
        raise TransitionError("this already has every approval it needs")
    if required == 2 and count == 2 and approver_role is not Role.APPROVER:
        raise PermissionDenied("the second approval must come from an approver")
    return count == required
