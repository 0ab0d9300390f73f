"""Allocation inputs: the frozen dataclasses the engine reads, the scenario parser, validation.

``parse_scenario`` turns the ``inputs`` object of a scenario file (already json.loads-ed) into
an ``AllocationInput``; ``validate_input`` checks the contract's rules on an ``AllocationInput``
however it was built (scenario file or database rows). Both raise ``ValidationError`` whose
``field`` is a dotted path in the scenario's JSON shape, e.g.
``customers[3].positions[0].amount_minor``, ``layers[1].share``, ``assets.BTC.ref_price_jpy``,
``customer_terms.cap_jpy``. The first problem found is reported (the document's shape is checked
before its values, each in document order); the engine never runs on invalid input, so there
is never a partial result.

Integers must be real ints: a float (even 1.0) or a bool where an integer belongs is refused,
because money here is counted, never measured. Prices and shares are exact decimals (``Decimal``,
or ``int``/``Fraction`` when built in code); in scenario JSON they are decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from itertools import chain
from operator import attrgetter
from typing import Any

from payouts.domain.errors import ValidationError
from payouts.domain.money import MAX_ASSET_DECIMALS

__all__ = [
    "RESERVE_ID",
    "AssetSpec",
    "Position",
    "CustomerInput",
    "CustomerTerms",
    "LayerInput",
    "AllocationInput",
    "parse_scenario",
    "validate_input",
    "exact_ratio",
]

#: Source id of the liability reserve in results; no layer may use it (by_source is keyed by id).
RESERVE_ID = "reserve"

#: A plain non-negative decimal: ASCII digits, optionally a point and more digits. No sign, no
#: exponent, no spaces ("\d" would also admit other scripts' digits, hence [0-9]).
_DECIMAL_STRING = re.compile(r"[0-9]+(?:\.[0-9]+)?")


# --------------------------------------------------------------------------------------------
# Input dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """An asset: ``decimals`` d (JPY 0, BTC 8, ETH 18) and the exact yen price of one whole unit."""

    code: str
    decimals: int
    ref_price: Decimal  # exact: Decimal (or int / Fraction); never a float


@dataclass(frozen=True, slots=True)
class Position:
    """One approved loss: ``amount_minor`` units of the asset's smallest unit (can exceed 2^64)."""

    asset: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CustomerInput:
    """A customer and their approved losses; no positions means a zero loss."""

    id: str
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class CustomerTerms:
    """Deductible D >= 0 and cap C >= 0 (None: no cap), the same for every customer."""

    deductible_jpy: int
    cap_jpy: int | None


@dataclass(frozen=True, slots=True)
class LayerInput:
    """An insurance layer: attachment A, limit M (on 100% of the loss), share s in (0, 1],
    aggregate remaining G on the insurer's share (None: none), excluded incident types."""

    id: str
    attachment_jpy: int
    limit_jpy: int
    share: Decimal  # exact: Decimal (or int / Fraction); never a float
    aggregate_remaining_jpy: int | None
    excluded_incident_types: frozenset[str]


@dataclass(frozen=True, slots=True)
class AllocationInput:
    """Everything the engine needs for one incident."""

    incident_type: str
    assets: Mapping[str, AssetSpec]
    customers: tuple[CustomerInput, ...]
    terms: CustomerTerms
    tranches_jpy: tuple[int, ...]
    reserve_jpy: int
    layers: tuple[LayerInput, ...]


# --------------------------------------------------------------------------------------------
# Scenario JSON -> AllocationInput (shape only; the rules are in validate_input)
# --------------------------------------------------------------------------------------------


def parse_scenario(obj: Any) -> AllocationInput:
    """Build and validate an AllocationInput from a scenario's ``inputs`` object.

    Every key is required (nullable ones must be present as null), so a misspelt key is
    reported instead of silently meaning "none". Unknown extra keys are ignored.
    """
    root = _as_object(obj, "scenario")
    if "inputs" in root and "incident_type" not in root:
        raise ValidationError(
            "incident_type",
            "is required (this looks like a whole example file: pass its \"inputs\" object)",
        )
    inp = AllocationInput(
        incident_type=_get(root, "incident_type", ""),
        assets=_parse_assets(_get(root, "assets", "")),
        customers=_parse_customers(_get(root, "customers", "")),
        terms=_parse_terms(_get(root, "customer_terms", "")),
        tranches_jpy=tuple(_as_list(_get(root, "priority_tranches_jpy", ""), "priority_tranches_jpy")),
        reserve_jpy=_get(root, "reserve_jpy", ""),
        layers=_parse_layers(_get(root, "layers", "")),
    )
    validate_input(inp)
    return inp


