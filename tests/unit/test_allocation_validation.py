"""Invalid input is rejected as a whole with a ValidationError naming the field; later money.

Every bad scenario goes through parse_scenario (the command line's path). Inputs built in code
(the app's path, from database rows) go through validate_input and allocate, which checks the
customers in its own one-pass way and must name the same field. Malformed JSON of any shape
must give a ValidationError, never a KeyError or TypeError.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.domain.allocation import (
    AllocationInput,
    AssetSpec,
    CustomerInput,
    CustomerTerms,
    LayerInput,
    Position,
    allocate,
    distribute_later_money,
    parse_scenario,
    result_to_json,
    validate_input,
)
from payouts.domain.errors import ValidationError


def valid_scenario() -> dict[str, Any]:
    return {
        "incident_type": "hack",
        "assets": {
            "JPY": {"decimals": 0, "ref_price_jpy": "1"},
            "BTC": {"decimals": 8, "ref_price_jpy": "15012345.67"},
            "ETH": {"decimals": 18, "ref_price_jpy": "512345.678"},
        },
        "customers": [
            {"id": "C1", "positions": [{"asset": "JPY", "amount_minor": 1_000_000}]},
            {"id": "C2", "positions": [{"asset": "BTC", "amount_minor": 12_345_678},
                                       {"asset": "ETH", "amount_minor": 2**70}]},
            {"id": "C3", "positions": []},
        ],
        "customer_terms": {"deductible_jpy": 10_000, "cap_jpy": None},
        "priority_tranches_jpy": [100_000, 1_000_000],
        "reserve_jpy": 500_000,
        "layers": [
            {"id": "L1", "attachment_jpy": 0, "limit_jpy": 1_000_000, "share": "0.5",
             "aggregate_remaining_jpy": None, "excluded_incident_types": []},
            {"id": "L2", "attachment_jpy": 1_000_000, "limit_jpy": 5_000_000, "share": "1",
             "aggregate_remaining_jpy": 2_000_000, "excluded_incident_types": ["insider_fraud"]},
        ],
    }


MISSING = object()


def mutate(scenario: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or delete, with MISSING) the value at a dotted path like customers[1].positions[0].asset."""
    scenario = copy.deepcopy(scenario)
    steps: list[Any] = []
    for part in path.split("."):
        name, *indexes = part.replace("]", "").split("[")
        steps.append(name)
        steps.extend(int(i) for i in indexes)
    target = scenario
    for step in steps[:-1]:
        target = target[step]
    if value is MISSING:
        del target[steps[-1]]
    else:
        target[steps[-1]] = value
    return scenario


def test_the_base_scenario_is_valid() -> None:
    result = allocate(parse_scenario(valid_scenario()))
    assert result.shortfall_jpy > 0 and len(result.customers) == 3


