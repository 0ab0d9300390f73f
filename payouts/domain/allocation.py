"""The allocation engine: who gets how much of an incident's funding, and from which source.

Implements shared/spec/allocation.md exactly, in integers only (no floats, no Fraction in the hot
path): valuation, customer terms, the funding waterfall (reserve, then insurance layers in tower
order), distribution through the priority tranches with largest remainder (LR), and the split of
every payout by source. Also: invariant checks cheap enough to run after every production run,
the JSON shape of a result, and the distribution of money recovered after a run.

Cost is O(n log n) in the number of customers: one sort by id, then whole-list passes (mostly
map() over operator functions, which run in C) and, per LR, a selection of the leftover winners
in expected O(n). At a million customers memory traffic, not arithmetic, is what costs, so the
customers are checked while they are valued and results are kept as columns. Standard library
only.

Public API: the input dataclasses and parse_scenario / validate_input (from allocation_input),
allocate, AllocationResult / SourceResult / CustomerResults / CustomerResult, result_to_json,
check_invariants / InvariantViolation, largest_remainder, distribute_later_money.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import compress, islice, repeat
from operator import add, and_, attrgetter, eq, le, lshift, lt, or_, rshift, sub
from typing import Any, NamedTuple, NoReturn

from payouts.domain.allocation_input import (
    RESERVE_ID,
    AllocationInput,
    AssetSpec,
    CustomerInput,
    CustomerTerms,
    LayerInput,
    Position,
    exact_ratio,
    parse_scenario,
    validate_input,
)
from payouts.domain.errors import DomainError, ValidationError
from payouts.domain.largest_remainder import apportion, largest_remainder

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
    "SourceResult",
    "CustomerResult",
    "CustomerResults",
    "AllocationResult",
    "allocate",
    "result_to_json",
    "InvariantViolation",
    "check_invariants",
    "largest_remainder",
    "LaterDistribution",
    "distribute_later_money",
    "tower_order",
    "layer_available",
]


class InvariantViolation(DomainError, AssertionError):
    """A result breaks one of the contract's invariants: a bug, never a user error. Do not pay."""


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceResult:
    """One funding source in draw order. The reserve has aggregate_remaining_after_jpy None."""

    id: str
    available_jpy: int
    used_jpy: int
    aggregate_remaining_after_jpy: int | None

    @property
    def is_reserve(self) -> bool:
        return self.id == RESERVE_ID  # validation forbids a layer with this id


class CustomerResult(NamedTuple):
    """One customer's outcome. ``by_source`` is aligned with ``AllocationResult.sources``."""

    id: str
    approved_jpy: int  # V
    eligible_jpy: int  # E
    payout_jpy: int  # P
    by_source: tuple[int, ...]

    @property
    def not_covered_jpy(self) -> int:
        """V - E: what the deductible and the cap leave out."""
        return self.approved_jpy - self.eligible_jpy

    @property
    def unpaid_jpy(self) -> int:
        """E - P: the eligible claim this run could not fund (later money goes here)."""
        return self.eligible_jpy - self.payout_jpy


_new_customer_result = partial(tuple.__new__, CustomerResult)  # CustomerResult._make, minus a frame


