"""Valuing a customer's lost positions in yen: exact per line, rounded down once per customer.

This is step 1 of the allocation contract (shared spec): V = floor(sum of amount * price / 10^d),
summed exactly across positions first, never rounded per position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from payouts.domain.money import format_amount


def price_parts(price: Decimal) -> tuple[int, int]:
    """A decimal price as (integer numerator, decimal scale): 88.549 -> (88549, 3)."""
    sign, digits, exponent = price.as_tuple()
    numerator = int("".join(map(str, digits)) or "0")
    if sign:
        numerator = -numerator
    if exponent >= 0:  # type: ignore[operator]
        return numerator * 10**exponent, 0  # type: ignore[operator]
    return numerator, -exponent  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class ValuedLine:
    asset: str
    amount_minor: int
    decimals: int
    price: Decimal
    #: The line's exact yen value as a decimal string (no rounding at all).
    value_exact: str


def value_positions(
    positions: Iterable[tuple[str, int, int, Decimal]],
) -> tuple[list[ValuedLine], int]:
    """Lines (asset, amount_minor, decimals, price) valued exactly, and their floored yen total."""
    lines: list[ValuedLine] = []
    parts: list[tuple[int, int]] = []
    for asset, amount, decimals, price in positions:
        numerator, scale = price_parts(price)
        lines.append(ValuedLine(asset, amount, decimals, price,
                                format_amount(amount * numerator, decimals + scale)))
        parts.append((amount * numerator, decimals + scale))
    if not parts:
        return lines, 0
    common = max(scale for _n, scale in parts)
    total = sum(n * 10 ** (common - scale) for n, scale in parts)
    return lines, total // 10**common