BAD = [
    # (path to change, new value, field named by the error)
    ("customers[1].positions[0].amount_minor", -5, None),
    ("customers[1].positions[0].amount_minor", 1.0, None),
    ("customers[1].positions[0].amount_minor", 12_345_678.0, None),
    ("customers[1].positions[0].amount_minor", True, None),
    ("customers[1].positions[0].amount_minor", "12345678", None),
    ("customers[1].positions[0].amount_minor", None, None),
    ("customers[1].positions[0].amount_minor", MISSING, None),
    ("customers[1].positions[1].asset", "DOGE", None),
    ("customers[1].positions[1].asset", "eth", None),
    ("customers[1].positions[1].asset", 5, None),
    ("customers[1].positions[1].asset", ["ETH"], None),
    ("customers[1].positions[1]", "ETH", None),
    ("customers[1].positions", {"asset": "ETH"}, None),
    ("customers[1].positions", MISSING, None),
    ("customers[2].id", "C1", None),  # duplicate: the second occurrence is named
    ("customers[0].id", "", None),
    ("customers[0].id", 7, None),
    ("customers[0].id", MISSING, None),
    ("customers[0]", "C1", None),
    ("customers", {"C1": []}, None),
    ("customers", MISSING, None),
    ("layers[1].id", "L1", None),  # duplicate layer id
    ("layers[0].id", "reserve", None),  # would collide with the reserve in by_source
    ("layers[0].id", None, None),
    ("layers[0].share", "0", None),
    ("layers[0].share", "0.000", None),
    ("layers[0].share", "1.5", None),
    ("layers[0].share", "1.0000001", None),
    ("layers[0].share", 0.5, None),
    ("layers[0].share", 2, None),
    ("layers[0].share", "abc", None),
    ("layers[0].share", "-0.5", None),
    ("layers[0].share", "5e-1", None),
    ("layers[0].share", " 0.5", None),
    ("layers[0].share", "", None),
    ("layers[0].share", None, None),
    ("layers[0].share", True, None),
    ("layers[0].limit_jpy", MISSING, None),
    ("layers[0].limit_jpy", None, None),
    ("layers[0].limit_jpy", -1, None),
    ("layers[0].limit_jpy", 1e6, None),
    ("layers[0].attachment_jpy", -1, None),
    ("layers[0].attachment_jpy", MISSING, None),
    ("layers[0].aggregate_remaining_jpy", -1, None),
    ("layers[0].aggregate_remaining_jpy", 1e6, None),
    ("layers[0].aggregate_remaining_jpy", MISSING, None),
    ("layers[0].excluded_incident_types", "hack", None),
    ("layers[0].excluded_incident_types", MISSING, None),
    ("layers[0].excluded_incident_types", [1], "layers[0].excluded_incident_types[0]"),
    ("layers[0].excluded_incident_types", [["hack"]], "layers[0].excluded_incident_types[0]"),
    ("layers[0]", 5, None),
    ("layers", {"L1": {}}, None),
    ("layers", MISSING, None),
    ("priority_tranches_jpy", [100_000, 100_000], "priority_tranches_jpy[1]"),
    ("priority_tranches_jpy", [100_000, 50_000], "priority_tranches_jpy[1]"),
    ("priority_tranches_jpy", [0, 50_000], "priority_tranches_jpy[0]"),
    ("priority_tranches_jpy", [-5], "priority_tranches_jpy[0]"),
    ("priority_tranches_jpy", [100_000, 1.5e6], "priority_tranches_jpy[1]"),
    ("priority_tranches_jpy", [True], "priority_tranches_jpy[0]"),
    ("priority_tranches_jpy", 100_000, None),
    ("priority_tranches_jpy", MISSING, None),
    ("reserve_jpy", 5.5, None),
    ("reserve_jpy", 500_000.0, None),
    ("reserve_jpy", -1, None),
    ("reserve_jpy", True, None),
    ("reserve_jpy", "500000", None),
    ("reserve_jpy", None, None),
    ("reserve_jpy", MISSING, None),
    ("customer_terms.deductible_jpy", -1, None),
    ("customer_terms.deductible_jpy", 0.0, None),
    ("customer_terms.deductible_jpy", MISSING, None),
    ("customer_terms.cap_jpy", -1, None),
    ("customer_terms.cap_jpy", 1.5, None),
    ("customer_terms.cap_jpy", MISSING, None),  # null must be explicit
    ("customer_terms", MISSING, None),
    ("customer_terms", [], None),
    ("assets.BTC.ref_price_jpy", 15012345.67, None),
    ("assets.BTC.ref_price_jpy", 15012345, None),
    ("assets.BTC.ref_price_jpy", "abc", None),
    ("assets.BTC.ref_price_jpy", "1e5", None),
    ("assets.BTC.ref_price_jpy", "-1", None),
    ("assets.BTC.ref_price_jpy", "0", None),
    ("assets.BTC.ref_price_jpy", "1,000", None),
    ("assets.BTC.ref_price_jpy", "１２", None),  # full-width digits are not ASCII decimals
    ("assets.BTC.ref_price_jpy", "NaN", None),
    ("assets.BTC.ref_price_jpy", MISSING, None),
    ("assets.BTC.decimals", -1, None),
    ("assets.BTC.decimals", 8.0, None),
    ("assets.BTC.decimals", "8", None),
    ("assets.BTC.decimals", 31, None),
    ("assets.BTC.decimals", MISSING, None),
    ("assets.BTC", "BTC", None),
    ("assets", [], None),
    ("assets", MISSING, None),
    ("incident_type", MISSING, None),
    ("incident_type", 5, None),
    ("incident_type", "", None),
]


