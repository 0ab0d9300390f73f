"""Input fingerprints: a commit refuses inputs that changed since the preview."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from payouts.domain.allocation import AllocationInput, AssetSpec, CustomerInput, CustomerTerms, Position
from payouts.domain.allocation_digest import input_digest, later_money_digest


def sample() -> AllocationInput:
    return AllocationInput(
        incident_type="hack", assets={"JPY": AssetSpec("JPY", 0, Decimal(1))},
        customers=(CustomerInput("A", (Position("JPY", 5),)), CustomerInput("B", (Position("JPY", 7),))),
        terms=CustomerTerms(0, None), tranches_jpy=(), reserve_jpy=10, layers=())


def test_input_digest_ignores_order_but_sees_every_value():
    base = sample()
    digest = input_digest(base)
    assert input_digest(replace(base, customers=base.customers[::-1])) == digest
    assert input_digest(replace(base, reserve_jpy=11)) != digest
    assert input_digest(replace(base, assets={"JPY": AssetSpec("JPY", 0, Decimal(2))})) != digest
    assert input_digest(replace(base, customers=(CustomerInput("A", (Position("JPY", 6),)),
                                                 base.customers[1]))) != digest


def test_later_money_digest_depends_on_every_balance_not_their_order():
    base = later_money_digest([("A", 10, 4), ("B", 20, 20)], 7)
    assert later_money_digest([("B", 20, 20), ("A", 10, 4)], 7) == base
    assert later_money_digest([("A", 10, 5), ("B", 20, 20)], 7) != base
    assert later_money_digest([("A", 10, 4), ("B", 20, 20)], 8) != base
