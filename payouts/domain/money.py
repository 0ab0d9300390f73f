"""Exact amounts: decimal strings in whole units <-> integers of minor units, and yen display.

Money never touches a float. A quantity of an asset is an int of its smallest unit (satoshi,
wei); a price is a ``Decimal`` built from a string; yen are whole yen.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from payouts.domain.errors import ValidationError

#: Plain non-negative decimal: digits, optionally a point and more digits. No sign, no
#: exponent, no thousands separators: ledger exports that use them should fail loudly.
_DECIMAL_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?")  # ASCII digits only: "１" is not a number here

#: Largest number of decimals an asset may declare (18 covers ETH and ERC-20 tokens).
MAX_ASSET_DECIMALS = 30
#: Most digits a quantity in minor units may have: the database columns hold 78 (any uint256).
MAX_QUANTITY_DIGITS = 78
#: Largest yen amount any form or command accepts: ¥1,000 trillion, far above any exchange's
#: money and far below what a 64-bit column (and SQLite's SUM) can hold.
MAX_YEN = 10**15


def check_yen(value: object, field: str, *, positive: bool = False) -> int:
    """A whole number of yen within 0 (or 1) .. MAX_YEN; bools and floats are refused."""
    if type(value) is not int or value < (1 if positive else 0) or value > MAX_YEN:
        low = "1" if positive else "0"
        raise ValidationError(field, f"must be a whole number of yen from {low} to {MAX_YEN:,}")
    return value


def parse_amount(text: str, decimals: int, *, field: str = "amount") -> int:
    """Turn ``"0.12345678"`` into minor units for an asset with ``decimals`` places.

    Raises ValidationError when the text is not a plain non-negative decimal or carries more
    decimal places than the asset has (rounding a customer's balance is never our call).
    """
    if text is None:
        raise ValidationError(field, "is missing")
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        stripped = text.strip()
        if stripped.startswith("-") and _DECIMAL_RE.fullmatch(stripped[1:]):
            raise ValidationError(field, f"must not be negative, got {text!r}")
        if stripped == "":
            raise ValidationError(field, "is empty")
        raise ValidationError(field, f"is not a plain decimal number: {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    if len(whole.lstrip("0")) + decimals > MAX_QUANTITY_DIGITS:
        raise ValidationError(field, f"is too large (more than {MAX_QUANTITY_DIGITS} digits in minor units)")
    if len(frac) > decimals:
        # Trailing zeros beyond the asset's precision are harmless ("1.50" JPY is not).
        if frac[decimals:].strip("0"):
            raise ValidationError(field, f"has {len(frac.rstrip('0'))} decimal places; this asset allows {decimals}")
        frac = frac[:decimals]
    return int(whole + frac.ljust(decimals, "0"))


def format_amount(minor: int, decimals: int) -> str:
    """Inverse of parse_amount: minor units back to a decimal string without trailing zeros."""
    if decimals == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(decimals + 1, "0")
    whole, frac = digits[:-decimals], digits[-decimals:].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def parse_price(text: object, *, field: str = "price") -> Decimal:
    """An exact, positive decimal price from a string ("88.549"); floats are refused."""
    if not isinstance(text, str):
        raise ValidationError(field, "must be a decimal string such as \"88.549\"")
    if _DECIMAL_RE.fullmatch(text.strip()) is None:
        raise ValidationError(field, f"is not a plain decimal number: {text!r}")
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValidationError(field, f"is not a decimal number: {text!r}") from exc
    if value <= 0:
        raise ValidationError(field, "must be greater than zero")
    return value


def canonical_decimal(value: Decimal) -> str:
    """The shortest exact string for a decimal, with no exponent ("88.549", "1", "0.0001")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def format_yen(amount: int, locale: str = "ja") -> str:
    """Yen as people expect to read it: ¥1,234,567 (Japanese) or JPY 1,234,567 (English)."""
    grouped = f"{amount:,}"
    return f"¥{grouped}" if locale.startswith("ja") else f"JPY {grouped}"


def format_decimal_yen(value: object, locale: str = "ja") -> str:
    """An exact yen amount that may have decimals (a price, an unrounded value), grouped:
    "14250000" -> "¥14,250,000", "100000.0999" -> "¥100,000.0999". Nothing is rounded."""
    text = canonical_decimal(value) if isinstance(value, Decimal) else str(value)
    whole, _, frac = text.partition(".")
    grouped = f"{int(whole):,}" + (f".{frac}" if frac else "")
    return f"¥{grouped}" if locale.startswith("ja") else f"JPY {grouped}"
