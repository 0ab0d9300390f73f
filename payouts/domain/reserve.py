"""The liability reserve as a ledger: balances derived from entries, never typed in.

cash       = deposits - withdrawals - payments        (what the reserve account holds)
earmarked  = earmarks - releases - payments           (set aside for committed allocations)
available  = cash - earmarked                         (what a new allocation may draw)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class EntryKind(str, Enum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    EARMARK = "earmark"
    RELEASE = "release"
    PAYMENT = "payment"


@dataclass(frozen=True)
class ReserveBalance:
    deposits: int = 0
    withdrawals: int = 0
    earmarks: int = 0
    releases: int = 0
    payments: int = 0

    @property
    def cash(self) -> int:
        return self.deposits - self.withdrawals - self.payments

    @property
    def earmarked(self) -> int:
        return self.earmarks - self.releases - self.payments

    @property
    def available(self) -> int:
        return self.cash - self.earmarked

    @classmethod
    def from_totals(cls, totals: Iterable[tuple[str, int]]) -> "ReserveBalance":
        by_kind = {EntryKind(kind).value + "s": int(amount) for kind, amount in totals}
        return cls(**by_kind)
