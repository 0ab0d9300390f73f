"""The sandbox bank on a real database: one payment per key, whatever the caller repeats."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest
from sqlalchemy import Engine, event, text

from payouts.domain.bank_accounts import parse_bank_account
from payouts.rails.base import Outcome, PaymentOrder, RailTimeout
from payouts.rails.sandbox import SandboxRail, count_transfers, find_transfer, total_paid


def acc(number: str = "1234567", name: str = "ヤマダ タロウ"):  # type: ignore[no-untyped-def]
    return parse_bank_account(bank_code="0005", branch_code="123", account_type="ordinary",
                              account_number=number, holder_name=name)


def order(n: int, amount: int = 1000, **account: str) -> PaymentOrder:
    return PaymentOrder(f"pay-{n}-1", amount, acc(**account))


def test_same_key_twice_is_one_payment_with_the_same_result(engine: Engine):
    rail = SandboxRail(engine)
    [first] = rail.pay([order(1, 5000)])
    [again] = rail.pay([order(1, 5000)])
    assert first.outcome is Outcome.PAID and first.reference and first.reference.startswith("SBX")
    assert again == first
    assert count_transfers(engine) == 1
    assert total_paid(engine) == 5000
    row = find_transfer(engine, "pay-1-1")
    assert row is not None
    assert (row["amount_jpy"], row["holder_kana"], row["outcome"]) == (5000, "ﾔﾏﾀﾞ ﾀﾛｳ", "paid")


def test_a_batch_of_a_thousand_in_one_call(engine: Engine):
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    orders = [order(i, 1000 + i) for i in range(1, 1001)]
    event.listen(engine, "before_cursor_execute", record)
    try:
        results = SandboxRail(engine).pay(orders)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [r.idempotency_key for r in results] == [o.idempotency_key for o in orders]
    assert {r.outcome for r in results} == {Outcome.PAID}
    assert len({r.reference for r in results}) == 1000
    assert count_transfers(engine) == 1000
    assert total_paid(engine) == sum(1000 + i for i in range(1, 1001))
    # One INSERT and one SELECT for the whole batch: no round trip per order.
    work = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "SELECT"))]
    assert len(work) == 2, work


def test_a_key_reused_with_other_details_is_refused_without_paying(engine: Engine):
    rail = SandboxRail(engine)
    rail.pay([order(1, 5000)])
    [other_amount] = rail.pay([order(1, 6000)])
    [other_account] = rail.pay([order(1, 5000, number="7654321")])
    for result in (other_amount, other_account):
        assert result.outcome is Outcome.REJECTED
        assert (result.reason, result.reference) == ("key_reused", None)
    assert count_transfers(engine) == 1 and total_paid(engine) == 5000


def test_a_key_twice_in_one_batch_books_the_first(engine: Engine):
    first, same, changed = SandboxRail(engine).pay([order(1, 5000), order(1, 5000), order(1, 9)])
    assert first.outcome is Outcome.PAID and same == first
    assert changed.reason == "key_reused"
    assert count_transfers(engine) == 1


def test_deterministic_rejections_are_recorded_and_repeat(engine: Engine):
    rail = SandboxRail(engine)
    closed, mismatch, fine = rail.pay([
        order(1, number="0"), order(2, name="テストエラー ハナコ"), order(3),
    ])
    assert (closed.outcome, closed.reason) == (Outcome.REJECTED, "closed_account")
    assert (mismatch.outcome, mismatch.reason) == (Outcome.REJECTED, "name_mismatch")
    assert fine.outcome is Outcome.PAID
    assert count_transfers(engine) == 3
    assert count_transfers(engine, outcome="rejected") == 2
    assert total_paid(engine) == 1000
    # Asking again gives the same rejection, from the book.
    assert rail.pay([order(1, number="0")]) == [closed]
    assert count_transfers(engine) == 3


def test_transient_failures_record_nothing(engine: Engine):
    results = SandboxRail(engine, transient_failure_rate=Fraction(1)).pay([order(1), order(2)])
    assert {r.outcome for r in results} == {Outcome.TRANSIENT}
    assert all(r.reference is None and r.reason for r in results)
    assert count_transfers(engine) == 0


def test_random_rejections_are_no_account_and_seeded(engine: Engine):
    orders = [order(i) for i in range(1, 201)]
    rail = SandboxRail(engine, rejection_rate=Fraction(1, 4), seed=7)
    results = rail.pay(orders)
    rejected = [r for r in results if r.outcome is Outcome.REJECTED]
    assert {r.reason for r in rejected} == {"no_account"}
    assert 20 < len(rejected) < 80
    # A fresh rail with the same seed on a fresh key space decides the same way.
    again = SandboxRail(engine, rejection_rate=Fraction(1, 4), seed=7).pay(
        [PaymentOrder(o.idempotency_key + "x", o.amount_jpy, o.account) for o in orders])
    assert [r.outcome for r in again] == [r.outcome for r in results]


def test_lost_response_after_accept_never_pays_twice(engine: Engine):
    orders = [order(i, 100 * i) for i in range(1, 11)]
    with pytest.raises(RailTimeout):
        SandboxRail(engine, timeout_after_accept_rate=Fraction(1)).pay(orders)
    # The bank has them even though we never heard back.
    assert count_transfers(engine) == 10
    assert total_paid(engine) == sum(100 * i for i in range(1, 11))
    before = {o.idempotency_key: find_transfer(engine, o.idempotency_key) for o in orders}
    results = SandboxRail(engine).pay(orders)
    assert {r.outcome for r in results} == {Outcome.PAID}
    references = [before[o.idempotency_key]["bank_reference"] for o in orders]  # type: ignore[index]
    assert [r.reference for r in results] == references
    assert count_transfers(engine) == 10
    assert total_paid(engine) == sum(100 * i for i in range(1, 11))


def test_the_bank_commits_independently_of_the_callers_transaction(engine: Engine):
    rail = SandboxRail(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT 1"))  # an open transaction of our own
        rail.pay([order(1)])
        conn.rollback()
    assert count_transfers(engine) == 1


def test_concurrent_callers_with_the_same_keys_pay_once(engine: Engine):
    orders = [order(i, 10 * i) for i in range(1, 201)]
    outcomes: list[list[object]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            outcomes.append([(r.outcome, r.reference) for r in SandboxRail(engine).pay(orders)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(outcomes) == 4 and all(o == outcomes[0] for o in outcomes)
    assert count_transfers(engine) == 200
    assert total_paid(engine) == sum(10 * i for i in range(1, 201))


def test_empty_batch_does_nothing(engine: Engine):
    assert SandboxRail(engine).pay([]) == []
    assert count_transfers(engine) == 0


@pytest.mark.parametrize("kwargs, error", [
    (dict(rejection_rate=0.1), TypeError),
    (dict(transient_failure_rate=Fraction(3, 2)), ValueError),
    (dict(timeout_after_accept_rate=-1), ValueError),
    (dict(latency_ms=-5), ValueError),
])
def test_bad_settings_are_refused(engine: Engine, kwargs, error):  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        SandboxRail(engine, **kwargs)