def _parse_assets(value: Any) -> dict[str, AssetSpec]:
    assets = {}
    for code, spec in _as_object(value, "assets").items():
        path = f"assets.{code}"
        spec = _as_object(spec, path)
        assets[code] = AssetSpec(
            code=code,
            decimals=_get(spec, "decimals", path),
            ref_price=_decimal_string(_get(spec, "ref_price_jpy", path), f"{path}.ref_price_jpy"),
        )
    return assets


def _parse_customers(value: Any) -> tuple[CustomerInput, ...]:
    customers = []
    for ci, raw in enumerate(_as_list(value, "customers")):
        path = f"customers[{ci}]"
        raw = _as_object(raw, path)
        positions = []
        for pi, pos in enumerate(_as_list(_get(raw, "positions", path), f"{path}.positions")):
            ppath = f"{path}.positions[{pi}]"
            pos = _as_object(pos, ppath)
            positions.append(Position(_get(pos, "asset", ppath), _get(pos, "amount_minor", ppath)))
        customers.append(CustomerInput(_printable_id(_get(raw, "id", path), f"{path}.id"), tuple(positions)))
    return tuple(customers)


def _parse_terms(value: Any) -> CustomerTerms:
    terms = _as_object(value, "customer_terms")
    return CustomerTerms(
        deductible_jpy=_get(terms, "deductible_jpy", "customer_terms"),
        cap_jpy=_get(terms, "cap_jpy", "customer_terms"),
    )


def _parse_layers(value: Any) -> tuple[LayerInput, ...]:
    layers = []
    for li, raw in enumerate(_as_list(value, "layers")):
        path = f"layers[{li}]"
        raw = _as_object(raw, path)
        share = _get(raw, "share", path)
        # A whole-number share (1) is exact too; floats and other types fall to the string check.
        share = Decimal(share) if type(share) is int else _decimal_string(share, f"{path}.share")
        excluded_path = f"{path}.excluded_incident_types"
        excluded = _as_list(_get(raw, "excluded_incident_types", path), excluded_path)
        for ei, item in enumerate(excluded):
            # Checked here, not only in validate_input: an unhashable item would break frozenset.
            if not isinstance(item, str):
                raise ValidationError(f"{excluded_path}[{ei}]", "must be a string")
        layers.append(
            LayerInput(
                id=_printable_id(_get(raw, "id", path), f"{path}.id"),
                attachment_jpy=_get(raw, "attachment_jpy", path),
                limit_jpy=_get(raw, "limit_jpy", path),
                share=share,
                aggregate_remaining_jpy=_get(raw, "aggregate_remaining_jpy", path),
                excluded_incident_types=frozenset(excluded),
            )
        )
    return tuple(layers)


