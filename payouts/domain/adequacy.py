"""Reserve adequacy: how much liability reserve a rule requires, and stress-test helpers.

The regulator's formula is not published, so a ``ReserveRule`` states it as parameters: rates on
trailing-12-month trading volume per market, rates on customer assets in cold and hot wallets,
a multiple of recent incident losses, a floor and a cap, and how much qualifying insurance may
stand in for cash. ``compute_requirement`` shows every step so the number can be checked by hand.

Money is exact: yen are ints, rates are ``Decimal`` (never float). Rounding: every component is
``floor(base * rate)``, computed exactly and floored once; parts and the sum add those integers
without rounding again; each layer credit is ``floor(min(limit * share, aggregate remaining) *
credit ratio)``, floored once; the insurance cap is ``floor(gross * max share)``. Rounding down
components can only lower the requirement by under one yen per component, and rounding down
credits and the insurance cap can only raise the cash requirement, never lower it.

Stress testing: ``synthetic_customers`` splits a loss over many customers, long-tailed like
exchange balances; ``STRESS_PRESETS`` and ``stress_loss_jpy`` size illustrative losses.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat
from math import isqrt
from operator import add, floordiv, mul
from typing import Any

from payouts.domain.i18n import N_
from payouts.domain.errors import ValidationError
from payouts.domain.largest_remainder import apportion
from payouts.domain.money import canonical_decimal, check_yen

__all__ = [
    "WILDCARD_MARKET",
    "MAX_RATE",
    "VolumeRate",
    "ReserveRule",
    "validate_rule",
    "rule_to_json",
    "parse_rule",
    "LayerCover",
    "AdequacyInputs",
    "validate_inputs",
    "Component",
    "Requirement",
    "compute_requirement",
    "MAX_SYNTHETIC_CUSTOMERS",
    "synthetic_customers",
    "StressPreset",
    "STRESS_PRESETS",
    "stress_preset",
    "stress_loss_jpy",
]

#: The volume-rate entry for any market that has no entry of its own.
WILDCARD_MARKET = "*"
#: Largest rate or multiple a rule may set. Far above any sensible rule, and with yen inputs of
#: at most MAX_YEN it keeps each component within a 64-bit column (10^15 * 100 < 2^63).
MAX_RATE = Decimal(100)
#: Most decimal places a rate, ratio or share may have: a typo such as 1E-100000 would otherwise
#: turn exact arithmetic into million-digit integers.
_MAX_RATE_PLACES = 18
#: Longest market or layer id (the database columns are String(40)).
_MAX_NAME = 40
#: A rate in rule JSON: ASCII digits, optionally a point and more digits (no sign, no exponent).
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


# --------------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolumeRate:
    """The rate on a market's trailing-12-month JPY volume ("spot", "margin"; "*": any other)."""

    market: str
    rate: Decimal


@dataclass(frozen=True, slots=True)
class ReserveRule:
    """The parameters that size the required liability reserve."""

    volume_rates: tuple[VolumeRate, ...]
    cold_wallet_rate: Decimal  # on the JPY value of customer assets in cold wallets
    hot_wallet_rate: Decimal  # on the JPY value of customer assets in hot wallets
    incident_multiple: Decimal  # times customer losses of incidents within the lookback
    incident_lookback_years: int
    floor_jpy: int
    cap_jpy: int | None
    insurance_credit_ratio: Decimal  # share of a qualifying layer's cover that counts, 0..1
    insurance_max_share: Decimal  # most of the gross requirement insurance may replace, 0..1


