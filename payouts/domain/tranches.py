"""Priority tranches: an eligible claim cut into buckets paid in order when money is short.

Bucket j holds min(E, t_j) - min(E, t_(j-1)) with t_0 = 0 and a last bucket without a top
(step 5 of the allocation contract).
"""

from __future__ import annotations

from collections.abc import Sequence


def tranche_buckets(eligible_jpy: int, tranches_jpy: Sequence[int]) -> list[tuple[int, int | None, int]]:
    """(low, high or None, the part of ``eligible_jpy`` in [low, high)) for every bucket."""
    bounds = [0, *tranches_jpy]
    buckets = []
    for index, low in enumerate(bounds):
        high = bounds[index + 1] if index + 1 < len(bounds) else None
        top = eligible_jpy if high is None else min(eligible_jpy, high)
        buckets.append((low, high, top - min(eligible_jpy, low)))
    return buckets