@pytest.mark.parametrize("path, value, field", BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_scenario_is_rejected_naming_the_field(path: str, value: Any, field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_scenario(mutate(valid_scenario(), path, value))
    assert caught.value.field == (field or path)
    assert caught.value.message
    assert str(caught.value) == f"{caught.value.field}: {caught.value.message}"


@pytest.mark.parametrize("document", [[], "scenario", None, 3, 1.5, True])
def test_a_scenario_must_be_an_object(document: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_scenario(document)
    assert caught.value.field == "scenario"


def test_ids_that_cannot_be_printed_are_rejected() -> None:
    text = json.dumps(valid_scenario()).replace('"C2"', '"C\\ud800"').replace('"L2"', '"L\\udfff"')
    scenario = json.loads(text)  # JSON escapes allow lone surrogates
    with pytest.raises(ValidationError) as caught:
        parse_scenario(scenario)
    assert caught.value.field == "customers[1].id"
    del scenario["customers"][1]
    with pytest.raises(ValidationError) as caught:
        parse_scenario(scenario)
    assert caught.value.field == "layers[1].id"


def test_the_whole_example_file_is_not_a_scenario() -> None:
    wrapper = {"inputs": valid_scenario(), "expected": {}}
    with pytest.raises(ValidationError) as caught:
        parse_scenario(wrapper)
    assert caught.value.field == "incident_type"
    assert "inputs" in caught.value.message


@pytest.mark.parametrize("path, value", [
    ("layers[0].share", "1"),
    ("layers[0].share", "1.000"),
    ("layers[0].share", 1),  # a whole number is exact too
    ("layers[0].share", "0.0001"),
    ("priority_tranches_jpy", []),
    ("layers", []),
    ("customers", []),
    ("customer_terms.cap_jpy", 0),
    ("assets.BTC.ref_price_jpy", "0.00000001"),
    ("assets.BTC.ref_price_jpy", "007.50"),
    ("customers[1].positions[0].amount_minor", 0),
    ("customers[1].positions[0].amount_minor", 2**200),
    ("layers[0].excluded_incident_types", ["hack", "hack"]),
    ("customers[0].id", "é漢😀"),
])
def test_unusual_but_valid_values_are_accepted(path: str, value: Any) -> None:
    result = allocate(parse_scenario(mutate(valid_scenario(), path, value)))
    assert result.total_funded_jpy <= result.total_eligible_jpy


def test_the_first_problem_in_document_order_is_reported() -> None:
    scenario = mutate(valid_scenario(), "customers[2].positions", [{"asset": "X", "amount_minor": 1}])
    scenario = mutate(scenario, "customers[1].positions[0].amount_minor", -1)
    scenario = mutate(scenario, "reserve_jpy", -1)
    with pytest.raises(ValidationError) as caught:
        parse_scenario(scenario)
    assert caught.value.field == "customers[1].positions[0].amount_minor"


# Inputs built in code, as the app does from database rows ---------------------------------------


def built_input(**changes: Any) -> AllocationInput:
    base = dict(
        incident_type="hack",
        assets={"JPY": AssetSpec("JPY", 0, Decimal("1")), "BTC": AssetSpec("BTC", 8, Decimal("88.549"))},
        customers=(
            CustomerInput("A", (Position("JPY", 500),)),
            CustomerInput("B", (Position("BTC", 10**9), Position("JPY", 1))),
            CustomerInput("C", ()),
        ),
        terms=CustomerTerms(0, None),
        tranches_jpy=(),
        reserve_jpy=100,
        layers=(LayerInput("L1", 0, 1000, Decimal("0.5"), None, frozenset()),),
    )
    base.update(changes)
    return AllocationInput(**base)


def customers_with(index: int, customer: Any) -> tuple[Any, ...]:
    customers = list(built_input().customers)
    customers[index] = customer
    return tuple(customers)


def positions_of_b(*positions: Any) -> dict[str, Any]:
    """Changes that give customer B (customers[1]) these positions."""
    return dict(customers=customers_with(1, CustomerInput("B", positions)))


def layer(**changes: Any) -> dict[str, Any]:
    """Changes that replace the one layer by a copy with these fields changed."""
    fields = dict(id="L1", attachment_jpy=0, limit_jpy=10, share=Decimal("1"), aggregate_remaining_jpy=None,
                  excluded_incident_types=frozenset())
    fields.update(changes)
    return dict(layers=(LayerInput(**fields),))


AMOUNT, ASSET = "customers[1].positions[0].amount_minor", "customers[1].positions[0].asset"
BAD_BUILT = [
    (positions_of_b(Position("BTC", -1)), AMOUNT),
    (positions_of_b(Position("BTC", 1.0)), AMOUNT),
    (positions_of_b(Position("BTC", True)), AMOUNT),
    (positions_of_b(Position("BTC", Decimal(1))), AMOUNT),
    (positions_of_b(Position("DOGE", 1)), ASSET),
    (positions_of_b(Position(None, 1)), ASSET),
    (positions_of_b({"asset": "JPY", "amount_minor": 1}), "customers[1].positions[0]"),
    (dict(customers=customers_with(1, CustomerInput("B", "JPY"))), "customers[1].positions"),
    (dict(customers=customers_with(1, CustomerInput("B", None))), "customers[1].positions"),
    (dict(customers=customers_with(2, CustomerInput("A", ()))), "customers[2].id"),
    (dict(customers=customers_with(2, CustomerInput("", ()))), "customers[2].id"),
    (dict(customers=customers_with(2, CustomerInput(3, ()))), "customers[2].id"),
    (dict(customers=customers_with(2, CustomerInput(None, ()))), "customers[2].id"),
    (dict(customers=customers_with(2, ("C", ()))), "customers[2]"),
    (dict(customers=iter(())), "customers"),
    (dict(reserve_jpy=5.5), "reserve_jpy"),
    (dict(reserve_jpy=None), "reserve_jpy"),
    (dict(terms=CustomerTerms(-1, None)), "customer_terms.deductible_jpy"),
    (dict(terms=CustomerTerms(0, 2.0)), "customer_terms.cap_jpy"),
    (dict(terms=(0, None)), "customer_terms"),
    (dict(tranches_jpy=(5, 5)), "priority_tranches_jpy[1]"),
    (dict(assets={"JPY": AssetSpec("JPY", 0, 1.0)}), "assets.JPY.ref_price_jpy"),
    (dict(assets={"JPY": AssetSpec("JPY", 0, Decimal("NaN"))}), "assets.JPY.ref_price_jpy"),
    (dict(assets={"JPY": AssetSpec("JPY", 0, Decimal("-1"))}), "assets.JPY.ref_price_jpy"),
    (dict(assets={"JPY": AssetSpec("JPY", -1, Decimal("1"))}), "assets.JPY.decimals"),
    (dict(assets={"JPY": AssetSpec("YEN", 0, Decimal("1"))}), "assets.JPY.code"),
    (layer(limit_jpy=None), "layers[0].limit_jpy"),
    (layer(share=0.5), "layers[0].share"),
    (layer(share=Decimal("0")), "layers[0].share"),
    (layer(share=Fraction(3, 2)), "layers[0].share"),
    (layer(excluded_incident_types=frozenset({1})), "layers[0].excluded_incident_types"),
    (dict(layers=layer()["layers"] * 2), "layers[1].id"),
]


@pytest.mark.parametrize("changes, field", BAD_BUILT, ids=[f for _, f in BAD_BUILT])
def test_inputs_built_in_code_are_checked_by_validate_input_and_by_allocate(
    changes: dict[str, Any], field: str
) -> None:
    inp = built_input(**changes)
    with pytest.raises(ValidationError) as by_validate:
        validate_input(inp)
    assert by_validate.value.field == field
    with pytest.raises(ValidationError) as by_allocate:  # allocate's own one-pass check agrees
        allocate(inp)
    assert by_allocate.value.field == field


def test_built_inputs_accept_exact_numbers_of_any_exact_type() -> None:
    inp = built_input(
        assets={"JPY": AssetSpec("JPY", 0, 1), "BTC": AssetSpec("BTC", 8, Fraction(88549, 1000))},
        layers=(LayerInput("L1", 0, 1000, Fraction(1, 2), None, frozenset()),),
        customers=[CustomerInput("A", [Position("JPY", 500)]),
                   CustomerInput("B", (Position("BTC", 10**9), Position("JPY", 1)))],
    )
    reference = allocate(built_input())
    assert result_to_json(allocate(inp))["customers"][:2] == result_to_json(reference)["customers"][:2]


def test_allocate_is_not_fooled_by_a_non_dataclass_lookalike() -> None:
    class Lookalike:
        id = "Z"
        positions = ()
    with pytest.raises(ValidationError) as caught:
        allocate(built_input(customers=customers_with(0, Lookalike())))
    assert caught.value.field == "customers[0]"


# Malformed JSON of any shape: only ValidationError ------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**70) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found += [path, *_paths(item, path)]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            path = f"{prefix}[{i}]"
            found += [path, *_paths(item, path)]
    return found


ALL_PATHS = _paths(valid_scenario())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_PATHS), st.one_of(json_values, st.just(MISSING)))
def test_any_malformed_value_gives_a_validation_error_or_a_result(path: str, value: Any) -> None:
    scenario = mutate(valid_scenario(), path, value)
    scenario = json.loads(json.dumps(scenario))  # only what JSON can carry
    try:
        result = allocate(parse_scenario(scenario))
    except ValidationError as exc:
        assert isinstance(exc.field, str) and exc.field and exc.message
    else:
        assert result.total_funded_jpy <= result.total_eligible_jpy


# Later money --------------------------------------------------------------------------------------


def test_later_money_is_shared_by_largest_remainder_over_unpaid_balances() -> None:
    later = distribute_later_money(1_000, [("a", 500, 300), ("b", 1_000, 700), ("c", 50, 0)])
    assert later.amounts == {"a": 300, "b": 700, "c": 0}
    assert (later.distributed_jpy, later.surplus_jpy) == (1_000, 0)
    later = distribute_later_money(100, [("a", 900, 300), ("b", 1_000, 300), ("c", 1_000, 300)])
    # 33.33 each: the leftover yen goes to the larger E, then the smaller id.
    assert later.amounts == {"a": 33, "b": 34, "c": 33}


def test_later_money_beyond_the_unpaid_total_is_a_surplus() -> None:
    later = distribute_later_money(10_000, [("a", 500, 300), ("b", 1_000, 700)])
    assert later.amounts == {"a": 300, "b": 700}
    assert (later.distributed_jpy, later.surplus_jpy) == (1_000, 9_000)
    empty = distribute_later_money(5, [])
    assert (empty.amounts, empty.distributed_jpy, empty.surplus_jpy) == ({}, 0, 5)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), max_size=30))
