"""The example scenarios of shared/spec/allocation-cases reproduce exactly.

Each file has ``inputs`` (a scenario) and ``expected`` (the result). Values must match; key
order and extra keys in our output (not_covered_jpy, unpaid_jpy, ...) do not matter. A missing
cases directory is a failure, not a skip: these files are the contract.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from payouts.domain.allocation import allocate, check_invariants, parse_scenario, result_to_json

CASES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "allocation-cases"


def _case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.json")) if CASES_DIR.is_dir() else []


def assert_matches(expected: Any, actual: Any, path: str = "result") -> None:
    """``actual`` has every key of ``expected`` with equal values (recursively); extra keys in
    dicts are allowed, list lengths and order must match. Integers must be ints, not bools."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: missing key {key!r}"
            assert_matches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_matches(e, a, f"{path}[{i}]")
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"{path}: got {actual!r}, expected {expected!r}")


def test_cases_directory_is_there() -> None:
    assert CASES_DIR.is_dir(), f"missing {CASES_DIR}"
    assert _case_files(), f"no *.json in {CASES_DIR}"


@pytest.mark.parametrize("path", _case_files(), ids=lambda p: p.name)
def test_case_reproduces_exactly(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    inp = parse_scenario(case["inputs"])
    result = allocate(inp)
    check_invariants(inp, result)
    # Through JSON text and back, as the command line prints it.
    assert_matches(case["expected"], json.loads(json.dumps(result_to_json(result))))


@pytest.mark.parametrize("path", _case_files(), ids=lambda p: p.name)
def test_case_does_not_depend_on_input_order(path: Path) -> None:
    inputs = json.loads(path.read_text(encoding="utf-8"))["inputs"]
    expected = result_to_json(allocate(parse_scenario(inputs)))
    rng = random.Random(path.name)
    for _ in range(5):
        rng.shuffle(inputs["customers"])
        rng.shuffle(inputs["layers"])
        for customer in inputs["customers"]:
            rng.shuffle(customer["positions"])
        assert result_to_json(allocate(parse_scenario(inputs))) == expected


def test_assert_matches_is_strict_about_values() -> None:
    assert_matches({"a": 1, "b": [{"c": 2}]}, {"b": [{"c": 2, "x": 9}], "a": 1, "y": 0})
    for wrong in ({"a": 2, "b": [{"c": 2}]}, {"a": 1, "b": []}, {"b": [{"c": 2}]}, {"a": True, "b": [{"c": 2}]}):
        with pytest.raises(AssertionError):
            assert_matches({"a": 1, "b": [{"c": 2}]}, wrong)
