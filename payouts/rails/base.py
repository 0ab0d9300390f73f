"""The rail interface: payment orders in, one result per order out, or a timeout.

A rail must be idempotent by key: paying an order whose key it has seen before returns the
first result and moves no money. That is what makes a retried or duplicated job safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from payouts.domain.bank_accounts import BankAccount
from payouts.domain.money import check_yen

#: Longest key a rail accepts (the disbursements.idempotency_key column is 80 wide).
MAX_KEY_LENGTH = 80


@dataclass(frozen=True)
class PaymentOrder:
    """Pay ``amount_jpy`` whole yen into ``account``, once, whatever happens to this call."""

    idempotency_key: str
    amount_jpy: int
    account: BankAccount

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} characters")
        check_yen(self.amount_jpy, "amount_jpy", positive=True)
        if not isinstance(self.account, BankAccount):
            raise TypeError("account must be a BankAccount")


class Outcome(str, Enum):
    PAID = "paid"
    #: Permanent: the reason is a code from payouts.domain.disbursements.PERMANENT_REASONS.
    REJECTED = "rejected"
    #: The bank did not take the order; trying again later may succeed.
    TRANSIENT = "transient"
    #: The bank took the order; the result comes later (a Zengin result file).
    SUBMITTED = "submitted"


@dataclass(frozen=True)
class RailResult:
    idempotency_key: str
    outcome: Outcome
    #: The bank's reference for the payment, when it gave one.
    reference: str | None
    #: "" when paid or submitted, a PERMANENT_REASONS code when rejected, a short
    #: description of the failure when transient.
    reason: str


class RailTimeout(Exception):
    """The call failed in transport: we do not know whether the bank took the batch.

    The caller must leave the orders as they are (SUBMITTING) and ask again with the same keys.
    """


class Rail(Protocol):
    name: str

    def pay(self, orders: Sequence[PaymentOrder]) -> list[RailResult]:
        """One result per order, in the orders' order; or raise RailTimeout."""
        ...
