"""Largest remainder apportionment LR(T, w), in exact integer arithmetic.

LR(T, w) splits T whole yen in proportion to the weights w (0 <= T <= W = sum w): each gets
floor(T*w/W), and the T - sum(floors) leftover yen go one each to those with w > 0, ranked by
fractional part (largest first) and then by a tie-break that the caller supplies. For the
allocation engine that tie-break is eligible claim E (largest first), then id (ascending code
points).

Fractional parts are compared exactly: the fractional part of T*w/W is (T*w mod W)/W and W is the
same for everyone, so comparing the integers T*w mod W compares the fractions.

Speed matters (a run apportions over a million customers several times), so instead of sorting
everyone by (fraction, tie-break) we find the leftover-th largest remainder by selection (expected
O(n), falling back to a sort), give a yen to everyone above it, and sort only the few tied *at*
it by the tie-break.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import compress, repeat
from math import isqrt
from operator import floordiv, mod, mul
from typing import Any

__all__ = ["largest_remainder", "apportion"]


def largest_remainder(total: int, weights: Sequence[int], tiebreak_keys: Sequence[Any]) -> list[int]:
    """LR(total, weights); among equal fractional parts the smaller tie-break key wins.

    ``tiebreak_keys[i]`` is any sortable key for weight i; for the spec's rule pass
    ``(-eligible_jpy, customer_id)``. Raises ValueError on bad arguments (a programming error,
    not user input: callers validate what people typed before it gets here).
    """
    weights = list(weights)
    keys = list(tiebreak_keys)
    if len(keys) != len(weights):
        raise ValueError("one tie-break key per weight is required")
    for w in weights:
        if type(w) is not int or w < 0:
            raise ValueError(f"weights must be integers >= 0, got {w!r}")
    if type(total) is not int:
        raise ValueError(f"total must be an integer, got {total!r}")
    return apportion(total, weights, keys.__getitem__)


def apportion(
    total: int,
    weights: Sequence[int],
    tie_key: Callable[[int], Any],
    weight_sum: int | None = None,
    *,
    tie_descending: bool = False,
) -> list[int]:
    """LR(total, weights); equal fractional parts are ranked by ``tie_key(index)``, smaller
    first (larger first with ``tie_descending``).

    Indices with equal tie keys keep ascending index order (the sort is stable, also when
    descending), so the engine, whose indices are in id order, passes ``eligible.__getitem__``
    with ``tie_descending=True`` for "E descending, then id ascending", a key that runs in C.
    Weights are trusted to be ints >= 0 (hot path); ``weight_sum`` may be passed when known.
    """
    n = len(weights)
    W = sum(weights) if weight_sum is None else weight_sum
    if not 0 <= total <= W:
        raise ValueError(f"LR needs 0 <= total <= sum of weights, got {total} and {W}")
    if total == W:
        return list(weights)
    if total == 0:
        return [0] * n
    # map() with operator functions keeps the per-element work in C.
    products = list(map(mul, weights, repeat(total)))
    remainders = list(map(mod, products, repeat(W)))
    # sum(floors) = (T * W - sum(remainders)) / W, so the leftover is sum(remainders) / W.
    leftover = sum(remainders) // W
    if not leftover:
        return list(map(floordiv, products, repeat(W)))
    # The remainders sum to leftover * W and each is < W, so more than `leftover` of them are
    # nonzero: the winners all have a nonzero remainder (hence w > 0), as the contract requires.
    theta, above, tied = _threshold(remainders, leftover)
    tied_needed = leftover - above  # how many of those tied at theta win a yen
    if tied_needed == tied:  # all of them: no tie-break needed
        return [p // W + 1 if r >= theta else p // W for p, r in zip(products, remainders)]
    shares = [p // W + 1 if r > theta else p // W for p, r in zip(products, remainders)]
    tied_at = list(compress(range(n), map(theta.__eq__, remainders)))
    tied_at.sort(key=tie_key, reverse=tie_descending)
    for i in tied_at[:tied_needed]:
        shares[i] += 1
    return shares


def _threshold(values: list[int], k: int) -> tuple[int, int, int]:
    """(theta, above, tied): theta is the k-th largest value (counting repeats), ``above`` how
    many values exceed it and ``tied`` how many equal it. Expected O(n).

    Sorts a strided sample to bracket theta between two sample values, counts what lies above
    the bracket and sorts only what lies inside it (a few percent of the values). If the sample
    was unlucky (theta outside the bracket) it sorts everything instead, so the answer is always
    exact; only the speed depends on the data.
    """
    n = len(values)
    above, band = 0, values
    if n > 4096:
        sample = sorted(values[:: n // 2048])  # ascending, 2048 to 4095 values
        size = len(sample)
        centre = size - (k * size) // n  # where theta should sit in the sample
        margin = 2 * isqrt(size) + 8  # about 4 standard deviations of the sampling error
        low = sample[centre - margin] if centre - margin >= 0 else None
        high = sample[centre + margin] if centre + margin < size else None
        count_above = 0 if high is None else sum(map(high.__lt__, values))
        if count_above < k:
            if low is not None and high is not None:
                inside = [v for v in values if low <= v <= high]
            elif high is not None:
                inside = [v for v in values if v <= high]
            else:
                inside = values if low is None else [v for v in values if v >= low]
            if count_above + len(inside) >= k:  # theta is in [low, high]
                above, band = count_above, inside
    band = sorted(band)
    theta = band[len(band) - (k - above)]  # the (k - above)-th largest of the band
    first, past = bisect_left(band, theta), bisect_right(band, theta)
    return theta, above + len(band) - past, past - first
