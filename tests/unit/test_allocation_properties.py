"""Property tests of the allocation engine: every invariant of shared/spec/allocation.md.

Random scenarios (customers with JPY/BTC/ETH and other 0/8/18-decimal assets, amounts above
2^64, deductibles, caps, tranches, a reserve, layers with exclusions and aggregates) go through
parse_scenario and allocate. Besides the invariants, each result is compared with a slow,
literal reading of the spec (Fractions, full sorts): the fast engine must agree to the yen.
"""

from __future__ import annotations

import random
from fractions import Fraction
from math import floor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payouts.domain.allocation import (
    CustomerResults,
    InvariantViolation,
    _check_monotone,
    allocate,
    check_invariants,
    parse_scenario,
    result_to_json,
)

PROFILE = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INCIDENT_TYPES = ["hack", "operational_failure", "insider_fraud"]
# Ids with non-ASCII characters, so that "ascending code points" is really tested.
ID_ALPHABET = "aAbBzZ09-_é漢😀"


# --------------------------------------------------------------------------------------------
# Reference: the spec read literally, with Fractions and full sorts.
# --------------------------------------------------------------------------------------------


def ref_lr(total: int, weights: dict[str, int], eligible: dict[str, int]) -> dict[str, int]:
    """LR(T, w): floors, then leftover units by (fraction desc, E desc, id asc) among w > 0.
    The fraction of T*w/W is (T*w mod W)/W with the same W for all: compare T*w mod W."""
    big_w = sum(weights.values())
    assert 0 <= total <= big_w
    if big_w == 0:
        return {k: 0 for k in weights}
    shares = {k: total * w // big_w for k, w in weights.items()}
    fraction = {k: total * w % big_w for k, w in weights.items()}
    leftover = total - sum(shares.values())
    ranked = sorted((k for k in weights if weights[k] > 0), key=lambda k: (-fraction[k], -eligible[k], k))
    for k in ranked[:leftover]:
        shares[k] += 1
    return shares


def reference(scn: dict[str, Any]) -> dict[str, Any]:
    prices = {code: (a["decimals"], Fraction(a["ref_price_jpy"])) for code, a in scn["assets"].items()}
    approved = {}
    for c in scn["customers"]:
        value = sum((p["amount_minor"] * prices[p["asset"]][1] / 10 ** prices[p["asset"]][0]
                     for p in c["positions"]), Fraction(0))
        approved[c["id"]] = floor(value)
    d, cap = scn["customer_terms"]["deductible_jpy"], scn["customer_terms"]["cap_jpy"]
    eligible = {k: max(v - d, 0) if cap is None else min(max(v - d, 0), cap) for k, v in approved.items()}
    loss = sum(eligible.values())
    need = loss
    reserve_used = min(scn["reserve_jpy"], need)
    need -= reserve_used
    sources = [{"id": "reserve", "available_jpy": scn["reserve_jpy"], "used_jpy": reserve_used}]
    for layer in sorted(scn["layers"], key=lambda l: (l["attachment_jpy"], l["id"])):
        if scn["incident_type"] in layer["excluded_incident_types"]:
            available = 0
        else:
            band = min(layer["limit_jpy"], max(0, loss - layer["attachment_jpy"]))
            available = floor(band * Fraction(layer["share"]))
            if layer["aggregate_remaining_jpy"] is not None:
                available = min(available, layer["aggregate_remaining_jpy"])
        used = min(available, need)
        need -= used
        g = layer["aggregate_remaining_jpy"]
        sources.append({"id": layer["id"], "available_jpy": available, "used_jpy": used,
                        "aggregate_remaining_after_jpy": None if g is None else g - used})
    funded = loss - need
    if funded == loss:
        payout = dict(eligible)
    else:
        payout = {k: 0 for k in eligible}
        bounds = [0, *scn["priority_tranches_jpy"], None]
        money = funded
        for lo, hi in zip(bounds, bounds[1:]):
            bucket = {k: (e if hi is None else min(e, hi)) - min(e, lo) for k, e in eligible.items()}
            if money >= sum(bucket.values()):
                money -= sum(bucket.values())
                payout = {k: payout[k] + bucket[k] for k in payout}
                continue
            extra = ref_lr(money, bucket, eligible)
            payout = {k: payout[k] + extra[k] for k in payout}
            break
    remaining = dict(payout)
    split = {k: {} for k in payout}
    for s in sources:
        part = ref_lr(s["used_jpy"], remaining, eligible)
        for k in remaining:
            split[k][s["id"]] = part[k]
            remaining[k] -= part[k]
    assert all(r == 0 for r in remaining.values())
    return {
        "total_eligible_jpy": loss, "total_funded_jpy": funded, "shortfall_jpy": loss - funded,
        "sources": sources,
        "customers": [{"id": k, "approved_jpy": approved[k], "eligible_jpy": eligible[k],
                       "payout_jpy": payout[k], "by_source": split[k],
                       "not_covered_jpy": approved[k] - eligible[k],
                       "unpaid_jpy": eligible[k] - payout[k]} for k in sorted(payout)],
    }


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


def decimal_string(numerator: int, scale: int) -> str:
    digits = str(numerator).rjust(scale + 1, "0")
    return digits if scale == 0 else f"{digits[:-scale]}.{digits[-scale:]}"


prices = st.builds(decimal_string, st.integers(1, 10**11), st.integers(0, 6))


@st.composite
def asset_tables(draw: st.DrawFn) -> dict[str, Any]:
    assets = {
        "JPY": {"decimals": 0, "ref_price_jpy": "1"},
        "BTC": {"decimals": 8, "ref_price_jpy": draw(prices)},
        "ETH": {"decimals": 18, "ref_price_jpy": draw(prices)},
    }
    for code in draw(st.lists(st.sampled_from(["XRP", "USDT", "DOGE"]), unique=True, max_size=2)):
        assets[code] = {"decimals": draw(st.sampled_from([0, 8, 18])), "ref_price_jpy": draw(prices)}
    return assets


def amounts(decimals: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 10 ** (decimals + 3)),  # up to a few thousand whole units
        st.integers(0, 10 ** (decimals // 2 + 1)),  # dust
        st.integers(2**64, 2**72),  # above 2^64
        st.just(0),
    )


@st.composite
def scenarios(draw: st.DrawFn, max_customers: int = 25) -> dict[str, Any]:
    assets = draw(asset_tables())
    codes = sorted(assets)
    size = draw(st.integers(0, max_customers))  # hypothesis' own list sizes favour tiny lists
    ids = draw(st.lists(st.text(ID_ALPHABET, min_size=1, max_size=4), unique=True, min_size=size, max_size=size))
    customers = []
    for cid in ids:
        positions = []
        for code in draw(st.lists(st.sampled_from(codes), max_size=3)):
            positions.append({"asset": code, "amount_minor": draw(amounts(assets[code]["decimals"]))})
        customers.append({"id": cid, "positions": positions})
    # Scale the money side to the loss, so that shortfalls, tranches and layer bands matter.
    values = [
        floor(sum((Fraction(p["amount_minor"]) * Fraction(assets[p["asset"]]["ref_price_jpy"])
                   / 10 ** assets[p["asset"]]["decimals"] for p in c["positions"]), Fraction(0)))
        for c in customers
    ]
    top = max(values, default=0) + 1
    deductible = draw(st.one_of(st.just(0), st.integers(0, top)))
    cap = draw(st.one_of(st.none(), st.integers(0, top)))
    loss = sum(min(max(v - deductible, 0), top if cap is None else cap) for v in values) + 1
    money = st.one_of(st.integers(0, loss // 4), st.integers(0, 2 * loss))  # shortfalls are common
    tranches = sorted(draw(st.lists(st.integers(1, top + 1), unique=True, max_size=4)))
    layers = []
    for i in range(draw(st.integers(0, 4))):
        layers.append({
            "id": draw(st.sampled_from([f"L{i}", f"X{i}", f"é{i}"])),
            "attachment_jpy": draw(st.one_of(st.just(0), money)),
            "limit_jpy": draw(money),
            "share": decimal_string(*draw(st.integers(0, 4).flatmap(
                lambda s: st.tuples(st.integers(1, 10**s), st.just(s))))),
            "aggregate_remaining_jpy": draw(st.one_of(st.none(), money)),
            "excluded_incident_types": draw(st.lists(st.sampled_from(INCIDENT_TYPES), unique=True, max_size=2)),
        })
    return {
        "incident_type": draw(st.sampled_from(INCIDENT_TYPES)),
        "assets": assets,
        "customers": customers,
        "customer_terms": {"deductible_jpy": deductible, "cap_jpy": cap},
        "priority_tranches_jpy": tranches,
        "reserve_jpy": draw(st.one_of(st.just(0), money)),
        "layers": layers,
    }


def run(scn: dict[str, Any]) -> tuple[Any, Any]:
    inp = parse_scenario(scn)
    return inp, allocate(inp)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@PROFILE
@given(scenarios())
def test_agrees_with_a_literal_reading_of_the_spec(scn: dict[str, Any]) -> None:
    _, result = run(scn)
    assert result_to_json(result) == reference(scn)


@PROFILE
@given(scenarios())
def test_every_invariant_holds(scn: dict[str, Any]) -> None:
    inp, result = run(scn)
    check_invariants(inp, result)  # the production check must accept a correct result
    sources, customers = result.sources, list(result.customers)
    loss, funded = result.total_eligible_jpy, result.total_funded_jpy
    amounts_seen = [loss, funded, result.shortfall_jpy]
    for s in sources:
        amounts_seen += [s.available_jpy, s.used_jpy]
        assert s.used_jpy <= s.available_jpy
    for c in customers:
        amounts_seen += [c.approved_jpy, c.eligible_jpy, c.payout_jpy, *c.by_source]
        assert 0 <= c.payout_jpy <= c.eligible_jpy <= c.approved_jpy
        assert sum(c.by_source) == c.payout_jpy
        assert c.not_covered_jpy == c.approved_jpy - c.eligible_jpy
        assert c.unpaid_jpy == c.eligible_jpy - c.payout_jpy
    assert all(type(a) is int and a >= 0 for a in amounts_seen)
    for j, s in enumerate(sources):
        assert sum(c.by_source[j] for c in customers) == s.used_jpy
    capacity = inp.reserve_jpy + sum(s.available_jpy for s in sources[1:])
    assert sum(s.used_jpy for s in sources) == sum(c.payout_jpy for c in customers) == funded
    assert funded == min(loss, capacity)
    assert loss == sum(c.eligible_jpy for c in customers)
    assert result.shortfall_jpy == loss - funded
    if funded == loss:
        assert all(c.payout_jpy == c.eligible_jpy for c in customers)
    ids = [c.id for c in customers]
    assert ids == sorted(c["id"] for c in scn["customers"])
    json_sources = result_to_json(result)["sources"]
    assert "aggregate_remaining_after_jpy" not in json_sources[0]
    assert all("aggregate_remaining_after_jpy" in s for s in json_sources[1:])


@PROFILE
@given(scenarios())
def test_larger_claims_never_get_less_and_equal_claims_differ_by_at_most_one_yen(scn: dict[str, Any]) -> None:
    _, result = run(scn)
    customers = list(result.customers)
    for a in customers:
        for b in customers:
            if a.eligible_jpy < b.eligible_jpy:
                assert a.payout_jpy <= b.payout_jpy
            elif a.eligible_jpy == b.eligible_jpy:
                assert abs(a.payout_jpy - b.payout_jpy) <= 1


@PROFILE
@given(scenarios(), st.randoms(use_true_random=False))
def test_shuffling_customers_layers_assets_and_positions_changes_nothing(
    scn: dict[str, Any], rng: random.Random
) -> None:
    expected = result_to_json(run(scn)[1])
    shuffled = dict(scn)
    shuffled["customers"] = [
        {"id": c["id"], "positions": rng.sample(c["positions"], len(c["positions"]))}
        for c in rng.sample(scn["customers"], len(scn["customers"]))
    ]
    shuffled["layers"] = rng.sample(scn["layers"], len(scn["layers"]))
    shuffled["assets"] = dict(rng.sample(list(scn["assets"].items()), len(scn["assets"])))
    assert result_to_json(run(shuffled)[1]) == expected


@settings(max_examples=5, deadline=None)
@given(st.integers(4200, 5000), st.integers(0, 2**32), st.sampled_from([(), (150_000,), (50_000, 400_000)]))
def test_large_runs_agree_with_the_reference(n: int, seed: int, tranches: tuple[int, ...]) -> None:
    """Above 4096 customers the engine's LR selects by sampling: check it against full sorts,
    with many equal claims (ties) and a shortfall through several sources."""
    rng = random.Random(seed)
    customers = [
        {"id": f"C{i:05d}", "positions": [{"asset": "JPY", "amount_minor": rng.choice(
            [100_000, 250_000, 500_000, rng.randrange(1, 2_000_000)])}]}
        for i in range(n)
    ]
    rng.shuffle(customers)
    loss = sum(c["positions"][0]["amount_minor"] for c in customers)
    scn = {
        "incident_type": "hack",
        "assets": {"JPY": {"decimals": 0, "ref_price_jpy": "1"}},
        "customers": customers,
        "customer_terms": {"deductible_jpy": rng.choice([0, 1_000]), "cap_jpy": rng.choice([None, 1_500_000])},
        "priority_tranches_jpy": list(tranches),
        "reserve_jpy": rng.randrange(loss // 5),
        "layers": [
            {"id": "L1", "attachment_jpy": loss // 10, "limit_jpy": loss // 4, "share": "0.7",
             "aggregate_remaining_jpy": None, "excluded_incident_types": []},
            {"id": "L2", "attachment_jpy": loss // 3, "limit_jpy": loss // 4, "share": "0.333",
             "aggregate_remaining_jpy": rng.randrange(loss // 10), "excluded_incident_types": []},
        ],
    }
    inp, result = run(scn)
    check_invariants(inp, result)
    assert result.shortfall_jpy > 0
    assert result_to_json(result) == reference(scn)


# --------------------------------------------------------------------------------------------
# The production check catches broken results
# --------------------------------------------------------------------------------------------

TAMPER_SCENARIO = {
    "incident_type": "hack",
    "assets": {"JPY": {"decimals": 0, "ref_price_jpy": "1"}},
    "customers": [{"id": f"C{i}", "positions": [{"asset": "JPY", "amount_minor": a}]}
                  for i, a in enumerate([100, 200, 300, 300, 1000])],
    "customer_terms": {"deductible_jpy": 0, "cap_jpy": None},
    "priority_tranches_jpy": [],
    "reserve_jpy": 700,
    "layers": [{"id": "L1", "attachment_jpy": 0, "limit_jpy": 500, "share": "0.5",
                "aggregate_remaining_jpy": None, "excluded_incident_types": []}],
}


def _tampered(result: Any, customer: int, **changes: Any) -> Any:
    rows = list(result.customers)
    rows[customer] = rows[customer]._replace(**changes)
    customers = CustomerResults.from_rows(rows, len(result.sources))
    return type(result)(result.total_eligible_jpy, result.total_funded_jpy, result.shortfall_jpy,
                        result.sources, customers)


@pytest.mark.parametrize("customer, changes", [
    (0, {"payout_jpy": 49, "by_source": (36, 13)}),  # sum of P and the reserve column off by 1
    (4, {"by_source": (369, 131)}),  # each source's column no longer sums to its used
    (4, {"by_source": (0, 0)}),  # the split does not sum to P
    (1, {"eligible_jpy": 150}),  # E not derived from V, and sum of E is not L
    (0, {"payout_jpy": 101, "by_source": (88, 13)}),  # P > E
    (0, {"by_source": (51, -1)}),  # a negative amount
    (0, {"id": "Z"}),  # not an input customer, and out of id order
    (0, {"approved_jpy": 100.0}),  # not an int
])
def test_check_invariants_rejects_a_tampered_result(customer: int, changes: dict[str, Any]) -> None:
    inp, result = run(TAMPER_SCENARIO)
    check_invariants(inp, result)
    with pytest.raises(InvariantViolation):
        check_invariants(inp, _tampered(result, customer, **changes))


def test_check_invariants_rejects_a_non_monotone_but_balanced_result() -> None:
    """Move 1 yen of reserve money between two equal claims so that every sum still matches but
    they now differ by 2 yen: only the monotonicity check can see it."""
    inp, result = run(TAMPER_SCENARIO)
    rows = list(result.customers)
    low, high = sorted([2, 3], key=lambda i: rows[i].payout_jpy)
    assert rows[low].eligible_jpy == rows[high].eligible_jpy == 300
    for i, delta in ((low, -1), (high, +1)):
        split = rows[i].by_source
        rows[i] = rows[i]._replace(payout_jpy=rows[i].payout_jpy + delta, by_source=(split[0] + delta, *split[1:]))
    broken = type(result)(result.total_eligible_jpy, result.total_funded_jpy, result.shortfall_jpy,
                          result.sources, CustomerResults.from_rows(rows, len(result.sources)))
    with pytest.raises(InvariantViolation, match="equal claims"):
        check_invariants(inp, broken)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=12))
def test_the_monotonicity_check_matches_its_definition(pairs: list[tuple[int, int]]) -> None:
    eligible, payout = [e for e, _ in pairs], [p for _, p in pairs]
    holds = all(
        (pa <= pb if ea < eb else abs(pa - pb) <= 1 if ea == eb else True)
        for ea, pa in pairs for eb, pb in pairs
    )
    if holds:
        _check_monotone(eligible, payout)
    else:
        with pytest.raises(InvariantViolation):
            _check_monotone(eligible, payout)


def test_customer_results_behave_like_a_read_only_list() -> None:
    inp, result = run(TAMPER_SCENARIO)
    customers = result.customers
    rows = list(customers)
    assert len(customers) == 5 and customers[0] == rows[0] and customers[-1] == rows[-1]
    assert customers[1:3] == rows[1:3] and customers == rows
    assert customers == CustomerResults.from_rows(rows, len(result.sources))
    assert customers != rows[:-1]
    assert rows[4].id == "C4" and rows[4].by_source == (368, 132)
    assert (rows[4].not_covered_jpy, rows[4].unpaid_jpy) == (0, 500)
    assert result.by_source_of(rows[4]) == {"reserve": 368, "L1": 132}
    assert customers.payout_jpy == tuple(r.payout_jpy for r in rows)
    with pytest.raises(AttributeError):
        customers.payout_jpy = ()  # type: ignore[misc]
    # check_invariants and result_to_json also take a plain list of rows.
    as_list = type(result)(result.total_eligible_jpy, result.total_funded_jpy, result.shortfall_jpy,
                           result.sources, rows)
    check_invariants(inp, as_list)
    assert result_to_json(as_list) == result_to_json(result)
