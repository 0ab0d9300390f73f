"""Exact amounts: parsing decimal strings into minor units and back, valuation, yen display."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.domain.errors import ValidationError
from payouts.domain.money import format_amount, format_yen, parse_amount, parse_price
from payouts.domain.valuation import price_parts, value_positions


@pytest.mark.parametrize(
    "text, decimals, expected",
    [("0.12345678", 8, 12345678), ("1", 8, 100000000), ("1.5", 0, None), ("1.50", 1, 15),
     ("1.000000000000000001", 18, 10**18 + 1), ("1000000", 18, 10**24), ("0", 0, 0),
     ("007", 0, 7), ("1.0", 0, 1)],
)
def test_parse_amount(text, decimals, expected):  # type: ignore[no-untyped-def]
    if expected is None:
        with pytest.raises(ValidationError, match="decimal places"):
            parse_amount(text, decimals)
    else:
        assert parse_amount(text, decimals) == expected


@pytest.mark.parametrize("text", ["-1", "1e5", "1,000", "", " ", "1.", ".5", "+1", "NaN", "１"])
def test_parse_amount_refuses(text):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        parse_amount(text, 8)


@given(st.integers(min_value=0, max_value=10**40), st.sampled_from([0, 2, 6, 8, 18]))
def test_format_then_parse_round_trips(minor, decimals):  # type: ignore[no-untyped-def]
    assert parse_amount(format_amount(minor, decimals), decimals) == minor


def test_parse_price_refuses_floats_and_non_positive():
    assert parse_price("88.549") == Decimal("88.549")
    for bad in (88.5, "0", "0.000", "-1", "1e3"):
        with pytest.raises(ValidationError):
            parse_price(bad)  # type: ignore[arg-type]


def test_price_parts():
    assert price_parts(Decimal("88.549")) == (88549, 3)
    assert price_parts(Decimal("14250000")) == (14250000, 0)
    assert price_parts(Decimal("1E+3")) == (1000, 0)


def test_valuation_rounds_once_per_customer_not_per_line():
    # Two lines of 0.6 yen each: per-line flooring would give 0, the contract gives 1.
    lines, total = value_positions([("A", 6, 1, Decimal("1")), ("B", 6, 1, Decimal("1"))])
    assert [line.value_exact for line in lines] == ["0.6", "0.6"]
    assert total == 1


@given(st.lists(st.tuples(st.integers(0, 10**26), st.sampled_from([0, 8, 18]),
                          st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100000000"),
                                      places=3, allow_nan=False)), min_size=1, max_size=5))
def test_valuation_matches_exact_fraction_floor(items):  # type: ignore[no-untyped-def]
    from fractions import Fraction

    _lines, total = value_positions([("X", a, d, p) for a, d, p in items])
    exact = sum(Fraction(a) * Fraction(p) / 10**d for a, d, p in items)
    assert total == exact.numerator // exact.denominator


def test_format_yen():
    assert format_yen(1234567, "ja") == "¥1,234,567"
    assert format_yen(0, "en") == "JPY 0"

