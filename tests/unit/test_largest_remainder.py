"""Largest remainder LR(T, w): exact sums, floor or floor + 1, the tie-break, and the fast
selection path (more than 4096 weights) against a plain full sort, including inputs built to
defeat its sampling."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.domain.largest_remainder import _threshold, apportion, largest_remainder


def naive_lr(total: int, weights: list[int], keys: list) -> list[int]:
    big_w = sum(weights)
    if big_w == 0:
        return [0] * len(weights)
    shares = [total * w // big_w for w in weights]
    leftover = total - sum(shares)
    ranked = sorted((i for i, w in enumerate(weights) if w > 0),
                    key=lambda i: (-(total * weights[i] % big_w), keys[i]))
    for i in ranked[:leftover]:
        shares[i] += 1
    return shares


@st.composite
def lr_problems(draw: st.DrawFn, max_size: int = 40) -> tuple[int, list[int], list]:
    weights = draw(st.lists(st.one_of(st.integers(0, 10), st.integers(0, 10**6), st.integers(0, 2**70)),
                            max_size=max_size))
    total = draw(st.integers(0, sum(weights)))
    keys = [(-draw(st.integers(0, 3)), i) for i in range(len(weights))]  # many equal E
    return total, weights, keys


@settings(max_examples=300, deadline=None)
@given(lr_problems())
def test_lr_matches_the_definition(problem: tuple[int, list[int], list]) -> None:
    total, weights, keys = problem
    shares = largest_remainder(total, weights, keys)
    assert shares == naive_lr(total, weights, keys)
    assert sum(shares) == total
    big_w = sum(weights)
    for w, x in zip(weights, shares):
        floor_share = total * w // big_w if big_w else 0
        assert floor_share <= x <= floor_share + 1
        assert 0 <= x <= w  # never more than the weight (T <= W)
        if w == 0:
            assert x == 0


def test_examples_from_the_spec_cases() -> None:
    # 03: a plain haircut, the leftover yen goes to the largest fraction (C003: .82).
    assert largest_remainder(2_000_000, [1_000_000, 2_000_000, 333_333], [0, 1, 2]) == [600_000, 1_200_000, 200_000]
    # 10: bucket 2 ties at .5 between C003 (E 1,000,000) and C004 (E 5,000,000): larger E wins.
    eligible = [150_000, 200_000, 1_000_000, 5_000_000, 600_000]
    keys = [(-e, f"C00{i + 1}") for i, e in enumerate(eligible)]
    assert largest_remainder(1_000_001, [0, 0, 800_000, 800_000, 400_000], keys) == [0, 0, 400_000, 400_001, 200_000]


def test_tie_break_is_e_then_id_by_code_points() -> None:
    keys = [(-5, "b"), (-5, "a"), (-7, "z"), (-5, "É"), (-5, "Z")]
    # Five equal weights, 2 yen: all fractions equal, so E desc then id asc ("Z" < "a" < "b" < "É").
    assert largest_remainder(2, [1, 1, 1, 1, 1], keys) == [0, 0, 1, 0, 1]
    assert largest_remainder(3, [1, 1, 1, 1, 1], keys) == [0, 1, 1, 0, 1]


def test_edges() -> None:
    assert largest_remainder(0, [], []) == []
    assert largest_remainder(0, [0, 0], [1, 2]) == [0, 0]
    assert largest_remainder(7, [0, 7, 0], [1, 2, 3]) == [0, 7, 0]
    assert largest_remainder(5, [3, 2], [1, 2]) == [3, 2]  # T = W: everyone in full
    with pytest.raises(ValueError):
        largest_remainder(8, [3, 4], [1, 2])  # T > W
    with pytest.raises(ValueError):
        largest_remainder(-1, [3, 4], [1, 2])
    with pytest.raises(ValueError):
        largest_remainder(1, [3, -4], [1, 2])
    with pytest.raises(ValueError):
        largest_remainder(1, [3, 1.0], [1, 2])
    with pytest.raises(ValueError):
        largest_remainder(1, [3, 4], [1])


@settings(max_examples=12, deadline=None)
@given(st.integers(4097, 20_000), st.integers(0, 2**32), st.sampled_from(["random", "few", "sorted", "zeros"]))
def test_large_inputs_match_a_full_sort(n: int, seed: int, shape: str) -> None:
    rng = random.Random(seed)
    if shape == "random":
        weights = [rng.randrange(10**9) for _ in range(n)]
    elif shape == "few":  # many equal weights: big ties at the threshold
        weights = [rng.choice([1, 2, 3, 5, 8]) * 1000 for _ in range(n)]
    elif shape == "sorted":
        weights = sorted(rng.randrange(10**6) for _ in range(n))
    else:  # mostly zero weights
        weights = [rng.randrange(10**6) if rng.random() < 0.05 else 0 for _ in range(n)]
    total = rng.randrange(sum(weights) + 1)
    eligible = [rng.randrange(5) for _ in range(n)]
    keys = [(-e, i) for i, e in enumerate(eligible)]
    expected = naive_lr(total, weights, keys)
    assert largest_remainder(total, weights, keys) == expected
    assert apportion(total, weights, lambda i: -eligible[i]) == expected  # the engine's form


@pytest.mark.parametrize("pattern", ["stride_zeros", "stride_max", "all_equal", "two_values"])
def test_threshold_is_exact_even_when_sampling_is_fooled(pattern: str) -> None:
    n = 50_000
    stride = n // 2048
    rng = random.Random(pattern)
    values = [rng.randrange(1, 10**12) for _ in range(n)]
    if pattern == "stride_zeros":  # the strided sample only sees zeros
        values = [0 if i % stride == 0 else v for i, v in enumerate(values)]
    elif pattern == "stride_max":  # ... or only values above everything else
        values = [10**13 + i if i % stride == 0 else v for i, v in enumerate(values)]
    elif pattern == "all_equal":
        values = [42] * n
    else:
        values = [7 if i % 3 else 9 for i in range(n)]
    ordered = sorted(values, reverse=True)
    for k in (1, 2, n // 3, n // 2, n - 1, n):
        theta, above, tied = _threshold(values, k)
        assert theta == ordered[k - 1]
        assert above == sum(v > theta for v in values)
        assert tied == values.count(theta)