def _get(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise ValidationError(f"{path}.{key}" if path else key, "is required")
    return obj[key]


def _as_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(path, f"must be an object, got {_kind(value)}")
    return value


def _as_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(path, f"must be a list, got {_kind(value)}")
    return value


def _printable_id(value: Any, path: str) -> Any:
    """Ids are printed in the result: JSON can smuggle in a lone surrogate ("\\ud800") that no
    output encoding accepts, so refuse it here. Other problems are validate_input's."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(path, "must be valid Unicode text (no lone surrogates)") from None
    return value


def _decimal_string(value: Any, path: str) -> Decimal:
    if not isinstance(value, str) or _DECIMAL_STRING.fullmatch(value) is None:
        raise ValidationError(
            path, f"must be an exact decimal string such as \"88.549\", got {_show(value)}"
        )
    return Decimal(value)


# --------------------------------------------------------------------------------------------
# Rules (for inputs from any source)
# --------------------------------------------------------------------------------------------


def validate_input(inp: AllocationInput, *, customers: bool = True) -> None:
    """Check every rule of the contract; raise ValidationError naming the first bad field.

    O(total positions). ``allocate`` checks its input itself, so an input built from database
    rows is checked even if the caller forgot; it passes ``customers=False`` and checks the
    customers while valuing them (one pass instead of two), calling ``validate_input`` again
    only to name the field when something is wrong.
    """
    if not isinstance(inp, AllocationInput):
        raise ValidationError("scenario", f"must be an AllocationInput, got {_kind(inp)}")
    _check_name(inp.incident_type, "incident_type")
    _validate_assets(inp.assets)
    if customers:
        _validate_customers(inp.customers, inp.assets)
    elif not isinstance(inp.customers, (tuple, list)):
        raise ValidationError("customers", f"must be a list, got {_kind(inp.customers)}")
    _validate_terms(inp.terms)
    _validate_tranches(inp.tranches_jpy)
    _check_int(inp.reserve_jpy, "reserve_jpy")
    _validate_layers(inp.layers)


def exact_ratio(value: Any, path: str) -> tuple[int, int]:
    """(numerator, denominator) of an exact number; floats, bools, NaN and infinities refused."""
    if type(value) is int:
        return value, 1
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError(path, f"must be a finite decimal, got {value}")
        return value.as_integer_ratio()
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    raise ValidationError(path, f"must be an exact decimal, got {_show(value)}")


def _validate_assets(assets: Any) -> None:
    if not isinstance(assets, Mapping):
        raise ValidationError("assets", f"must be a mapping of asset code to spec, got {_kind(assets)}")
    for code, spec in assets.items():
        path = f"assets.{code}"
        _check_name(code, path)
        if not isinstance(spec, AssetSpec):
            raise ValidationError(path, f"must be an AssetSpec, got {_kind(spec)}")
        if spec.code != code:
            raise ValidationError(f"{path}.code", f"must equal its key {code!r}, got {spec.code!r}")
        _check_int(spec.decimals, f"{path}.decimals")
        if spec.decimals > MAX_ASSET_DECIMALS:
            raise ValidationError(f"{path}.decimals", f"must be at most {MAX_ASSET_DECIMALS}")
        num, _ = exact_ratio(spec.ref_price, f"{path}.ref_price_jpy")
        if num <= 0:
            raise ValidationError(f"{path}.ref_price_jpy", "must be greater than zero")


def _validate_customers(customers: Any, assets: Mapping[str, AssetSpec]) -> None:
    if not isinstance(customers, (tuple, list)):
        raise ValidationError("customers", f"must be a list, got {_kind(customers)}")
    if not _customers_plainly_valid(customers, assets):
        _find_customer_error(customers, assets)


def _customers_plainly_valid(customers: Sequence[Any], assets: Mapping[str, AssetSpec]) -> bool:
    """Fast path: whole-column checks that run in C (a million customers in a fraction of a
    second). True means valid; False means "look closer" (_find_customer_error decides)."""
    if not set(map(type, customers)) <= {CustomerInput}:
        return False
    ids = list(map(attrgetter("id"), customers))
    if not set(map(type, ids)) <= {str}:
        return False
    unique_ids = set(ids)
    if len(unique_ids) != len(ids) or "" in unique_ids:
        return False
    position_lists = list(map(attrgetter("positions"), customers))
    if not set(map(type, position_lists)) <= {tuple, list}:
        return False
    positions = list(chain.from_iterable(position_lists))
    if not set(map(type, positions)) <= {Position}:
        return False
    amounts = list(map(attrgetter("amount_minor"), positions))
    if not set(map(type, amounts)) <= {int} or (amounts and min(amounts) < 0):
        return False
    codes = list(map(attrgetter("asset"), positions))
    return set(map(type, codes)) <= {str} and set(codes).issubset(assets)


def _find_customer_error(customers: Sequence[Any], assets: Mapping[str, AssetSpec]) -> None:
    """Slow path: walk customer by customer and raise on the first bad field, in order.

    Types are checked exactly (``type(x) is``), like the engine's one-pass check, so whatever
    that check flags is reported here.
    """
    first_index: dict[str, int] = {}
    for ci, customer in enumerate(customers):
        path = f"customers[{ci}]"
        if type(customer) is not CustomerInput:
            raise ValidationError(path, f"must be a CustomerInput, got {_kind(customer)}")
        _check_name(customer.id, f"{path}.id")
        seen_at = first_index.setdefault(customer.id, ci)
        if seen_at != ci:
            raise ValidationError(f"{path}.id", f"duplicate id {customer.id!r} (also customers[{seen_at}])")
        if type(customer.positions) not in (tuple, list):
            raise ValidationError(f"{path}.positions", f"must be a list, got {_kind(customer.positions)}")
        for pi, pos in enumerate(customer.positions):
            ppath = f"{path}.positions[{pi}]"
            if type(pos) is not Position:
                raise ValidationError(ppath, f"must be a Position, got {_kind(pos)}")
            _check_int(pos.amount_minor, f"{ppath}.amount_minor")
            _check_name(pos.asset, f"{ppath}.asset")
            if pos.asset not in assets:
                raise ValidationError(f"{ppath}.asset", f"unknown asset {pos.asset!r}")


def _validate_terms(terms: Any) -> None:
    if not isinstance(terms, CustomerTerms):
        raise ValidationError("customer_terms", f"must be a CustomerTerms, got {_kind(terms)}")
    _check_int(terms.deductible_jpy, "customer_terms.deductible_jpy")
    if terms.cap_jpy is not None:
        _check_int(terms.cap_jpy, "customer_terms.cap_jpy")


def _validate_tranches(tranches: Any) -> None:
    if not isinstance(tranches, (tuple, list)):
        raise ValidationError("priority_tranches_jpy", f"must be a list, got {_kind(tranches)}")
    previous = 0  # t_0 = 0, so t_1 must be > 0
    for ti, threshold in enumerate(tranches):
        path = f"priority_tranches_jpy[{ti}]"
        _check_int(threshold, path)
        if threshold <= previous:
            what = "greater than 0" if ti == 0 else f"greater than the previous threshold {previous}"
            raise ValidationError(path, f"must be {what} (thresholds strictly increasing), got {threshold}")
        previous = threshold


def _validate_layers(layers: Any) -> None:
    if not isinstance(layers, (tuple, list)):
        raise ValidationError("layers", f"must be a list, got {_kind(layers)}")
    first_index: dict[str, int] = {}
    for li, layer in enumerate(layers):
        path = f"layers[{li}]"
        if not isinstance(layer, LayerInput):
            raise ValidationError(path, f"must be a LayerInput, got {_kind(layer)}")
        _check_name(layer.id, f"{path}.id")
        if layer.id == RESERVE_ID:
            raise ValidationError(f"{path}.id", f"{RESERVE_ID!r} is the reserve's source id")
        seen_at = first_index.setdefault(layer.id, li)
        if seen_at != li:
            raise ValidationError(f"{path}.id", f"duplicate id {layer.id!r} (also layers[{seen_at}])")
        _check_int(layer.attachment_jpy, f"{path}.attachment_jpy")
        if layer.limit_jpy is None:
            raise ValidationError(f"{path}.limit_jpy", "is required (a layer without a limit is not insurance)")
        _check_int(layer.limit_jpy, f"{path}.limit_jpy")
        num, den = exact_ratio(layer.share, f"{path}.share")
        if not 0 < num <= den:
            raise ValidationError(f"{path}.share", f"must be > 0 and <= 1, got {layer.share}")
        if layer.aggregate_remaining_jpy is not None:
            _check_int(layer.aggregate_remaining_jpy, f"{path}.aggregate_remaining_jpy")
        excluded = layer.excluded_incident_types
        if not isinstance(excluded, (frozenset, set, tuple, list)) or not all(
            isinstance(t, str) for t in excluded
        ):
            raise ValidationError(f"{path}.excluded_incident_types", "must be a set of strings")


def _check_int(value: Any, path: str) -> None:
    """A non-negative int; bool and float (even 5.0) are refused."""
    if type(value) is not int:
        raise ValidationError(path, f"must be an integer, got {_show(value)}")
    if value < 0:
        raise ValidationError(path, f"must not be negative, got {value}")


def _check_name(value: Any, path: str) -> None:
    """A non-empty str (exactly str, as JSON and the database give: the engine's fast path
    relies on it)."""
    if type(value) is not str:
        raise ValidationError(path, f"must be a string, got {_show(value)}")
    if not value:
        raise ValidationError(path, "must not be empty")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A short description for messages (the value itself can be a million-element list)."""
    if isinstance(value, (bool, int, float, str)):
        return f"{_kind(value)} {repr(value)[:40]}"
    return _kind(value)
