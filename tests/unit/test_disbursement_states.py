"""Disbursement states: the transition table, the retry policy and the idempotency key."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.domain.disbursements import (
    MAX_ATTEMPTS,
    OPEN_STATUSES,
    PERMANENT_REASONS,
    TRANSITIONS,
    WORKABLE_STATUSES,
    DisbursementStatus,
    after_failure,
    check_transition,
    payment_key,
    retry_delay_seconds,
)
from payouts.domain.errors import ConflictError, TransitionError

S = DisbursementStatus

ALLOWED = {
    (S.HELD, S.PENDING), (S.HELD, S.CANCELLED),
    (S.PENDING, S.SUBMITTING), (S.PENDING, S.HELD), (S.PENDING, S.CANCELLED),
    (S.SUBMITTING, S.SUBMITTING), (S.SUBMITTING, S.PAID), (S.SUBMITTING, S.SUBMITTED),
    (S.SUBMITTING, S.RETRYING), (S.SUBMITTING, S.NEEDS_ATTENTION),
    (S.SUBMITTED, S.PAID), (S.SUBMITTED, S.NEEDS_ATTENTION),
    (S.RETRYING, S.SUBMITTING), (S.RETRYING, S.NEEDS_ATTENTION), (S.RETRYING, S.CANCELLED),
    (S.NEEDS_ATTENTION, S.PENDING), (S.NEEDS_ATTENTION, S.HELD),
    (S.NEEDS_ATTENTION, S.CANCELLED),
}


@pytest.mark.parametrize("current, new", sorted(ALLOWED))
def test_allowed_moves_pass(current, new):  # type: ignore[no-untyped-def]
    check_transition(current, new)
    check_transition(current.value, new.value)  # plain strings, as read from a row


@pytest.mark.parametrize(
    "current, new", sorted(set(itertools.product(S, S)) - ALLOWED)
)
def test_every_other_move_is_refused_naming_both_states(current, new):  # type: ignore[no-untyped-def]
    with pytest.raises(TransitionError) as err:
        check_transition(current, new)
    assert current.value in str(err.value) and new.value in str(err.value)


def test_table_is_exactly_the_allowed_moves():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(TRANSITIONS) == set(S)


def test_paid_and_cancelled_are_terminal():
    for terminal in (S.PAID, S.CANCELLED):
        assert TRANSITIONS[terminal] == frozenset()
        with pytest.raises(TransitionError):
            check_transition(terminal, S.PENDING)


def test_transition_error_is_a_conflict():
    assert issubclass(TransitionError, ConflictError)


def test_unknown_status_is_refused():
    with pytest.raises(TransitionError, match="unknown"):
        check_transition("held", "lost")


def test_status_groups():
    assert OPEN_STATUSES == set(S) - {S.PAID, S.CANCELLED}
    assert WORKABLE_STATUSES == {S.PENDING, S.SUBMITTING, S.RETRYING}
    assert WORKABLE_STATUSES <= OPEN_STATUSES


def test_status_values_match_the_database_check_constraint():
    from payouts.db.models import Disbursement

    checks = [str(c.sqltext) for c in Disbursement.__table__.constraints
              if str(getattr(c, "name", "")).endswith("status_known")]
    assert len(checks) == 1
    assert set(re.findall(r"'([a-z_]+)'", checks[0])) == {s.value for s in S}


@pytest.mark.parametrize("attempts, base", [
    (1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 960), (7, 1920), (8, 3600), (50, 3600),
])
def test_backoff_doubles_from_thirty_seconds_and_caps_at_an_hour(attempts, base):  # type: ignore[no-untyped-def]
    delay = retry_delay_seconds(attempts, "pay-1-1")
    assert base <= delay <= base + base // 4


@given(st.integers(min_value=1, max_value=10_000), st.text(max_size=20))
def test_backoff_bounds_and_determinism(attempts, key):  # type: ignore[no-untyped-def]
    base = min(3600, 30 * 2 ** min(attempts - 1, 20))
    delay = retry_delay_seconds(attempts, key)
    assert type(delay) is int
    assert base <= delay <= base + base // 4
    assert retry_delay_seconds(attempts, key) == delay


def test_jitter_spreads_keys_that_failed_together():
    delays = {retry_delay_seconds(5, f"pay-{i}-1") for i in range(200)}
    assert len(delays) > 50  # a bank outage must not bring 200 payments back in one second


def test_jitter_depends_on_the_attempt_too():
    jitters = {retry_delay_seconds(20 + n, "pay-7-3") for n in range(20)}  # all capped at 3600
    assert len(jitters) > 1


@pytest.mark.parametrize("attempts", [0, -1, True, 1.0, "1"])
def test_backoff_refuses_non_positive_or_non_integer_attempts(attempts):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        retry_delay_seconds(attempts, "k")


def test_after_failure():
    assert after_failure(1, permanent=False) == S.RETRYING
    assert after_failure(MAX_ATTEMPTS - 1, permanent=False) == S.RETRYING
    assert after_failure(MAX_ATTEMPTS, permanent=False) == S.NEEDS_ATTENTION
    assert after_failure(MAX_ATTEMPTS + 3, permanent=False) == S.NEEDS_ATTENTION
    assert after_failure(1, permanent=True) == S.NEEDS_ATTENTION
    assert MAX_ATTEMPTS == 8


def test_after_failure_results_are_reachable_from_submitting():
    for attempts, permanent in itertools.product(range(1, 12), (False, True)):
        check_transition(S.SUBMITTING, after_failure(attempts, permanent))


def test_payment_key_is_stable_per_destination_and_new_per_destination():
    assert payment_key(12, 34, "reserve", 56) == "pay-12-34-reserve-56"
    assert payment_key(12, 34, "reserve", None) == "pay-12-34-reserve-0"  # held
    assert payment_key(12, 34, "reserve", 56) == payment_key(12, 34, "reserve", 56)
    assert payment_key(12, 34, "reserve", 57) != payment_key(12, 34, "reserve", 56)
    assert payment_key(12, 34, "L1", 56) != payment_key(12, 34, "reserve", 56)


def test_payment_key_always_fits_the_column_and_stays_distinct():
    longest = [payment_key(10**18, 10**18, "L" * 40, 10**18), payment_key(10**18, 10**18, "L" * 40, 10**18 - 1)]
    assert all(len(k) <= 80 for k in longest) and longest[0] != longest[1]
    assert longest[0] == payment_key(10**18, 10**18, "L" * 40, 10**18)


@pytest.mark.parametrize("args", [(0, 1, "reserve", 1), (1, 0, "reserve", 1), (-1, 2, "reserve", 1),
                                  (True, 1, "reserve", 1), (1, "2", "reserve", 1), (1, 2, "", 1),
                                  (1, 2, "reserve", 0), (1, 2, None, 1)])
def test_payment_key_refuses_bad_parts(args):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        payment_key(*args)


def test_permanent_reasons():
    assert set(PERMANENT_REASONS) == {
        "no_account", "closed_account", "name_mismatch", "invalid_account", "key_reused", "other"
    }
    assert all(text and text[0].isupper() for text in PERMANENT_REASONS.values())
