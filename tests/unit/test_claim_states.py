"""The claim state machine, who may move a claim, and the four-eyes rule (payouts.domain.claims).

The expected table below is written out by hand from the module's documentation, not derived
from ALLOWED_FROM, so a change to the machine has to change this table too.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.domain.claims import (
    ClaimAction,
    ClaimStatus,
    FourEyesPolicy,
    check_action,
    check_actor_may,
    check_approval,
    next_status,
)
from payouts.domain.errors import PermissionDenied, TransitionError
from payouts.domain.roles import Role

S, A = ClaimStatus, ClaimAction

#: (status, action) -> the state after it; APPROVE's target depends on the approvals, so it is
#: given as (not yet complete, complete).
EXPECTED: dict[tuple[ClaimStatus, ClaimAction], ClaimStatus | tuple[ClaimStatus, ClaimStatus]] = {
    (S.OPEN, A.ACCEPT): S.ACCEPTED,
    (S.NEEDS_INFORMATION, A.ACCEPT): S.ACCEPTED,
    (S.OPEN, A.DISPUTE): S.DISPUTED,
    (S.NEEDS_INFORMATION, A.DISPUTE): S.DISPUTED,
    (S.ACCEPTED, A.DISPUTE): S.DISPUTED,
    (S.OPEN, A.WITHDRAW): S.WITHDRAWN,
    (S.ACCEPTED, A.WITHDRAW): S.WITHDRAWN,
    (S.DISPUTED, A.WITHDRAW): S.WITHDRAWN,
    (S.NEEDS_INFORMATION, A.WITHDRAW): S.WITHDRAWN,
    (S.ACCEPTED, A.APPROVE): (S.UNDER_REVIEW, S.APPROVED),
    (S.UNDER_REVIEW, A.APPROVE): (S.UNDER_REVIEW, S.APPROVED),
    (S.OPEN, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.REJECT): S.REJECTED,
    (S.DISPUTED, A.REJECT): S.REJECTED,
    (S.NEEDS_INFORMATION, A.REJECT): S.REJECTED,
    (S.UNDER_REVIEW, A.REJECT): S.REJECTED,
    (S.OPEN, A.REQUEST_INFORMATION): S.NEEDS_INFORMATION,
    (S.ACCEPTED, A.REQUEST_INFORMATION): S.NEEDS_INFORMATION,
    (S.DISPUTED, A.REQUEST_INFORMATION): S.NEEDS_INFORMATION,
    (S.UNDER_REVIEW, A.REQUEST_INFORMATION): S.NEEDS_INFORMATION,
    (S.OPEN, A.ADJUST): S.OPEN,
    (S.ACCEPTED, A.ADJUST): S.OPEN,
    (S.DISPUTED, A.ADJUST): S.OPEN,
    (S.NEEDS_INFORMATION, A.ADJUST): S.OPEN,
    (S.UNDER_REVIEW, A.ADJUST): S.OPEN,
    (S.APPROVED, A.ADJUST): S.OPEN,
    (S.APPROVED, A.MARK_PAID): S.PAID,
}

ALL_PAIRS = list(itertools.product(ClaimStatus, ClaimAction))
ALLOWED = [pair for pair in ALL_PAIRS if pair in EXPECTED]
REFUSED = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def test_the_table_covers_every_pair() -> None:
    assert len(ALL_PAIRS) == len(ClaimStatus) * len(ClaimAction) == 72
    assert len(ALLOWED) == 27 and len(REFUSED) == 45


@pytest.mark.parametrize(("status", "action"), ALLOWED, ids=lambda v: v.value)
def test_allowed_moves_land_on_the_documented_state(status: ClaimStatus, action: ClaimAction) -> None:
    expected = EXPECTED[(status, action)]
    check_action(status, action)  # does not raise
    if action is A.APPROVE:
        assert isinstance(expected, tuple)
        assert next_status(status, action, approvals_complete=False) is expected[0]
        assert next_status(status, action, approvals_complete=True) is expected[1]
    else:
        assert next_status(status, action) is expected
        # The flag only matters for approvals.
        assert next_status(status, action, approvals_complete=True) is expected
    # The stored form (a plain string) is accepted too.
    complete = expected[1] if isinstance(expected, tuple) else expected
    assert next_status(status.value, action, approvals_complete=True) is complete


@pytest.mark.parametrize(("status", "action"), REFUSED, ids=lambda v: v.value)
def test_refused_moves_name_the_action_and_the_state(status: ClaimStatus, action: ClaimAction) -> None:
    for call in (lambda: check_action(status, action),
                 lambda: next_status(status, action, approvals_complete=True),
                 lambda: next_status(status.value, action)):
        with pytest.raises(TransitionError) as error:
            call()
        message = str(error.value)
        assert action.value.replace("_", " ") in message
        assert f"is {status.value}" in message


def test_final_states_allow_nothing() -> None:
    for status in (S.REJECTED, S.WITHDRAWN, S.PAID):
        for action in ClaimAction:
            with pytest.raises(TransitionError):
                check_action(status, action)


def test_unknown_status_is_not_silently_accepted() -> None:
    with pytest.raises(ValueError):
        check_action("lost", A.ACCEPT)


# --- who may act ----------------------------------------------------------------------------

CUSTOMER_ACTIONS = {A.ACCEPT, A.DISPUTE, A.WITHDRAW}
STAFF_ACTIONS = {A.APPROVE, A.REJECT, A.REQUEST_INFORMATION, A.ADJUST}


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, ClaimAction)),
                         ids=lambda v: v.value)
def test_check_actor_may(role: Role, action: ClaimAction) -> None:
    if action in CUSTOMER_ACTIONS:
        allowed = role is Role.CUSTOMER
    elif action in STAFF_ACTIONS:
        allowed = role in (Role.STAFF, Role.APPROVER)
    else:  # MARK_PAID: done by the disbursement machinery, not chosen by a person
        allowed = True
    if allowed:
        check_actor_may(role, action)
    else:
        with pytest.raises(PermissionDenied) as error:
            check_actor_may(role, action)
        assert action.value.replace("_", " ") in str(error.value)


# --- four eyes ------------------------------------------------------------------------------


def test_threshold_is_strict() -> None:
    policy = FourEyesPolicy(threshold_jpy=1_000_000)
    assert policy.approvals_required(0) == 1
    assert policy.approvals_required(999_999) == 1
    assert policy.approvals_required(1_000_000) == 1  # at the threshold: one person
    assert policy.approvals_required(1_000_001) == 2


@given(threshold=st.integers(min_value=0, max_value=10**15), total=st.integers(min_value=0, max_value=10**16))
def test_approvals_required_property(threshold: int, total: int) -> None:
    required = FourEyesPolicy(threshold).approvals_required(total)
    assert required == (2 if total > threshold else 1)
    assert FourEyesPolicy(threshold).approvals_required(threshold) == 1
    assert FourEyesPolicy(threshold).approvals_required(threshold + 1) == 2


def approve(approver_id: int, role: Role = Role.STAFF, *, maker: int | None = None,
            earlier: set[int] | None = None, required: int = 1) -> bool:
    return check_approval(approver_id=approver_id, approver_role=role, maker_id=maker,
                          earlier_approver_ids=frozenset(earlier or set()), required=required)


def test_one_approval_completes_a_claim_that_needs_one() -> None:
    assert approve(1, Role.STAFF) is True
    assert approve(1, Role.APPROVER) is True


def test_two_approvals_the_second_by_an_approver() -> None:
    assert approve(1, Role.STAFF, required=2) is False
    assert approve(2, Role.APPROVER, earlier={1}, required=2) is True
    with pytest.raises(PermissionDenied, match="second approval must come from an approver"):
        approve(2, Role.STAFF, earlier={1}, required=2)


def test_the_first_of_two_may_be_an_approver_too() -> None:
    assert approve(1, Role.APPROVER, required=2) is False
    assert approve(2, Role.APPROVER, earlier={1}, required=2) is True


def test_maker_cannot_approve_their_own_version() -> None:
    for required in (1, 2):
        with pytest.raises(PermissionDenied, match="you made this change"):
            approve(7, Role.APPROVER, maker=7, required=required)
        with pytest.raises(PermissionDenied, match="you made this change"):
            approve(7, Role.APPROVER, maker=7, earlier={3}, required=2)
    assert approve(8, Role.APPROVER, maker=7) is True


def test_same_person_cannot_approve_twice() -> None:
    with pytest.raises(PermissionDenied, match="already approved"):
        approve(1, Role.APPROVER, earlier={1}, required=2)


def test_over_approval_is_refused() -> None:
    with pytest.raises(TransitionError, match="already has every approval"):
        approve(2, Role.APPROVER, earlier={1}, required=1)
    with pytest.raises(TransitionError, match="already has every approval"):
        approve(3, Role.APPROVER, earlier={1, 2}, required=2)


@given(
    approvers=st.lists(st.tuples(st.integers(1, 6), st.sampled_from([Role.STAFF, Role.APPROVER])),
                       min_size=1, max_size=6),
    maker=st.one_of(st.none(), st.integers(1, 6)),
    required=st.sampled_from([1, 2]),
)
def test_four_eyes_property(approvers: list[tuple[int, Role]], maker: int | None, required: int) -> None:
    """Whatever order people try in, the accepted approvals are distinct people, never the
    maker, at most ``required`` of them, and when two, the second is an approver."""
    accepted: list[tuple[int, Role]] = []
    complete = False
    for person, role in approvers:
        earlier = {p for p, _r in accepted}
        try:
            done = approve(person, role, maker=maker, earlier=earlier, required=required)
        except (PermissionDenied, TransitionError):
            continue
        assert not complete, "an approval was taken after the set was complete"
        accepted.append((person, role))
        complete = done
        assert done == (len(accepted) == required)
    ids = [p for p, _r in accepted]
    assert len(ids) == len(set(ids)) <= required
    assert maker not in ids
    if required == 2 and len(accepted) == 2:
        assert accepted[1][1] is Role.APPROVER