def validate_rule(rule: Any) -> None:
    """Raise ValidationError(field, message) for the first broken rule parameter, in field order."""
    if not isinstance(rule, ReserveRule):
        raise ValidationError("rule", f"must be a ReserveRule, got {type(rule).__name__}")
    rates = rule.volume_rates
    if not isinstance(rates, (tuple, list)):
        raise ValidationError("volume_rates", "must be a tuple of VolumeRate")
    seen: set[str] = set()
    for i, entry in enumerate(rates):
        path = f"volume_rates[{i}]"
        if not isinstance(entry, VolumeRate):
            raise ValidationError(path, f"must be a VolumeRate, got {type(entry).__name__}")
        _check_name(entry.market, f"{path}.market")
        if entry.market in seen:
            raise ValidationError(f"{path}.market", f"{entry.market!r} has two rates")
        seen.add(entry.market)
        _check_rate(entry.rate, f"{path}.rate")
    _check_rate(rule.cold_wallet_rate, "cold_wallet_rate")
    _check_rate(rule.hot_wallet_rate, "hot_wallet_rate")
    _check_rate(rule.incident_multiple, "incident_multiple")
    years = rule.incident_lookback_years
    if type(years) is not int or not 1 <= years <= 20:
        raise ValidationError("incident_lookback_years", f"must be whole years from 1 to 20, got {years!r}")
    check_yen(rule.floor_jpy, "floor_jpy")
    if rule.cap_jpy is not None:
        check_yen(rule.cap_jpy, "cap_jpy")
        if rule.cap_jpy < rule.floor_jpy:
            raise ValidationError("cap_jpy", f"must be at least floor_jpy ({rule.floor_jpy:,})")
    _check_rate(rule.insurance_credit_ratio, "insurance_credit_ratio", ratio=True)
    _check_rate(rule.insurance_max_share, "insurance_max_share", ratio=True)


def rule_to_json(rule: ReserveRule) -> dict[str, Any]:
    """The rule as JSON-ready data: decimals as exact strings ("0.0005"), yen as ints."""
    validate_rule(rule)
    return {
        "volume_rates": [{"market": v.market, "rate": canonical_decimal(v.rate)} for v in rule.volume_rates],
        "cold_wallet_rate": canonical_decimal(rule.cold_wallet_rate),
        "hot_wallet_rate": canonical_decimal(rule.hot_wallet_rate),
        "incident_multiple": canonical_decimal(rule.incident_multiple),
        "incident_lookback_years": rule.incident_lookback_years,
        "floor_jpy": rule.floor_jpy,
        "cap_jpy": rule.cap_jpy,
        "insurance_credit_ratio": canonical_decimal(rule.insurance_credit_ratio),
        "insurance_max_share": canonical_decimal(rule.insurance_max_share),
    }


def parse_rule(obj: Any) -> ReserveRule:
    """Inverse of rule_to_json (e.g. after json.loads); every key is required, rates are decimal
    strings. Raises ValidationError naming the field."""
    if not isinstance(obj, Mapping):
        raise ValidationError("rule", "must be an object")

    def get(key: str) -> Any:
        if key not in obj:
            raise ValidationError(key, "is required")
        return obj[key]

    entries = get("volume_rates")
    if not isinstance(entries, list):
        raise ValidationError("volume_rates", "must be a list")
    volume_rates = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "market" not in entry or "rate" not in entry:
            raise ValidationError(f"volume_rates[{i}]", "must be an object with market and rate")
        rate = _decimal_from_text(entry["rate"], f"volume_rates[{i}].rate")
        volume_rates.append(VolumeRate(entry["market"], rate))
    rule = ReserveRule(
        volume_rates=tuple(volume_rates),
        cold_wallet_rate=_decimal_from_text(get("cold_wallet_rate"), "cold_wallet_rate"),
        hot_wallet_rate=_decimal_from_text(get("hot_wallet_rate"), "hot_wallet_rate"),
        incident_multiple=_decimal_from_text(get("incident_multiple"), "incident_multiple"),
        incident_lookback_years=get("incident_lookback_years"),
        floor_jpy=get("floor_jpy"),
        cap_jpy=get("cap_jpy"),
        insurance_credit_ratio=_decimal_from_text(get("insurance_credit_ratio"), "insurance_credit_ratio"),
        insurance_max_share=_decimal_from_text(get("insurance_max_share"), "insurance_max_share"),
    )
    validate_rule(rule)
    return rule


