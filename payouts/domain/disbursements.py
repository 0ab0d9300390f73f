"""Disbursement states, the moves between them, the retry policy and the idempotency key.

Pure rules: the services apply them to rows under a lock, the jobs and the sweeper pick up what
``WORKABLE_STATUSES`` names. SUBMITTING is deliberately a state of its own: once a job has
called the rail we cannot know whether the bank has the payment until the rail answers, so a
crashed job leaves SUBMITTING behind and the re-run asks the rail again with the same key.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from payouts.domain.errors import TransitionError


class DisbursementStatus(str, Enum):
    HELD = "held"  # no approved destination yet
    PENDING = "pending"  # ready, waiting for a job
    SUBMITTING = "submitting"  # a job is calling the rail; the bank may or may not have it
    SUBMITTED = "submitted"  # the bank has it, the result comes later (Zengin files)
    RETRYING = "retrying"  # a transient failure; next_attempt_at says when to try again
    PAID = "paid"
    NEEDS_ATTENTION = "needs_attention"  # permanent failure or too many attempts: staff act
    CANCELLED = "cancelled"


_S = DisbursementStatus

#: Every allowed move; anything else is refused by check_transition.
TRANSITIONS: dict[DisbursementStatus, frozenset[DisbursementStatus]] = {
    # A destination was approved, or the payment is no longer owed.
    _S.HELD: frozenset({_S.PENDING, _S.CANCELLED}),
    # The destination may be withdrawn before a job takes it: back to HELD.
    _S.PENDING: frozenset({_S.SUBMITTING, _S.HELD, _S.CANCELLED}),
    # SUBMITTING -> SUBMITTING is a re-run after a crash: same key, so the rail cannot pay twice.
    _S.SUBMITTING: frozenset(
        {_S.SUBMITTING, _S.PAID, _S.SUBMITTED, _S.RETRYING, _S.NEEDS_ATTENTION}
    ),
    _S.SUBMITTED: frozenset({_S.PAID, _S.NEEDS_ATTENTION}),
    _S.RETRYING: frozenset({_S.SUBMITTING, _S.NEEDS_ATTENTION, _S.CANCELLED}),
    # Staff fixed the destination and retried (PENDING), withdrew it (HELD), or gave up.
    _S.NEEDS_ATTENTION: frozenset({_S.PENDING, _S.HELD, _S.CANCELLED}),
    _S.PAID: frozenset(),
    _S.CANCELLED: frozenset(),
}

TERMINAL_STATUSES = frozenset({_S.PAID, _S.CANCELLED})
OPEN_STATUSES = frozenset(DisbursementStatus) - TERMINAL_STATUSES
#: What a job or the sweeper may pick up (SUBMITTING: a job died mid-call and must re-ask).
WORKABLE_STATUSES = frozenset({_S.PENDING, _S.SUBMITTING, _S.RETRYING})

#: Attempts at the rail before a disbursement stops retrying and waits for staff.
MAX_ATTEMPTS = 8
#: First retry after 30 s, doubling, never more than an hour apart.
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600

#: The reason recorded when the rail did not answer: the bank may have booked the payment or
#: not, and only the same key can settle that (the rail answers a key it has with its payment).
#: The payment's key_unanswered flag, not this reason, keeps it on that key: a later "try
#: again" answer replaces the reason but says nothing of the key.
OUTCOME_UNKNOWN = "timeout"


#: Reason codes for a payment the bank refused for good (a retry would fail the same way).
PERMANENT_REASONS: dict[str, str] = {
    "no_account": "No such account at the receiving bank",
    "closed_account": "The receiving account is closed",
    "name_mismatch": "The holder's name does not match the account",
    "invalid_account": "The account details are not valid",
    "key_reused": "The idempotency key was already used with different details",
    "other": "The bank refused the payment for another reason",
}


def check_transition(current: DisbursementStatus | str, new: DisbursementStatus | str) -> None:
    """Refuse a move the table does not allow, naming both states."""
    try:
        old_state, new_state = DisbursementStatus(current), DisbursementStatus(new)
    except ValueError as exc:
        raise TransitionError(f"unknown disbursement status in {current!r} -> {new!r}") from exc
    if new_state not in TRANSITIONS[old_state]:
        raise TransitionError(
            f"a disbursement cannot move from {old_state.value} to {new_state.value}"
        )


def retry_delay_seconds(attempts: int, key: str) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt (1 for the first).

    30 s * 2**(attempts-1), at most an hour, plus up to a quarter more of jitter. The jitter
    comes from a hash of the key and the attempt, not from a clock or a random source: a test
    can predict it, and payments that failed together (a bank outage) spread out instead of
    all coming back in the same second.
    """
    if type(attempts) is not int or attempts < 1:
        raise ValueError(f"attempts must be a positive integer, got {attempts!r}")
    # Cap the exponent before shifting: attempts may be large after a long outage.
    delay = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS << min(attempts - 1, 16))
    digest = hashlib.sha256(f"{key}:{attempts}".encode()).digest()
    jitter = int.from_bytes(digest[:8], "big") % (delay // 4 + 1)
    return delay + jitter


def after_failure(attempts: int, permanent: bool) -> DisbursementStatus:
    """Where a failed attempt leaves a disbursement; ``attempts`` counts the one that failed."""
    if permanent or attempts >= MAX_ATTEMPTS:
        return DisbursementStatus.NEEDS_ATTENTION
    return DisbursementStatus.RETRYING


def payment_key(run_id: int, customer_id: int, source_id: str, destination_id: int | None) -> str:
    """The key the rail sees: one per customer, source and destination of a run. A new
    destination is a new payment and so a new key; the same payment always carries the same
    key, so no retry or duplicated job can pay twice. A held payment (no destination yet) has
    destination 0. Keys fit the 80-character column: a longer one is replaced by its digest."""
    for name, value in (("run_id", run_id), ("customer_id", customer_id)):
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if destination_id is not None and (type(destination_id) is not int or destination_id < 1):
        raise ValueError(f"destination_id must be a positive integer or None, got {destination_id!r}")
    if not isinstance(source_id, str) or not source_id:
        raise ValueError(f"source_id must be a non-empty string, got {source_id!r}")
    key = f"pay-{run_id}-{customer_id}-{source_id}-{destination_id or 0}"
    if len(key) <= 80:
        return key
    return "pay-h" + hashlib.sha256(key.encode()).hexdigest()