class CustomerResults(Sequence[CustomerResult]):
    """The customers of a run, sorted by id: a read-only sequence of CustomerResult.

    Stored as columns (one tuple per field, one per source) and each CustomerResult is built
    when read: a run over a million customers then costs a few tuples, not a million objects,
    and the invariant checks work on whole columns in C.
    """

    __slots__ = ("_ids", "_approved", "_eligible", "_payout", "_by_source")

    def __init__(
        self,
        ids: Iterable[str],
        approved_jpy: Iterable[int],
        eligible_jpy: Iterable[int],
        payout_jpy: Iterable[int],
        by_source: Iterable[Iterable[int]],
    ) -> None:
        self._ids = tuple(ids)
        self._approved = tuple(approved_jpy)
        self._eligible = tuple(eligible_jpy)
        self._payout = tuple(payout_jpy)
        self._by_source = tuple(tuple(column) for column in by_source)  # one column per source
        n = len(self._ids)
        if not all(len(c) == n for c in (self._approved, self._eligible, self._payout, *self._by_source)):
            raise ValueError("every column must have one entry per customer")

    @classmethod
    def from_rows(cls, rows: Iterable[CustomerResult], source_count: int) -> CustomerResults:
        """Columns from CustomerResult rows (each by_source of length ``source_count``)."""
        rows = list(rows)
        columns = [[r[f] for r in rows] for f in range(4)]
        by_source = [[r.by_source[j] for r in rows] for j in range(source_count)]
        return cls(*columns, by_source)

    # Columns, aligned with each other and sorted by id.
    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    @property
    def approved_jpy(self) -> tuple[int, ...]:
        return self._approved

    @property
    def eligible_jpy(self) -> tuple[int, ...]:
        return self._eligible

    @property
    def payout_jpy(self) -> tuple[int, ...]:
        return self._payout

    @property
    def by_source(self) -> tuple[tuple[int, ...], ...]:
        """One column per source, in draw order."""
        return self._by_source

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return CustomerResult(
            self._ids[index], self._approved[index], self._eligible[index], self._payout[index],
            tuple(column[index] for column in self._by_source),
        )

    def __iter__(self) -> Iterator[CustomerResult]:
        return map(_new_customer_result, zip(self._ids, self._approved, self._eligible, self._payout,
                                             zip(*self._by_source)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CustomerResults):
            return (self._ids, self._approved, self._eligible, self._payout, self._by_source) == (
                other._ids, other._approved, other._eligible, other._payout, other._by_source)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(map(eq, self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<CustomerResults of {len(self)} customers>"


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """The outcome of one run: totals, the sources in draw order, the customers by id."""

    total_eligible_jpy: int  # L
    total_funded_jpy: int  # F
    shortfall_jpy: int  # L - F
    sources: tuple[SourceResult, ...]  # draw order: reserve, then layers in tower order
    customers: CustomerResults  # sorted by id (code points)

    @property
    def source_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sources)

    def by_source_of(self, customer: CustomerResult) -> dict[str, int]:
        """A customer's split as {source id: yen}."""
        return dict(zip(self.source_ids, customer.by_source))


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def allocate(inp: AllocationInput) -> AllocationResult:
    """Run the contract's steps 1-6. Checks ``inp`` first: a ValidationError naming the field,
    never a partial result."""
    validate_input(inp, customers=False)  # the customers are checked while valued
    ids, approved = _valuation(inp)
    # Work in id order from here on: the output needs it, and with index order = id order the
    # LR tie-break "E descending, then id ascending" is a stable sort on E alone.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ids = list(map(ids.__getitem__, order))
    if not all(map(lt, ids, islice(ids, 1, None))):
        _reject(inp)  # a duplicate id
    approved = list(map(approved.__getitem__, order))
    del order
    eligible = _apply_terms(approved, inp.terms)
    loss = sum(eligible)
    sources = _waterfall(inp, loss)
    used = [s.used_jpy for s in sources]
    funded = sum(used)
    payout = _distribute(eligible, funded, loss, inp.tranches_jpy)
    splits = _split_by_source(payout, used, funded, eligible)
    return AllocationResult(
        loss, funded, loss - funded, tuple(sources),
        CustomerResults(ids, approved, eligible, payout, splits),
    )


class _Anomaly(Exception):
    """Internal: the one-pass customer check saw something; validate_input will name it."""


def _reject(inp: AllocationInput) -> NoReturn:
    """Raise the precise ValidationError for input the fast checks flagged."""
    validate_input(inp)
    raise ValidationError("customers", "invalid customer data")  # unreachable: checks agree


def _valuation(inp: AllocationInput) -> tuple[list[str], list[int]]:
    """Step 1, with the customer checks: ids and V in input order.

    V = floor(sum of amount_minor * price / 10^d), rounded once per customer. Every asset's
    price / 10^d is written over one common denominator D, so a customer's value is
    (sum of amount_minor * factor[asset]) // D: exact integers, one division per customer.
    The customers are checked in the same pass (memory traffic, not arithmetic, is what costs
    at a million customers); on anything odd, validate_input names the field.
    """
    factor, common = _value_factors(inp.assets)
    ids: list[str] = []
    values: list[int] = []
    add_id, add_value = ids.append, values.append
    try:
        for customer in inp.customers:
            cid, positions = customer.id, customer.positions
            if (type(customer) is not CustomerInput or type(cid) is not str or not cid
                    or (type(positions) is not tuple and type(positions) is not list)):
                raise _Anomaly
            total = 0
            for pos in positions:
                amount = pos.amount_minor
                if type(pos) is not Position or type(amount) is not int or amount < 0:
                    raise _Anomaly
                total += amount * factor[pos.asset]  # KeyError: unknown asset
            add_id(cid)
            add_value(total // common)
    except (_Anomaly, AttributeError, KeyError, TypeError):
        _reject(inp)
    return ids, values


def _value_factors(assets: Mapping[str, AssetSpec]) -> tuple[dict[str, int], int]:
    """({code: price * D / 10^d}, D) with D the least common denominator of every price / 10^d."""
    numerators, denominators = {}, {}
    for code, spec in assets.items():
        num, den = exact_ratio(spec.ref_price, f"assets.{code}.ref_price_jpy")
        numerators[code] = num
        denominators[code] = den * 10**spec.decimals
    common = math.lcm(*denominators.values()) if denominators else 1
    return {code: numerators[code] * (common // denominators[code]) for code in assets}, common


def _apply_terms(approved: list[int], terms: CustomerTerms) -> list[int]:
    """Step 2: E = min(max(V - D, 0), C)."""
    d, cap = terms.deductible_jpy, terms.cap_jpy
    if cap is None:
        return [v - d if v > d else 0 for v in approved]
    return [(v - d if v - d < cap else cap) if v > d else 0 for v in approved]


def tower_order(layers: Iterable[LayerInput]) -> list[LayerInput]:
    """Layers in draw order: attachment ascending, then id (code points)."""
    return sorted(layers, key=lambda layer: (layer.attachment_jpy, layer.id))


def layer_available(layer: LayerInput, loss: int, incident_type: str) -> int:
    """What a layer can pay on loss L: 0 if excluded, else floor(min(M, max(0, L - A)) * s),
    then at most the aggregate remaining G if set."""
    if incident_type in layer.excluded_incident_types:
        return 0
    num, den = exact_ratio(layer.share, "share")
    band = min(layer.limit_jpy, max(0, loss - layer.attachment_jpy))
    available = band * num // den
    if layer.aggregate_remaining_jpy is not None:
        available = min(available, layer.aggregate_remaining_jpy)
    return available


def _waterfall(inp: AllocationInput, loss: int) -> list[SourceResult]:
    """Steps 3-4: draw the reserve, then each layer, until the need L is met.

    An excluded or exhausted layer leaves its gap: higher layers keep their own band.
    """
    need = loss
    used = min(inp.reserve_jpy, need)
    need -= used
    sources = [SourceResult(RESERVE_ID, inp.reserve_jpy, used, None)]
    for layer in tower_order(inp.layers):
        available = layer_available(layer, loss, inp.incident_type)
        used = min(available, need)
        need -= used
        aggregate = layer.aggregate_remaining_jpy
        sources.append(SourceResult(layer.id, available, used, None if aggregate is None else aggregate - used))
    return sources


def _lr(total: int, weights: list[int], eligible: list[int], weight_sum: int) -> list[int]:
    """LR with the contract's tie-break: fraction, then E descending, then id ascending (index
    order is id order, and the tie sort is stable)."""
    return apportion(total, weights, eligible.__getitem__, weight_sum, tie_descending=True)


def _distribute(eligible: list[int], funded: int, loss: int, tranches: Sequence[int]) -> list[int]:
    """Step 5: pour F through the tranche buckets; LR in the first bucket it cannot cover.

    Bucket j of a claim E is min(E, t_j) - min(E, t_(j-1)), so paying buckets 1..j in full
    costs S(t_j) = sum of min(E, t_j), which only grows with j. A binary search over the
    tranches finds the first j with S(t_j) > F in O(n log m); only that bucket is materialised.
    """
    if funded == loss:
        return list(eligible)
    costs = {}

    def cost(j: int) -> int:  # S(t_j), with t_0 = 0 and t_(m+1) = infinity
        if j not in costs:
            t = tranches[j - 1] if 0 < j <= len(tranches) else None
            costs[j] = 0 if j == 0 else loss if t is None else sum([e if e < t else t for e in eligible])
        return costs[j]

    low, high = 1, len(tranches) + 1  # the top bucket always exceeds F, since F < L
    while low < high:
        mid = (low + high) // 2
        if cost(mid) > funded:
            high = mid
        else:
            low = mid + 1
    j = low
    lower = tranches[j - 2] if j >= 2 else 0
    upper = tranches[j - 1] if j <= len(tranches) else None
    money = funded - cost(j - 1)
    if upper is None:
        bucket = [e - lower if e > lower else 0 for e in eligible]
    else:
        bucket = [((e if e < upper else upper) - lower) if e > lower else 0 for e in eligible]
    shares = _lr(money, bucket, eligible, cost(j) - cost(j - 1))
    return [(e if e < lower else lower) + x for e, x in zip(eligible, shares)]


def _split_by_source(payout: list[int], used: list[int], funded: int, eligible: list[int]) -> list[list[int]]:
    """Step 6: x = LR(used, r); r -= x for each source in draw order. Every r ends at 0."""
    remaining, left = payout, funded
    zeros = [0] * len(payout)
    splits = []
    for amount in used:
        if amount == 0:
            part = zeros
        elif amount == left:  # the last paying source takes exactly what is left
            part, remaining = remaining, zeros
        else:
            part = _lr(amount, remaining, eligible, left)
            remaining = list(map(sub, remaining, part))
        left -= amount
        splits.append(part)
    return splits


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def result_to_json(result: AllocationResult) -> dict[str, Any]:
    """The contract's output shape: sources in draw order, customers sorted by id, plus
    not_covered_jpy (V - E) and unpaid_jpy (E - P) per customer."""
    source_ids = result.source_ids
    sources = []
    for s in result.sources:
        entry: dict[str, Any] = {"id": s.id, "available_jpy": s.available_jpy, "used_jpy": s.used_jpy}
        if not s.is_reserve:
            entry["aggregate_remaining_after_jpy"] = s.aggregate_remaining_after_jpy
        sources.append(entry)
    c = result.customers
    # Straight from the columns when we can: no CustomerResult built just to be taken apart.
    rows = zip(c.ids, c.approved_jpy, c.eligible_jpy, c.payout_jpy, zip(*c.by_source)) if (
        isinstance(c, CustomerResults)) else c
    with _gc_paused():  # two dicts per customer, none in a cycle: don't let the GC rescan them
        customers = [
            {
                "id": cid,
                "approved_jpy": v,
                "eligible_jpy": e,
                "payout_jpy": p,
                "by_source": dict(zip(source_ids, split)),
                "not_covered_jpy": v - e,
                "unpaid_jpy": e - p,
            }
            for cid, v, e, p, split in rows
        ]
    return {
        "total_eligible_jpy": result.total_eligible_jpy,
        "total_funded_jpy": result.total_funded_jpy,
        "shortfall_jpy": result.shortfall_jpy,
        "sources": sources,
        "customers": customers,
    }


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a million acyclic containers: each
    collection would walk every object built so far (reference counting still frees memory)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------


def check_invariants(inp: AllocationInput, result: AllocationResult) -> None:
    """Raise InvariantViolation if ``result`` breaks an invariant of the contract for ``inp``.

    Whole-column passes in C plus one sort by E (for "larger E never gets a smaller P"): about
    as fast as the run itself, so it can run after every production run, before paying.
    """
    customers = result.customers
    if not isinstance(customers, CustomerResults):
        customers = CustomerResults.from_rows(customers, len(result.sources))
    _check_sources(inp, result)
    _check_customers(inp, result, customers)
    loss, funded = result.total_eligible_jpy, result.total_funded_jpy
    total_used = sum(s.used_jpy for s in result.sources)
    total_paid = sum(customers.payout_jpy)
    capacity = inp.reserve_jpy + sum(s.available_jpy for s in result.sources[1:])
    _require(sum(customers.eligible_jpy) == loss, f"sum of E is not L = {loss}")
    _require(total_used == total_paid == funded, f"sum used {total_used}, sum P {total_paid}, F {funded}")
    _require(funded == min(loss, capacity), f"F {funded} is not min(L {loss}, R + available {capacity})")
    _require(result.shortfall_jpy == loss - funded, f"shortfall {result.shortfall_jpy} is not L - F")
    if funded == loss:
        _require(customers.payout_jpy == customers.eligible_jpy, "F = L but some P differs from E")
    _check_monotone(customers.eligible_jpy, customers.payout_jpy)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


def _all_ints_at_least_zero(column: Sequence[Any]) -> bool:
    return set(map(type, column)) <= {int} and (not column or min(column) >= 0)


def _check_sources(inp: AllocationInput, result: AllocationResult) -> None:
    """Draw order, availability per the contract, 0 <= used <= available, aggregates after."""
    sources = result.sources
    layers = tower_order(inp.layers)
    _require(len(sources) == len(layers) + 1, "expected the reserve plus one source per layer")
    reserve = sources[0]
    _require(reserve.id == RESERVE_ID and reserve.available_jpy == inp.reserve_jpy,
             "the reserve must come first, with available = R")
    _require(reserve.aggregate_remaining_after_jpy is None, "the reserve has no aggregate")
    for s, layer in zip(sources[1:], layers):
        _require(s.id == layer.id, f"source {s.id!r} out of tower order (expected {layer.id!r})")
        expected = layer_available(layer, result.total_eligible_jpy, inp.incident_type)
        _require(s.available_jpy == expected, f"{s.id!r} available {s.available_jpy}, expected {expected}")
        aggregate = layer.aggregate_remaining_jpy
        after = None if aggregate is None else aggregate - s.used_jpy
        _require(s.aggregate_remaining_after_jpy == after, f"{s.id!r} aggregate after should be {after}")
    for s in sources:
        _require(type(s.used_jpy) is int and type(s.available_jpy) is int and 0 <= s.used_jpy <= s.available_jpy,
                 f"{s.id!r} used {s.used_jpy!r} is outside 0..available {s.available_jpy}")


def _check_customers(inp: AllocationInput, result: AllocationResult, customers: CustomerResults) -> None:
    """Same customers as the input, sorted by id; ints >= 0; 0 <= P <= E <= V; E from V and the
    terms; each customer's split sums to P and each source's split sums to its used."""
    ids = customers.ids
    _require(len(ids) == len(inp.customers), "customer count differs from the input")
    _require(all(map(lt, ids, islice(ids, 1, None))), "customers are not strictly sorted by id")
    # Distinct (strictly sorted), as many as the input and all from it: the same customers.
    input_ids = set(map(attrgetter("id"), inp.customers))
    _require(all(map(input_ids.__contains__, ids)), "customer ids differ from the input")
    approved, eligible, payout = customers.approved_jpy, customers.eligible_jpy, customers.payout_jpy
    for name, column in (("V", approved), ("E", eligible), ("P", payout)):
        _require(_all_ints_at_least_zero(column), f"every {name} must be an int >= 0")
    _require(all(map(le, payout, eligible)), "some P exceeds its E")
    _require(all(map(le, eligible, approved)), "some E exceeds its V")
    d, cap = inp.terms.deductible_jpy, inp.terms.cap_jpy
    uncapped = [v - d if v > d else 0 for v in approved]  # max(V - D, 0)
    expected = uncapped if cap is None else [e if e < cap else cap for e in uncapped]
    _require(list(eligible) == expected, "some E is not min(max(V - D, 0), C)")
    columns = customers.by_source
    _require(len(columns) == len(result.sources), "one split column per source expected")
    per_customer = [0] * len(ids)
    for s, column in zip(result.sources, columns):
        _require(_all_ints_at_least_zero(column), f"split for {s.id!r} has a non-int or negative amount")
        _require(sum(column) == s.used_jpy, f"split for {s.id!r} does not sum to its used {s.used_jpy}")
        per_customer = list(map(add, per_customer, column))
    _require(per_customer == list(payout), "some customer's split does not sum to P")


def _check_monotone(eligible: Sequence[int], payout: Sequence[int]) -> None:
    """Larger E never gets a smaller P; equal E differ by at most 1 yen.

    Sort the (E, P) pairs, packed as single ints E << b | P (an int sort is several times
    faster than a tuple sort). Along them P must never decrease (the first rule); within a claim
    size it may then rise by 1 yen at most once. Whole-list passes in C, no Python loop.
    """
    if not payout:
        return
    bits = max(payout).bit_length()
    pairs = sorted(map(or_, map(lshift, eligible, repeat(bits)), payout))
    claims = list(map(rshift, pairs, repeat(bits)))
    paid = list(map(and_, pairs, repeat((1 << bits) - 1)))
    _require(all(map(le, paid, islice(paid, 1, None))), "a larger claim E is paid less than a smaller claim")
    same_claim = list(map(eq, claims, islice(claims, 1, None)))
    rises = list(map(sub, islice(paid, 1, None), paid))  # >= 0 now
    _require(max(compress(rises, same_claim), default=0) <= 1, "equal claims are paid more than 1 yen apart")
    rise_claims = list(map(claims.__getitem__, compress(range(len(rises)), map(and_, same_claim, rises))))
    _require(not any(map(eq, rise_claims, islice(rise_claims, 1, None))),
             "equal claims are paid more than 1 yen apart")


# --------------------------------------------------------------------------------------------
# Later money
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaterDistribution:
    """How a later recovery is shared: ``amounts`` has every customer id given (0 allowed);
    ``surplus_jpy`` is what exceeds the total unpaid balance and stays undistributed."""

    amounts: dict[str, int]
    distributed_jpy: int
    surplus_jpy: int


def distribute_later_money(
    amount_jpy: int, unpaid: Iterable[tuple[str, int, int]]
) -> LaterDistribution:
    """Share a recovery that arrives after a run with LR over unpaid balances.

    ``unpaid`` holds ``(customer_id, eligible_jpy, unpaid_jpy)`` with unpaid_jpy = E minus
    everything already paid (run payout plus earlier recoveries). Nobody gets more than their
    unpaid balance, nothing is clawed back, and the split is LR(min(amount, total unpaid),
    unpaid balances) with the contract's tie-break (fraction, then E descending, then id) --
    never a re-run with a larger F, which could lower someone's payout.
    Raises ValidationError naming ``amount_jpy`` or ``unpaid[i].<field>`` on bad input.
    """
    if type(amount_jpy) is not int or amount_jpy < 0:
        raise ValidationError("amount_jpy", f"must be an integer >= 0, got {amount_jpy!r}")
    rows = list(unpaid)
    ids, balances, keys = [], [], []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        try:
            cid, eligible, balance = row  # tuples, lists or database rows
        except (TypeError, ValueError):
            raise ValidationError(f"unpaid[{i}]", "must be (customer_id, eligible_jpy, unpaid_jpy)") from None
        if not isinstance(cid, str) or not cid:
            raise ValidationError(f"unpaid[{i}].customer_id", "must be a non-empty string")
        if cid in seen:
            raise ValidationError(f"unpaid[{i}].customer_id", f"duplicate id {cid!r}")
        seen.add(cid)
        for name, value in (("eligible_jpy", eligible), ("unpaid_jpy", balance)):
            if type(value) is not int or value < 0:
                raise ValidationError(f"unpaid[{i}].{name}", f"must be an integer >= 0, got {value!r}")
        if balance > eligible:
            raise ValidationError(f"unpaid[{i}].unpaid_jpy", f"{balance} exceeds eligible {eligible}")
        ids.append(cid)
        balances.append(balance)
        keys.append((-eligible, cid))
    total_unpaid = sum(balances)
    distributed = min(amount_jpy, total_unpaid)
    shares = largest_remainder(distributed, balances, keys)
    return LaterDistribution(dict(zip(ids, shares)), distributed, amount_jpy - distributed)