# --------------------------------------------------------------------------------------------
# The inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayerCover:
    """An insurance layer as the rule sees it: its limit, our share of it, what its aggregate has
    left (None: no aggregate), and whether the rule lets it count at all."""

    id: str
    limit_jpy: int
    share: Decimal
    aggregate_remaining_jpy: int | None
    qualifies: bool


@dataclass(frozen=True, slots=True)
class AdequacyInputs:
    """The exchange's figures on the day the requirement is computed."""

    volumes_12m: Mapping[str, int]  # market -> JPY traded over the trailing 12 months
    cold_wallet_jpy: int
    hot_wallet_jpy: int
    incident_losses_jpy: int  # customer losses of incidents within the rule's lookback
    layers: tuple[LayerCover, ...]
    reserve_balance_jpy: int  # the reserve ledger's available balance


def validate_inputs(inputs: Any) -> None:
    """Raise ValidationError(field, message) for the first bad input, in field order."""
    if not isinstance(inputs, AdequacyInputs):
        raise ValidationError("inputs", f"must be AdequacyInputs, got {type(inputs).__name__}")
    volumes = inputs.volumes_12m
    if not isinstance(volumes, Mapping):
        raise ValidationError("volumes_12m", "must be a mapping of market to yen")
    for market, volume in volumes.items():
        path = f"volumes_12m.{market}"
        _check_name(market, path)
        if market == WILDCARD_MARKET:
            # "*" only selects a rate; volume always belongs to a named market.
            raise ValidationError(path, "'*' is not a market; give each market's volume under its name")
        check_yen(volume, path)
    check_yen(inputs.cold_wallet_jpy, "cold_wallet_jpy")
    check_yen(inputs.hot_wallet_jpy, "hot_wallet_jpy")
    check_yen(inputs.incident_losses_jpy, "incident_losses_jpy")
    if not isinstance(inputs.layers, (tuple, list)):
        raise ValidationError("layers", "must be a tuple of LayerCover")
    seen: set[str] = set()
    for i, layer in enumerate(inputs.layers):
        path = f"layers[{i}]"
        if not isinstance(layer, LayerCover):
            raise ValidationError(path, f"must be a LayerCover, got {type(layer).__name__}")
        _check_name(layer.id, f"{path}.id")
        if layer.id in seen:
            raise ValidationError(f"{path}.id", f"{layer.id!r} appears twice")
        seen.add(layer.id)
        check_yen(layer.limit_jpy, f"{path}.limit_jpy")
        _check_rate(layer.share, f"{path}.share", ratio=True)
        if layer.aggregate_remaining_jpy is not None:
            check_yen(layer.aggregate_remaining_jpy, f"{path}.aggregate_remaining_jpy")
        if type(layer.qualifies) is not bool:
            raise ValidationError(f"{path}.qualifies", f"must be True or False, got {layer.qualifies!r}")
    check_yen(inputs.reserve_balance_jpy, "reserve_balance_jpy")


# --------------------------------------------------------------------------------------------
# The requirement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Component:
    """One line of the calculation: amount_jpy = floor(base_jpy * rate)."""

    key: str
    base_jpy: int
    rate: Decimal
    amount_jpy: int


@dataclass(frozen=True, slots=True)
class Requirement:
    """The required reserve and every step to it."""

    volume_components: tuple[Component, ...]  # one per market with volume > 0, by market name
    volume_part_jpy: int
    holdings_components: tuple[Component, ...]  # "cold", "hot"
    holdings_part_jpy: int
    incident_component: Component  # "incident"
    incident_part_jpy: int
    sum_jpy: int  # volume + holdings + incident
    gross_requirement_jpy: int  # sum clamped to [floor, cap]
    binding: str  # "floor", "cap" or "sum": which one set the gross
    layer_credits: tuple[tuple[str, int], ...]  # (layer id, credit) for qualifying layers, input order
    insurance_available_jpy: int  # sum of layer credits
    insurance_offset_jpy: int  # min(available, floor(gross * insurance_max_share))
    cash_requirement_jpy: int  # gross - offset
    reserve_balance_jpy: int
    surplus_jpy: int  # reserve balance - cash requirement; negative is a deficit

    @property
    def met(self) -> bool:
        """True when the reserve holds at least the cash requirement."""
        return self.surplus_jpy >= 0


