"""Property tests of reserve adequacy and the synthetic customer split.

Random rules and inputs go through compute_requirement; the result must agree to the yen with a
literal reading of the rule in Fractions, and more exposure or a higher rate must never lower
the requirement. synthetic_customers must always split exactly.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payouts.domain.adequacy import (
    MAX_RATE,
    AdequacyInputs,
    LayerCover,
    Requirement,
    ReserveRule,
    VolumeRate,
    compute_requirement,
    synthetic_customers,
)
from payouts.domain.money import MAX_YEN

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RATE_MARKETS = ["spot", "margin", "futures", "*"]
VOLUME_MARKETS = ["spot", "margin", "futures", "options"]


def decimals(max_units: int, max_places: int = 8) -> st.SearchStrategy[Decimal]:
    """Exact decimals n / 10^k in [0, max_units], built from text so nothing is rounded."""
    return st.integers(0, max_places).flatmap(
        lambda k: st.integers(0, max_units * 10**k).map(lambda n: Decimal(f"{n}E-{k}"))
    )


rates = st.one_of(st.just(Decimal(0)), decimals(int(MAX_RATE)), decimals(1, 6))
ratios = st.one_of(st.sampled_from([Decimal(0), Decimal(1)]), decimals(1))
yen = st.one_of(st.integers(0, 10**6), st.integers(0, 10**13), st.integers(0, MAX_YEN))


@st.composite
def rules(draw: Any) -> ReserveRule:
    markets = draw(st.lists(st.sampled_from(RATE_MARKETS), unique=True, max_size=4))
    floor_jpy = draw(st.one_of(st.just(0), yen))
    cap = draw(st.one_of(st.none(), yen.map(lambda extra: min(MAX_YEN, floor_jpy + extra))))
    return ReserveRule(
        volume_rates=tuple(VolumeRate(m, draw(rates)) for m in markets),
        cold_wallet_rate=draw(rates),
        hot_wallet_rate=draw(rates),
        incident_multiple=draw(rates),
        incident_lookback_years=draw(st.integers(1, 20)),
        floor_jpy=floor_jpy,
        cap_jpy=cap,
        insurance_credit_ratio=draw(ratios),
        insurance_max_share=draw(ratios),
    )


@st.composite
def inputs(draw: Any) -> AdequacyInputs:
    volumes = draw(st.dictionaries(st.sampled_from(VOLUME_MARKETS), yen, max_size=4))
    ids = draw(st.lists(st.sampled_from(["L1", "L2", "L3", "L4", "L5"]), unique=True, max_size=5))
    layers = tuple(
        LayerCover(i, draw(yen), draw(ratios), draw(st.one_of(st.none(), yen)), draw(st.booleans())) for i in ids
    )
    return AdequacyInputs(
        volumes_12m=volumes,
        cold_wallet_jpy=draw(yen),
        hot_wallet_jpy=draw(yen),
        incident_losses_jpy=draw(yen),
        layers=layers,
        reserve_balance_jpy=draw(yen),
    )


def reference(rule: ReserveRule, inp: AdequacyInputs) -> dict[str, Any]:
    """The rule read literally, in Fractions."""
    rate_of = {v.market: Fraction(v.rate) for v in rule.volume_rates}
    volume = [
        floor(v * rate_of.get(m, rate_of.get("*", Fraction(0)))) for m, v in sorted(inp.volumes_12m.items()) if v
    ]
    holdings = [floor(inp.cold_wallet_jpy * Fraction(rule.cold_wallet_rate)),
                floor(inp.hot_wallet_jpy * Fraction(rule.hot_wallet_rate))]
    incident = floor(inp.incident_losses_jpy * Fraction(rule.incident_multiple))
    total = sum(volume) + sum(holdings) + incident
    gross = max(total, rule.floor_jpy)
    if rule.cap_jpy is not None:
        gross = min(gross, rule.cap_jpy)
    credits = []
    for layer in inp.layers:
        if layer.qualifies:
            cover = layer.limit_jpy * Fraction(layer.share)
            if layer.aggregate_remaining_jpy is not None:
                cover = min(cover, Fraction(layer.aggregate_remaining_jpy))
            credits.append((layer.id, floor(cover * Fraction(rule.insurance_credit_ratio))))
    offset = min(sum(c for _, c in credits), floor(gross * Fraction(rule.insurance_max_share)))
    return {
        "volume": volume,
        "holdings": holdings,
        "incident": incident,
        "sum": total,
        "gross": gross,
        "credits": tuple(credits),
        "offset": offset,
        "cash": gross - offset,
        "surplus": inp.reserve_balance_jpy - (gross - offset),
    }


def check_invariants(rule: ReserveRule, inp: AdequacyInputs, req: Requirement) -> None:
    parts = (req.volume_components, req.holdings_components, (req.incident_component,))
    for component in (c for group in parts for c in group):
        assert component.amount_jpy == floor(component.base_jpy * Fraction(component.rate)) >= 0
    assert req.volume_part_jpy == sum(c.amount_jpy for c in req.volume_components)
    assert req.holdings_part_jpy == sum(c.amount_jpy for c in req.holdings_components)
    assert req.sum_jpy == req.volume_part_jpy + req.holdings_part_jpy + req.incident_part_jpy
    assert rule.floor_jpy <= req.gross_requirement_jpy
    if rule.cap_jpy is not None:
        assert req.gross_requirement_jpy <= rule.cap_jpy
    if req.sum_jpy < rule.floor_jpy:
        assert (req.binding, req.gross_requirement_jpy) == ("floor", rule.floor_jpy)
    elif rule.cap_jpy is not None and req.sum_jpy > rule.cap_jpy:
        assert (req.binding, req.gross_requirement_jpy) == ("cap", rule.cap_jpy)
    else:
        assert (req.binding, req.gross_requirement_jpy) == ("sum", req.sum_jpy)
    assert req.insurance_available_jpy == sum(c for _, c in req.layer_credits)
    assert 0 <= req.insurance_offset_jpy <= req.insurance_available_jpy
    assert req.insurance_offset_jpy <= floor(req.gross_requirement_jpy * Fraction(rule.insurance_max_share))
    assert 0 <= req.cash_requirement_jpy == req.gross_requirement_jpy - req.insurance_offset_jpy
    assert req.surplus_jpy == inp.reserve_balance_jpy - req.cash_requirement_jpy
    assert req.met is (req.surplus_jpy >= 0)
    assert {i for i, _ in req.layer_credits} == {layer.id for layer in inp.layers if layer.qualifies}


@PROFILE
@given(rules(), inputs())
def test_agrees_with_the_literal_rule(rule: ReserveRule, inp: AdequacyInputs) -> None:
    req = compute_requirement(rule, inp)
    check_invariants(rule, inp, req)
    ref = reference(rule, inp)
    assert [c.amount_jpy for c in req.volume_components] == ref["volume"]
    assert [c.amount_jpy for c in req.holdings_components] == ref["holdings"]
    assert req.incident_part_jpy == ref["incident"]
    assert (req.sum_jpy, req.gross_requirement_jpy) == (ref["sum"], ref["gross"])
    assert req.layer_credits == ref["credits"]
    assert (req.insurance_offset_jpy, req.cash_requirement_jpy, req.surplus_jpy) == (
        ref["offset"], ref["cash"], ref["surplus"],
    )


EXPOSURES = ["volume", "cold", "hot", "incident"]


@PROFILE
@given(rules(), inputs(), st.sampled_from(EXPOSURES), st.sampled_from(VOLUME_MARKETS), yen)
def test_more_exposure_never_lowers_the_requirement(
    rule: ReserveRule, inp: AdequacyInputs, what: str, market: str, delta: int
) -> None:
    if what == "volume":
        volumes = dict(inp.volumes_12m)
        volumes[market] = min(MAX_YEN, volumes.get(market, 0) + delta)
        more = replace(inp, volumes_12m=volumes)
    else:
        field = {"cold": "cold_wallet_jpy", "hot": "hot_wallet_jpy", "incident": "incident_losses_jpy"}[what]
        more = replace(inp, **{field: min(MAX_YEN, getattr(inp, field) + delta)})
    before, after = compute_requirement(rule, inp), compute_requirement(rule, more)
    check_invariants(rule, more, after)
    assert after.sum_jpy >= before.sum_jpy
    assert after.gross_requirement_jpy >= before.gross_requirement_jpy
    assert after.cash_requirement_jpy >= before.cash_requirement_jpy


RATES = ["volume", "cold", "hot", "incident"]


@PROFILE
@given(rules(), inputs(), st.sampled_from(RATES), st.integers(0, 3), rates)
def test_a_higher_rate_never_lowers_the_requirement(
    rule: ReserveRule, inp: AdequacyInputs, what: str, index: int, delta: Decimal
) -> None:
    if what == "volume":
        if not rule.volume_rates:
            return
        entries = list(rule.volume_rates)
        i = index % len(entries)
        entries[i] = VolumeRate(entries[i].market, min(MAX_RATE, entries[i].rate + delta))
        higher = replace(rule, volume_rates=tuple(entries))
    else:
        field = {"cold": "cold_wallet_rate", "hot": "hot_wallet_rate", "incident": "incident_multiple"}[what]
        higher = replace(rule, **{field: min(MAX_RATE, getattr(rule, field) + delta)})
    before, after = compute_requirement(rule, inp), compute_requirement(higher, inp)
    check_invariants(higher, inp, after)
    assert after.gross_requirement_jpy >= before.gross_requirement_jpy
    assert after.cash_requirement_jpy >= before.cash_requirement_jpy


@settings(max_examples=100, deadline=None)
@given(yen, st.integers(1, 3000), st.integers(-(2**70), 2**70))
def test_synthetic_customers_split_exactly(total: int, customers: int, seed: int) -> None:
    amounts = synthetic_customers(total, customers, seed)
    assert len(amounts) == customers
    assert sum(amounts) == total
    assert all(type(a) is int and a >= 0 for a in amounts)
    assert synthetic_customers(total, customers, seed) == amounts  # deterministic
