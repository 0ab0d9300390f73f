"""Reserve adequacy: hand-computed requirements, refusals naming the field, stress helpers.

Every expected number below is worked out in the comment above it, so a reader can check the
rule's arithmetic without running anything.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from payouts.domain.adequacy import (
    MAX_RATE,
    STRESS_PRESETS,
    AdequacyInputs,
    Component,
    LayerCover,
    ReserveRule,
    VolumeRate,
    compute_requirement,
    parse_rule,
    rule_to_json,
    stress_loss_jpy,
    stress_preset,
    synthetic_customers,
    validate_inputs,
    validate_rule,
)
from payouts.domain.errors import ValidationError
from payouts.domain.money import MAX_YEN

D = Decimal


def make_rule(**changes: Any) -> ReserveRule:
    rule = ReserveRule(
        volume_rates=(VolumeRate("spot", D("0.0001")), VolumeRate("margin", D("0.0002")), VolumeRate("*", D("0.00005"))),
        cold_wallet_rate=D("0.001"),
        hot_wallet_rate=D("0.05"),
        incident_multiple=D("1.5"),
        incident_lookback_years=3,
        floor_jpy=100_000_000,
        cap_jpy=50_000_000_000,
        insurance_credit_ratio=D("0.8"),
        insurance_max_share=D("0.5"),
    )
    return replace(rule, **changes)


L1 = LayerCover("L1", 3_000_000_000, D("0.5"), None, True)
L2 = LayerCover("L2", 2_000_000_000, D("1"), 700_000_000, True)
L3 = LayerCover("L3", 5_000_000_000, D("1"), None, False)


def make_inputs(**changes: Any) -> AdequacyInputs:
    inputs = AdequacyInputs(
        volumes_12m={"spot": 1_234_567_890_123, "margin": 500_000_000_001, "futures": 10_000_000_007, "otc": 0},
        cold_wallet_jpy=200_000_000_000,
        hot_wallet_jpy=30_000_000_003,
        incident_losses_jpy=1_000_000_001,
        layers=(L1, L2, L3),
        reserve_balance_jpy=4_000_000_000,
    )
    return replace(inputs, **changes)


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------


def test_worked_example_every_step() -> None:
    req = compute_requirement(make_rule(), make_inputs())
    # Volume, by market name; "otc" traded nothing so has no line; "futures" has no rate of its
    # own and takes the "*" rate.
    #   futures 10,000,000,007 * 0.00005   =     500,000.00035   ->     500,000
    #   margin 500,000,000,001 * 0.0002    = 100,000,000.0002    -> 100,000,000
    #   spot 1,234,567,890,123 * 0.0001    = 123,456,789.0123    -> 123,456,789
    assert req.volume_components == (
        Component("futures", 10_000_000_007, D("0.00005"), 500_000),
        Component("margin", 500_000_000_001, D("0.0002"), 100_000_000),
        Component("spot", 1_234_567_890_123, D("0.0001"), 123_456_789),
    )
    assert req.volume_part_jpy == 223_956_789
    #   cold 200,000,000,000 * 0.001 = 200,000,000;  hot 30,000,000,003 * 0.05 = 1,500,000,000.15
    assert req.holdings_components == (
        Component("cold", 200_000_000_000, D("0.001"), 200_000_000),
        Component("hot", 30_000_000_003, D("0.05"), 1_500_000_000),
    )
    assert req.holdings_part_jpy == 1_700_000_000
    #   incident 1,000,000,001 * 1.5 = 1,500,000,001.5
    assert req.incident_component == Component("incident", 1_000_000_001, D("1.5"), 1_500_000_001)
    assert req.incident_part_jpy == 1_500_000_001
    #   223,956,789 + 1,700,000,000 + 1,500,000,001, inside [100,000,000, 50,000,000,000]
    assert req.sum_jpy == 3_423_956_790
    assert (req.gross_requirement_jpy, req.binding) == (3_423_956_790, "sum")
    #   L1: min(3,000,000,000 * 0.5, no aggregate) * 0.8 = 1,200,000,000
    #   L2: min(2,000,000,000 * 1, 700,000,000)   * 0.8 =   560,000,000 (aggregate binds)
    #   L3 does not qualify: no credit, no line.
    assert req.layer_credits == (("L1", 1_200_000_000), ("L2", 560_000_000))
    assert req.insurance_available_jpy == 1_760_000_000
    #   max share: floor(3,423,956,790 * 0.5) = 1,711,978,395 < 1,760,000,000 available
    assert req.insurance_offset_jpy == 1_711_978_395
    assert req.cash_requirement_jpy == 3_423_956_790 - 1_711_978_395 == 1_711_978_395
    assert req.reserve_balance_jpy == 4_000_000_000
    assert req.surplus_jpy == 2_288_021_605
    assert req.met


def test_floor_binds() -> None:
    # 1,000,000,000 * 0.0001 = 100,000 < floor 100,000,000
    inputs = make_inputs(volumes_12m={"spot": 1_000_000_000}, cold_wallet_jpy=0, hot_wallet_jpy=0,
                         incident_losses_jpy=0, layers=(), reserve_balance_jpy=99_999_999)
    req = compute_requirement(make_rule(), inputs)
    assert req.sum_jpy == 100_000
    assert (req.gross_requirement_jpy, req.binding) == (100_000_000, "floor")
    assert (req.insurance_available_jpy, req.insurance_offset_jpy) == (0, 0)
    assert req.cash_requirement_jpy == 100_000_000
    assert req.surplus_jpy == -1 and not req.met


def test_cap_binds_and_insurance_limited_by_what_is_available() -> None:
    # incident 100,000,000,000 * 1.5 = 150,000,000,000; with the rest the sum exceeds the cap.
    req = compute_requirement(make_rule(), make_inputs(incident_losses_jpy=100_000_000_000))
    assert req.sum_jpy == 223_956_789 + 1_700_000_000 + 150_000_000_000
    assert (req.gross_requirement_jpy, req.binding) == (50_000_000_000, "cap")
    # floor(50,000,000,000 * 0.5) = 25,000,000,000 > 1,760,000,000 available: credits bind.
    assert req.insurance_offset_jpy == req.insurance_available_jpy == 1_760_000_000
    assert req.cash_requirement_jpy == 48_240_000_000
    # Deficit: 4,000,000,000 - 48,240,000,000
    assert req.surplus_jpy == -44_240_000_000 and not req.met


def test_no_cap_and_sum_equal_to_floor_is_the_sum() -> None:
    inputs = make_inputs(volumes_12m={}, cold_wallet_jpy=0, hot_wallet_jpy=2_000_000_000, incident_losses_jpy=0)
    # hot 2,000,000,000 * 0.05 = 100,000,000 = the floor exactly
    req = compute_requirement(make_rule(cap_jpy=None), inputs)
    assert (req.sum_jpy, req.gross_requirement_jpy, req.binding) == (100_000_000, 100_000_000, "sum")
    assert req.volume_components == ()
    req = compute_requirement(make_rule(cap_jpy=None), make_inputs(incident_losses_jpy=10**14))
    assert req.binding == "sum" and req.gross_requirement_jpy == req.sum_jpy


def test_market_without_rate_and_without_wildcard_rates_zero() -> None:
    rule = make_rule(volume_rates=(VolumeRate("spot", D("0.0001")),))
    req = compute_requirement(rule, make_inputs())
    assert [(c.key, c.rate, c.amount_jpy) for c in req.volume_components] == [
        ("futures", D(0), 0),
        ("margin", D(0), 0),
        ("spot", D("0.0001"), 123_456_789),
    ]
    assert req.volume_part_jpy == 123_456_789


def test_wildcard_does_not_override_a_market_with_its_own_rate() -> None:
    rule = make_rule(volume_rates=(VolumeRate("*", D("0.001")), VolumeRate("spot", D("0"))))
    req = compute_requirement(rule, make_inputs(volumes_12m={"spot": 10**12, "margin": 10**9}))
    assert [(c.key, c.amount_jpy) for c in req.volume_components] == [("margin", 1_000_000), ("spot", 0)]


def test_insurance_limited_by_max_share() -> None:
    # gross = floor 100,000,000; max share 0.25 -> 25,000,000 of 1,760,000,000 available
    inputs = make_inputs(volumes_12m={}, cold_wallet_jpy=0, hot_wallet_jpy=0, incident_losses_jpy=0)
    req = compute_requirement(make_rule(insurance_max_share=D("0.25")), inputs)
    assert req.insurance_available_jpy == 1_760_000_000
    assert req.insurance_offset_jpy == 25_000_000
    assert req.cash_requirement_jpy == 75_000_000
    # no insurance may count at all
    req = compute_requirement(make_rule(insurance_max_share=D(0)), inputs)
    assert (req.insurance_offset_jpy, req.cash_requirement_jpy) == (0, 100_000_000)
    # all of it may: cash is what the credits leave, never below zero
    req = compute_requirement(make_rule(insurance_max_share=D(1), insurance_credit_ratio=D(1)), inputs)
    assert (req.insurance_offset_jpy, req.cash_requirement_jpy) == (100_000_000, 0)


def test_insurance_limited_by_aggregate_remaining() -> None:
    layers = (
        LayerCover("A", 1_000_000_000, D("1"), 0, True),  # aggregate used up: 0
        LayerCover("B", 1_000_000_000, D("0.3"), 250_000_000, True),  # min(300M, 250M) * 0.8
        LayerCover("C", 1_000_000_000, D("0.3"), 350_000_000, True),  # min(300M, 350M) * 0.8
    )
    req = compute_requirement(make_rule(), make_inputs(layers=layers))
    assert req.layer_credits == (("A", 0), ("B", 200_000_000), ("C", 240_000_000))
    assert req.insurance_available_jpy == 440_000_000
    assert req.insurance_offset_jpy == 440_000_000  # under floor(gross * 0.5)


def test_non_qualifying_layers_are_ignored() -> None:
    only_l3 = compute_requirement(make_rule(), make_inputs(layers=(L3,)))
    none = compute_requirement(make_rule(), make_inputs(layers=()))
    assert only_l3.layer_credits == () and only_l3.insurance_available_jpy == 0
    assert only_l3 == none


def test_layer_credit_is_floored_once() -> None:
    # 3 * 0.5 = 1.5; * 0.8 = 1.2 -> 1 (flooring 1.5 first would give 0.8 -> 0)
    rule = make_rule()
    req = compute_requirement(rule, make_inputs(layers=(LayerCover("X", 3, D("0.5"), None, True),)))
    assert req.layer_credits == (("X", 1),)
    # aggregate compared exactly: min(1.5, 1) * 0.8 = 0.8 -> 0; min(1.5, 2) * 0.8 -> 1
    req = compute_requirement(rule, make_inputs(layers=(LayerCover("X", 3, D("0.5"), 1, True),)))
    assert req.layer_credits == (("X", 0),)
    req = compute_requirement(rule, make_inputs(layers=(LayerCover("X", 3, D("0.5"), 2, True),)))
    assert req.layer_credits == (("X", 1),)


def test_max_share_is_floored() -> None:
    # gross 100,000,001 (floor) * 0.5 = 50,000,000.5 -> 50,000,000
    inputs = make_inputs(volumes_12m={}, cold_wallet_jpy=0, hot_wallet_jpy=0, incident_losses_jpy=0)
    req = compute_requirement(make_rule(floor_jpy=100_000_001), inputs)
    assert req.insurance_offset_jpy == 50_000_000
    assert req.cash_requirement_jpy == 50_000_001


def test_surplus_zero_is_met() -> None:
    first = compute_requirement(make_rule(), make_inputs())
    req = compute_requirement(make_rule(), make_inputs(reserve_balance_jpy=first.cash_requirement_jpy))
    assert req.surplus_jpy == 0 and req.met


def test_volume_order_does_not_matter() -> None:
    a = compute_requirement(make_rule(), make_inputs(volumes_12m={"spot": 5, "margin": 7}))
    b = compute_requirement(make_rule(), make_inputs(volumes_12m={"margin": 7, "spot": 5}))
    assert a == b


def test_largest_inputs_stay_exact() -> None:
    inputs = make_inputs(volumes_12m={"spot": MAX_YEN}, cold_wallet_jpy=MAX_YEN, hot_wallet_jpy=MAX_YEN,
                         incident_losses_jpy=MAX_YEN, reserve_balance_jpy=MAX_YEN)
    rule = make_rule(volume_rates=(VolumeRate("spot", MAX_RATE),), cold_wallet_rate=D("0.000000000000000001"),
                     hot_wallet_rate=MAX_RATE, incident_multiple=MAX_RATE, cap_jpy=None)
    req = compute_requirement(rule, inputs)
    # 10^15 * 10^-18 = 0.001 -> 0; the others 10^17 each: within a 64-bit column.
    assert req.holdings_components[0].amount_jpy == 0
    assert req.sum_jpy == 3 * 10**17
    assert max(c.amount_jpy for c in (*req.volume_components, *req.holdings_components)) < 2**63


# --------------------------------------------------------------------------------------------
# Bad input: each refusal names the field
# --------------------------------------------------------------------------------------------

RULE_CASES = [
    ({"cold_wallet_rate": D("-0.001")}, "cold_wallet_rate"),
    ({"hot_wallet_rate": 0.05}, "hot_wallet_rate"),  # float
    ({"hot_wallet_rate": True}, "hot_wallet_rate"),
    ({"hot_wallet_rate": 1}, "hot_wallet_rate"),  # int: rates are Decimals
    ({"hot_wallet_rate": "0.05"}, "hot_wallet_rate"),
    ({"incident_multiple": D("NaN")}, "incident_multiple"),
    ({"incident_multiple": D("Infinity")}, "incident_multiple"),
    ({"incident_multiple": MAX_RATE + D("0.1")}, "incident_multiple"),
    ({"incident_multiple": D("1E-19")}, "incident_multiple"),  # more than 18 places
    ({"incident_multiple": D("1E-100000000")}, "incident_multiple"),  # refused without big ints
    ({"incident_lookback_years": 0}, "incident_lookback_years"),
    ({"incident_lookback_years": 21}, "incident_lookback_years"),
    ({"incident_lookback_years": 3.0}, "incident_lookback_years"),
    ({"incident_lookback_years": True}, "incident_lookback_years"),
    ({"floor_jpy": -1}, "floor_jpy"),
    ({"floor_jpy": 1e8}, "floor_jpy"),
    ({"floor_jpy": False}, "floor_jpy"),
    ({"cap_jpy": 99_999_999}, "cap_jpy"),  # below the floor
    ({"cap_jpy": MAX_YEN + 1}, "cap_jpy"),
    ({"insurance_credit_ratio": D("1.01")}, "insurance_credit_ratio"),
    ({"insurance_credit_ratio": D("-0.1")}, "insurance_credit_ratio"),
    ({"insurance_max_share": D("2")}, "insurance_max_share"),
    ({"insurance_max_share": 0.5}, "insurance_max_share"),
    ({"volume_rates": (VolumeRate("spot", D("-0.1")),)}, "volume_rates[0].rate"),
    ({"volume_rates": (VolumeRate("spot", D("1")), VolumeRate("spot", D("0.5")))}, "volume_rates[1].market"),
    ({"volume_rates": (VolumeRate("spot", 0.0001),)}, "volume_rates[0].rate"),
    ({"volume_rates": (VolumeRate("", D("0.1")),)}, "volume_rates[0].market"),
    ({"volume_rates": (VolumeRate(" spot", D("0.1")),)}, "volume_rates[0].market"),
    ({"volume_rates": (VolumeRate("x" * 41, D("0.1")),)}, "volume_rates[0].market"),
    ({"volume_rates": (("spot", D("0.1")),)}, "volume_rates[0]"),
    ({"volume_rates": {"spot": D("0.1")}}, "volume_rates"),
]


@pytest.mark.parametrize("changes, field", RULE_CASES)
def test_bad_rule_names_the_field(changes: dict[str, Any], field: str) -> None:
    rule = make_rule(**changes)
    with pytest.raises(ValidationError) as info:
        validate_rule(rule)
    assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        compute_requirement(rule, make_inputs())
    assert info.value.field == field


INPUT_CASES = [
    ({"volumes_12m": {"spot": -1}}, "volumes_12m.spot"),
    ({"volumes_12m": {"spot": 1.0}}, "volumes_12m.spot"),
    ({"volumes_12m": {"spot": True}}, "volumes_12m.spot"),
    ({"volumes_12m": {"spot": MAX_YEN + 1}}, "volumes_12m.spot"),
    ({"volumes_12m": {"*": 5}}, "volumes_12m.*"),
    ({"volumes_12m": {"": 5}}, "volumes_12m."),
    ({"volumes_12m": [("spot", 5)]}, "volumes_12m"),
    ({"cold_wallet_jpy": -5}, "cold_wallet_jpy"),
    ({"hot_wallet_jpy": 5.0}, "hot_wallet_jpy"),
    ({"incident_losses_jpy": None}, "incident_losses_jpy"),
    ({"reserve_balance_jpy": -1}, "reserve_balance_jpy"),
    ({"layers": (LayerCover("L1", -1, D(1), None, True),)}, "layers[0].limit_jpy"),
    ({"layers": (L1, LayerCover("L2", 1, D("1.5"), None, True))}, "layers[1].share"),
    ({"layers": (LayerCover("L1", 1, 0.5, None, True),)}, "layers[0].share"),
    ({"layers": (LayerCover("L1", 1, D(1), -1, True),)}, "layers[0].aggregate_remaining_jpy"),
    ({"layers": (LayerCover("L1", 1, D(1), None, 1),)}, "layers[0].qualifies"),
    ({"layers": (L1, L1)}, "layers[1].id"),
    ({"layers": (LayerCover("", 1, D(1), None, True),)}, "layers[0].id"),
    # a layer that does not qualify is still checked: bad data is bad data
    ({"layers": (LayerCover("L3", 1, D("-1"), None, False),)}, "layers[0].share"),
    ({"layers": [object()]}, "layers[0]"),
]


@pytest.mark.parametrize("changes, field", INPUT_CASES)
def test_bad_inputs_name_the_field(changes: dict[str, Any], field: str) -> None:
    inputs = make_inputs(**changes)
    with pytest.raises(ValidationError) as info:
        validate_inputs(inputs)
    assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        compute_requirement(make_rule(), inputs)
    assert info.value.field == field


def test_wrong_types_at_the_top() -> None:
    with pytest.raises(ValidationError) as info:
        compute_requirement(object(), make_inputs())  # type: ignore[arg-type]
    assert info.value.field == "rule"
    with pytest.raises(ValidationError) as info:
        compute_requirement(make_rule(), {"cold_wallet_jpy": 1})  # type: ignore[arg-type]
    assert info.value.field == "inputs"


def test_trailing_zeros_do_not_count_as_places() -> None:
    validate_rule(make_rule(cold_wallet_rate=D("0.50000000000000000000000000000"), hot_wallet_rate=D("0E-40")))


# --------------------------------------------------------------------------------------------
# Rule JSON (how a rule version is stored)
# --------------------------------------------------------------------------------------------


def test_rule_json_round_trip() -> None:
    rule = make_rule(cap_jpy=None)
    data = rule_to_json(rule)
    assert data["volume_rates"][2] == {"market": "*", "rate": "0.00005"}
    assert data["cap_jpy"] is None and data["incident_multiple"] == "1.5"
    assert parse_rule(json.loads(json.dumps(data))) == rule


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("cold_wallet_rate", 0.001, "cold_wallet_rate"),
        ("cold_wallet_rate", "1e-3", "cold_wallet_rate"),
        ("cold_wallet_rate", "-0.1", "cold_wallet_rate"),
        ("insurance_max_share", "1.5", "insurance_max_share"),
        ("floor_jpy", "100", "floor_jpy"),
        ("cap_jpy", 1, "cap_jpy"),
        ("incident_lookback_years", 30, "incident_lookback_years"),
        ("volume_rates", [{"market": "spot"}], "volume_rates[0]"),
        ("volume_rates", [{"market": "spot", "rate": 0.1}], "volume_rates[0].rate"),
        ("volume_rates", {"spot": "0.1"}, "volume_rates"),
    ],
)
def test_parse_rule_names_the_field(key: str, value: Any, field: str) -> None:
    data = rule_to_json(make_rule())
    data[key] = value
    with pytest.raises(ValidationError) as info:
        parse_rule(data)
    assert info.value.field == field


def test_parse_rule_requires_every_key() -> None:
    data = rule_to_json(make_rule())
    del data["cap_jpy"]
    with pytest.raises(ValidationError) as info:
        parse_rule(data)
    assert info.value.field == "cap_jpy"
    with pytest.raises(ValidationError) as info:
        parse_rule([])
    assert info.value.field == "rule"


# --------------------------------------------------------------------------------------------
# Stress testing
# --------------------------------------------------------------------------------------------


def test_presets() -> None:
    by_key = {p.key: p for p in STRESS_PRESETS}
    assert list(by_key) == ["coincheck-2018", "dmm-2024", "cold-wallet-breach", "hot-wallet-total"]
    assert [(p.wallet, p.share_lost) for p in STRESS_PRESETS] == [
        ("hot", D("0.20")), ("hot", D("0.50")), ("cold", D("0.10")), ("hot", D(1)),
    ]
    for p in STRESS_PRESETS:
        assert "illustrative" in p.description and "assumption" in p.description
        assert len(p.key) <= 40 and p.label
    assert "523 million XEM" in by_key["coincheck-2018"].description
    assert "260,000 customers" in by_key["coincheck-2018"].description
    assert "4,502.9 BTC" in by_key["dmm-2024"].description
    assert "¥48bn" in by_key["dmm-2024"].description


def test_stress_loss() -> None:
    inputs = make_inputs()  # hot 30,000,000,003; cold 200,000,000,000
    assert stress_loss_jpy(stress_preset("coincheck-2018"), None, inputs) == 6_000_000_000  # .6 dropped
    assert stress_loss_jpy("dmm-2024", "hot", inputs) == 15_000_000_001  # 15,000,000,001.5
    assert stress_loss_jpy("cold-wallet-breach", None, inputs) == 20_000_000_000
    assert stress_loss_jpy("hot-wallet-total", None, inputs) == 30_000_000_003
    assert stress_loss_jpy(D("0.333"), "cold", inputs) == 66_600_000_000
    assert stress_loss_jpy(D("0"), "hot", inputs) == 0


@pytest.mark.parametrize(
    "preset, wallet, field",
    [
        ("no-such-preset", None, "preset"),
        ("coincheck-2018", "cold", "wallet"),  # the preset is about the hot wallet
        (D("0.5"), None, "wallet"),
        (D("0.5"), "warm", "wallet"),
        (D("1.5"), "hot", "share_lost"),
        (D("-0.1"), "hot", "share_lost"),
        (0.5, "hot", "share_lost"),
        (True, "hot", "share_lost"),
    ],
)
def test_stress_loss_refusals(preset: Any, wallet: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        stress_loss_jpy(preset, wallet, make_inputs())
    assert info.value.field == field


def test_stress_loss_checks_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        stress_loss_jpy("dmm-2024", None, make_inputs(hot_wallet_jpy=-1))
    assert info.value.field == "hot_wallet_jpy"


def test_synthetic_customers_is_pinned() -> None:
    # Pinned so that a stored stress test can be reproduced later, on any platform.
    assert synthetic_customers(100, 10, 1) == [16, 6, 4, 4, 4, 28, 10, 18, 6, 4]
    assert synthetic_customers(0, 3) == [0, 0, 0]
    assert synthetic_customers(MAX_YEN, 1) == [MAX_YEN]
    assert synthetic_customers(7, 4, 42) == [0, 2, 5, 0]


def test_synthetic_customers_is_long_tailed() -> None:
    # Coincheck 2018 in scale: about ¥58bn over about 260,000 customers.
    total, n = 58_000_000_000, 260_000
    amounts = synthetic_customers(total, n, seed=2018)
    assert len(amounts) == n and sum(amounts) == total and min(amounts) >= 0
    ranked = sorted(amounts, reverse=True)
    top_1 = sum(ranked[: n // 100])
    top_20 = sum(ranked[: n // 5])
    assert 0.15 * total < top_1 < 0.6 * total  # a few large holders...
    assert 0.5 * total < top_20 < 0.85 * total
    assert ranked[n // 2] < total // n  # ...and a median well below the mean
    assert ranked[0] < total // 10  # no single customer dominates
    assert synthetic_customers(total, n, seed=2019) != amounts


def test_synthetic_customers_at_the_maximum() -> None:
    amounts = synthetic_customers(MAX_YEN, 2_000_000, seed=5)
    assert len(amounts) == 2_000_000 and sum(amounts) == MAX_YEN and min(amounts) >= 0


@pytest.mark.parametrize(
    "args, field",
    [
        ((-1, 10), "total_loss_jpy"),
        ((10.0, 10), "total_loss_jpy"),
        ((MAX_YEN + 1, 10), "total_loss_jpy"),
        ((True, 10), "total_loss_jpy"),
        ((10, 0), "customers"),
        ((10, 2_000_001), "customers"),
        ((10, 10.0), "customers"),
        ((10, True), "customers"),
        ((10, 10, 1.5), "seed"),
        ((10, 10, None), "seed"),
    ],
)
def test_synthetic_customers_refusals(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        synthetic_customers(*args)
    assert info.value.field == field