def compute_requirement(rule: ReserveRule, inputs: AdequacyInputs) -> Requirement:
    """The reserve ``rule`` requires for ``inputs``, exactly (see the module docstring for
    rounding). Validates both first; raises ValidationError naming the field."""
    validate_rule(rule)
    validate_inputs(inputs)
    rates = {v.market: v.rate for v in rule.volume_rates}
    no_rate = Decimal(0)
    volume_components = tuple(
        _component(market, volume, rates.get(market, rates.get(WILDCARD_MARKET, no_rate)))
        # Sorted so that the same figures always read (and hash) the same, whatever the order
        # the mapping was built in.
        for market, volume in sorted(inputs.volumes_12m.items())
        if volume > 0
    )
    holdings_components = (
        _component("cold", inputs.cold_wallet_jpy, rule.cold_wallet_rate),
        _component("hot", inputs.hot_wallet_jpy, rule.hot_wallet_rate),
    )
    incident = _component("incident", inputs.incident_losses_jpy, rule.incident_multiple)
    volume_part = sum(c.amount_jpy for c in volume_components)
    holdings_part = sum(c.amount_jpy for c in holdings_components)
    total = volume_part + holdings_part + incident.amount_jpy

    if total < rule.floor_jpy:
        gross, binding = rule.floor_jpy, "floor"
    elif rule.cap_jpy is not None and total > rule.cap_jpy:
        gross, binding = rule.cap_jpy, "cap"
    else:
        gross, binding = total, "sum"

    credit_num, credit_den = rule.insurance_credit_ratio.as_integer_ratio()
    credits = []
    for layer in inputs.layers:
        if not layer.qualifies:
            continue
        share_num, share_den = layer.share.as_integer_ratio()
        # Compare limit * share with the aggregate exactly (cross-multiplied), then floor once.
        cover_num, cover_den = layer.limit_jpy * share_num, share_den
        agg = layer.aggregate_remaining_jpy
        if agg is not None and agg * cover_den < cover_num:
            cover_num, cover_den = agg, 1
        credits.append((layer.id, cover_num * credit_num // (cover_den * credit_den)))
    available = sum(credit for _, credit in credits)
    max_num, max_den = rule.insurance_max_share.as_integer_ratio()
    offset = min(available, gross * max_num // max_den)
    cash = gross - offset  # >= 0: offset <= floor(gross * max share) <= gross
    return Requirement(
        volume_components=volume_components,
        volume_part_jpy=volume_part,
        holdings_components=holdings_components,
        holdings_part_jpy=holdings_part,
        incident_component=incident,
        incident_part_jpy=incident.amount_jpy,
        sum_jpy=total,
        gross_requirement_jpy=gross,
        binding=binding,
        layer_credits=tuple(credits),
        insurance_available_jpy=available,
        insurance_offset_jpy=offset,
        cash_requirement_jpy=cash,
        reserve_balance_jpy=inputs.reserve_balance_jpy,
        surplus_jpy=inputs.reserve_balance_jpy - cash,
    )


def _component(key: str, base: int, rate: Decimal) -> Component:
    num, den = rate.as_integer_ratio()
    return Component(key=key, base_jpy=base, rate=rate, amount_jpy=base * num // den)


# --------------------------------------------------------------------------------------------
# Stress testing
# --------------------------------------------------------------------------------------------

#: Most customers synthetic_customers will make (a large exchange's whole customer base).
MAX_SYNTHETIC_CUSTOMERS = 2_000_000
# Weights are SCALE // u^(3/4) with u uniform in [U_LOW, U_LOW + 2^32): a Pareto tail of index
# 4/3 (the share of customers above x falls like x^(-4/3)), so the top 1% of customers hold about
# 30% of the total and the top 20% about 65%, with the median well under the mean. U_LOW bounds
# the largest weight at about two million times the smallest. u^(3/4) is isqrt(u * isqrt(u)):
# integer square roots only, so the weights are exact and the same on every platform.
_SCALE = 1 << 40
_U_LOW = 1 << 4


def synthetic_customers(total_loss_jpy: int, customers: int, seed: int = 0) -> list[int]:
    """Split ``total_loss_jpy`` over ``customers`` customers, long-tailed like exchange balances.

    Returns ints >= 0 that sum exactly to the total, the same for the same arguments (on any
    platform: the weights come from ``random.Random(seed)`` as little-endian integers, never
    floats). Shares are the largest remainder apportionment of the total over the weights, ties
    going to the earlier customer. O(n); a few seconds at the maximum of 2,000,000.
    """
    check_yen(total_loss_jpy, "total_loss_jpy")
    if type(customers) is not int or not 1 <= customers <= MAX_SYNTHETIC_CUSTOMERS:
        limit = f"{MAX_SYNTHETIC_CUSTOMERS:,}"
        raise ValidationError("customers", f"must be a whole number from 1 to {limit}, got {customers!r}")
    if type(seed) is not int:
        raise ValidationError("seed", f"must be a whole number, got {seed!r}")
    rng = random.Random(seed)
    raw = struct.unpack(f"<{customers}I", rng.randbytes(4 * customers))
    u = list(map(add, repeat(_U_LOW), raw))
    # map() over C functions: no Python-level loop per customer.
    weights = list(map(floordiv, repeat(_SCALE), map(isqrt, map(mul, u, map(isqrt, u)))))
    del raw, u
    weight_sum = sum(weights)
    if total_loss_jpy > weight_sum:
        # LR needs total <= sum of weights; scaling every weight by the same factor keeps the
        # proportions (and so the result) unchanged.
        factor = -(-total_loss_jpy // weight_sum)
        weights = list(map(mul, weights, repeat(factor)))
        weight_sum *= factor
    return apportion(total_loss_jpy, weights, range(customers).__getitem__, weight_sum)


@dataclass(frozen=True, slots=True)
class StressPreset:
    """An illustrative stress scenario: lose ``share_lost`` of the holdings in ``wallet``."""

    key: str
    label: str
    description: str
    wallet: str  # "hot" or "cold"
    share_lost: Decimal


#: Replays of public incidents, scaled to this exchange by share of holdings. The shares are
#: assumptions for illustration, not reported figures: no exchange publishes what share of its
#: hot wallet an incident took, and this exchange's asset mix differs.
STRESS_PRESETS: tuple[StressPreset, ...] = (
    StressPreset(
        key="coincheck-2018",
        label=N_("Coincheck 2018 (NEM hot wallet)"),
        description=N_(
            "Public reporting: in January 2018 about 523 million XEM (about ¥58bn at the time) "
            "were stolen from Coincheck's hot wallet, affecting about 260,000 customers. "
            "Replayed here as losing the whole hot wallet of one major asset, taken as 20 percent of "
            "hot-wallet holdings; the 20 percent is an illustrative assumption, not a reported figure."
        ),
        wallet="hot",
        share_lost=Decimal("0.20"),
    ),
    StressPreset(
        key="dmm-2024",
        label=N_("DMM Bitcoin 2024 (BTC hot wallet)"),
        description=N_(
            "Public reporting: in May 2024, 4,502.9 BTC (about ¥48bn) were taken from DMM "
            "Bitcoin's hot wallet. Replayed here as losing 50 percent of hot-wallet holdings; the 50 percent "
            "is an illustrative assumption, not a reported figure."
        ),
        wallet="hot",
        share_lost=Decimal("0.50"),
    ),
    StressPreset(
        key="cold-wallet-breach",
        label=N_("Cold wallet breach"),
        description=N_(
            "Hypothetical: 10 percent of cold-wallet holdings lost (for example through compromised "
            "signing keys). Not based on a specific incident; the 10 percent is an illustrative "
            "assumption."
        ),
        wallet="cold",
        share_lost=Decimal("0.10"),
    ),
    StressPreset(
        key="hot-wallet-total",
        label=N_("Whole hot wallet"),
        description=N_(
            "Hypothetical worst case for the hot wallet: everything in it is lost (100 percent of "
            "hot-wallet holdings). An illustrative assumption, not based on a specific incident."
        ),
        wallet="hot",
        share_lost=Decimal(1),
    ),
)

_WALLETS = ("hot", "cold")


def stress_preset(key: Any) -> StressPreset:
    """The preset with this key; ValidationError("preset", ...) if there is none."""
    for preset in STRESS_PRESETS:
        if preset.key == key:
            return preset
    known = ", ".join(p.key for p in STRESS_PRESETS)
    raise ValidationError("preset", f"unknown preset {key!r}; known: {known}")


def stress_loss_jpy(
    preset_or_share: StressPreset | str | Decimal, wallet: str | None, inputs: AdequacyInputs
) -> int:
    """floor(holdings of the wallet * share lost).

    ``preset_or_share`` is a StressPreset, a preset key, or a Decimal share in [0, 1]. With a
    preset, ``wallet`` may be None (the preset's wallet) or must equal the preset's wallet; with
    a share it must be "hot" or "cold".
    """
    if isinstance(preset_or_share, str):
        preset_or_share = stress_preset(preset_or_share)
    if isinstance(preset_or_share, StressPreset):
        share = preset_or_share.share_lost
        if wallet is None:
            wallet = preset_or_share.wallet
        elif wallet != preset_or_share.wallet:
            expected = preset_or_share.wallet
            raise ValidationError("wallet", f"this preset is about the {expected} wallet, got {wallet!r}")
    else:
        share = preset_or_share
    _check_rate(share, "share_lost", ratio=True)
    if wallet not in _WALLETS:
        raise ValidationError("wallet", f"must be 'hot' or 'cold', got {wallet!r}")
    validate_inputs(inputs)
    holdings = inputs.hot_wallet_jpy if wallet == "hot" else inputs.cold_wallet_jpy
    num, den = share.as_integer_ratio()
    return holdings * num // den


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_name(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > _MAX_NAME:
        raise ValidationError(
            field, f"must be a name of 1 to {_MAX_NAME} characters without surrounding spaces, got {value!r}"
        )


def _check_rate(value: Any, field: str, *, ratio: bool = False) -> None:
    """An exact, finite Decimal >= 0 with at most 18 places; at most 1 for a ratio, else MAX_RATE."""
    if not isinstance(value, Decimal):
        # A float (or bool, or int) here is refused rather than converted: 0.1 as a float is not
        # 0.1, and a rule must say exactly what it means.
        raise ValidationError(field, f'must be an exact Decimal such as Decimal("0.001"), got {value!r}')
    if not value.is_finite():
        raise ValidationError(field, f"must be a finite decimal, got {value}")
    high = Decimal(1) if ratio else MAX_RATE
    if value < 0 or value > high:
        raise ValidationError(field, f"must be from 0 to {high}, got {canonical_decimal(value)}")
    # Read the places from the digits (as_integer_ratio of 1E-100000000 would build a huge
    # integer first); trailing zeros do not count: "0.50000000000000000000" is 0.5.
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    places = -exponent - (len(digits) - len(bytes(digits).rstrip(b"\0")))
    if value and places > _MAX_RATE_PLACES:
        raise ValidationError(field, f"has more than {_MAX_RATE_PLACES} decimal places")


def _decimal_from_text(value: Any, field: str) -> Decimal:
    """A decimal string from JSON ("0.0005") as a Decimal; anything else is refused."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a decimal string such as \"0.001\", got {value!r}")
    text = value.strip()
    if _PLAIN_DECIMAL.fullmatch(text) is None:
        raise ValidationError(field, f"is not a plain decimal number: {value!r}")
    return Decimal(text)