def test_later_money_never_exceeds_unpaid_and_sums_exactly(amount: int, rows: list[tuple[int, int]]) -> None:
    unpaid = [(f"C{i}", max(a, b), min(a, b)) for i, (a, b) in enumerate(rows)]
    later = distribute_later_money(amount, unpaid)
    total_unpaid = sum(u for _, _, u in unpaid)
    assert set(later.amounts) == {cid for cid, _, _ in unpaid}
    for cid, _, balance in unpaid:
        assert 0 <= later.amounts[cid] <= balance
    assert sum(later.amounts.values()) == later.distributed_jpy == min(amount, total_unpaid)
    assert later.surplus_jpy == amount - later.distributed_jpy >= 0


def test_later_money_after_a_run_never_claws_back_and_never_passes_e() -> None:
    result = allocate(parse_scenario(valid_scenario()))
    assert result.shortfall_jpy > 0
    unpaid = [(c.id, c.eligible_jpy, c.unpaid_jpy) for c in result.customers]
    later = distribute_later_money(result.shortfall_jpy // 2, unpaid)
    for c in result.customers:
        assert c.payout_jpy <= c.payout_jpy + later.amounts[c.id] <= c.eligible_jpy
    assert later.distributed_jpy == result.shortfall_jpy // 2


@pytest.mark.parametrize("amount, unpaid, field", [
    (-1, [], "amount_jpy"),
    (1.0, [], "amount_jpy"),
    (True, [], "amount_jpy"),
    (5, [("a", 10, 11)], "unpaid[0].unpaid_jpy"),
    (5, [("a", 10, -1)], "unpaid[0].unpaid_jpy"),
    (5, [("a", 10, 2.0)], "unpaid[0].unpaid_jpy"),
    (5, [("a", -10, 0)], "unpaid[0].eligible_jpy"),
    (5, [("a", 10, 1), ("a", 10, 1)], "unpaid[1].customer_id"),
    (5, [("", 10, 1)], "unpaid[0].customer_id"),
    (5, [("a", 10)], "unpaid[0]"),
    (5, [None], "unpaid[0]"),
])
def test_later_money_input_is_validated(amount: Any, unpaid: list[Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        distribute_later_money(amount, unpaid)
    assert caught.value.field == field
