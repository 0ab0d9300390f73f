"""Allocation runs: build the engine's input from the records, preview, commit, later money.

The engine (payouts.domain.allocation) decides every yen; this module only gathers its input
(approved losses, prices, terms, the reserve's available balance, the tower in force when the
incident occurred), stores the result immutably, earmarks the reserve and records what each
insurer owes, all in one transaction with its audit event.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select, text, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payouts.audit.chain import canonical_json
from payouts.audit.log import record_event
from payouts.db.bulk import bulk_insert
from payouts.db.models import (
    AllocationLine,
    AllocationRun,
    AllocationSource,
    Asset,
    Claim,
    ClaimPosition,
    Customer,
    Incident,
    InsuranceReceivable,
    LossPosition,
    Recovery,
    ReferencePrice,
    ReserveEntry,
)
from payouts.db.session import transaction
from payouts.domain.allocation import (
    RESERVE_ID,
    AllocationInput,
    AllocationResult,
    AssetSpec,
    CustomerInput,
    CustomerTerms,
    LayerInput,
    Position,
    allocate,
    check_invariants,
    distribute_later_money,
    validate_input,
)
from payouts.domain.claims import PAYABLE
from payouts.domain.allocation_digest import input_digest, later_money_digest
from payouts.domain.errors import ConflictError, NotFoundError, ValidationError
from payouts.domain.money import canonical_decimal, check_yen, format_amount
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.domain.incidents import IncidentStatus, business_date
from payouts.domain.tranches import tranche_buckets
from payouts.domain.valuation import value_positions
from payouts.services import disbursements, funding
from payouts.services.disbursements import Dispatch
from payouts.services.access import require_role
from payouts.services.incidents import ensure_not_allocated, find_incident, hold_claims_still
from payouts.services.claims import claim_lines

RECOVERY_SOURCE = "recovery"


@dataclass
class Preview:
    """A computed allocation that has not been stored."""

    incident: Incident
    inputs: AllocationInput
    result: AllocationResult
    digest: str
    layer_ids: dict[str, int] = field(default_factory=dict)

    def ratio_histogram(self) -> list[tuple[str, int]]:
        return payout_ratio_histogram((c.eligible_jpy, c.payout_jpy) for c in self.result.customers)


def payout_ratio_histogram(pairs) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Customers by payout as a share of their eligible claim, in tenths (integers only)."""
    counts: Counter[int] = Counter()
    for eligible, payout in pairs:
        if eligible > 0:
            counts[10 if payout == eligible else (payout * 10) // eligible] += 1
    labels = [f"{10 * i}–{10 * i + 9}%" for i in range(10)] + ["100%"]
    return [(labels[i], counts.get(i, 0)) for i in range(11)]


# --- input ----------------------------------------------------------------------------------


def build_input(
    session: Session, actor: Actor, incident: Incident
) -> tuple[AllocationInput, dict[str, int], dict[str, int]]:
    """The engine's input from the records, and the row ids behind its layer codes and its
    customer references (a commit stores results against them without asking again)."""
    prices = {p.asset_code: p.price_jpy for p in session.scalars(
        select(ReferencePrice).where(ReferencePrice.incident_id == incident.id))}
    decimals = dict(session.execute(select(Asset.code, Asset.decimals)).all())
    customers: list[CustomerInput] = []
    customer_ids: dict[str, int] = {}
    current_ref: str | None = None
    current: list[Position] = []
    used_assets: set[str] = set()
    # The approved claims, at the version that was approved: the ledger's positions for an
    # unadjusted claim, the adjustment's for the others. Paid claims stay in (a later-money
    # run spreads over what they were not paid).
    if session.get_bind().dialect.name == "postgresql":
        # The rows are streamed through a server-side cursor, for which PostgreSQL by default
        # plans for the first 10% (index-ordered nested loops): we want all of them, fast.
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    payable = (Claim.incident_id == incident.id) & Claim.status.in_([s.value for s in PAYABLE])
    ledger = (
        select(Claim.customer_id, LossPosition.asset_code, LossPosition.amount_minor)
        .join(LossPosition, (LossPosition.incident_id == Claim.incident_id)
              & (LossPosition.customer_id == Claim.customer_id))
        .where(payable, Claim.version == 1)
    )
    adjusted = (
        select(Claim.customer_id, ClaimPosition.asset_code, ClaimPosition.amount_minor)
        .join(ClaimPosition, (ClaimPosition.claim_id == Claim.id) & (ClaimPosition.version == Claim.version))
        .where(payable, Claim.version > 1)
    )
    approved = union_all(ledger, adjusted).subquery()
    rows = session.execute(
        select(Customer.external_ref, approved.c.customer_id, approved.c.asset_code, approved.c.amount_minor)
        .join(Customer, Customer.id == approved.c.customer_id)
        .order_by(approved.c.customer_id, approved.c.asset_code)  # each customer's rows together
        .execution_options(yield_per=50_000)
    )
    for ref, customer_id, asset, amount in rows:
        if ref != current_ref:
            if current_ref is not None:
                customers.append(CustomerInput(current_ref, tuple(current)))
            current_ref, current = ref, []
            customer_ids[ref] = customer_id
        current.append(Position(asset, amount))
        used_assets.add(asset)
    if current_ref is not None:
        customers.append(CustomerInput(current_ref, tuple(current)))
    if not customers:
        raise ValidationError("customers", f"incident {incident.ref} has no approved claims")
    missing = sorted(used_assets - prices.keys())
    if missing:
        raise ValidationError("prices", f"no reference price fixed for {', '.join(missing)}")
    assets = {code: AssetSpec(code, decimals[code], prices[code]) for code in sorted(used_assets)}

    terms_row = funding.get_terms(session, incident.id)
    terms = CustomerTerms(terms_row.deductible_jpy if terms_row else 0, terms_row.cap_jpy if terms_row else None)
    tranches = funding.parse_tranches(terms_row.tranches_jpy) if terms_row else ()

    layers, layer_ids = [], {}
    for status in funding.tower(session, actor, business_date(incident.occurred_at)):
        layer = status.layer
        layers.append(LayerInput(
            layer.code, layer.attachment_jpy, layer.limit_jpy, layer.share,
            status.aggregate_remaining_jpy,
            frozenset(t for t in layer.excluded_incident_types.split(",") if t)))
        layer_ids[layer.code] = layer.id
    inp = AllocationInput(incident.incident_type, assets, tuple(customers), terms, tranches,
                          funding.reserve_balance(session).available, tuple(layers))
    validate_input(inp)
    return inp, layer_ids, customer_ids


def preview(session: Session, actor: Actor, incident_ref: str) -> Preview:
    """Compute the allocation the records give now, without storing anything."""
    require_role(actor, BACK_OFFICE_READERS, "preview allocations")
    incident = find_incident(session, incident_ref)
    inp, layer_ids, _customer_ids = build_input(session, actor, incident)
    result = allocate(inp)
    check_invariants(inp, result)
    session.rollback()  # a preview holds no locks and writes nothing
    return Preview(incident, inp, result, input_digest(inp), layer_ids)


# --- commit ---------------------------------------------------------------------------------


def commit_allocation(
    session: Session, actor: Actor, incident_ref: str, expected_digest: str | None = None, *,
    dispatch: Dispatch | None = None, batch_size: int = 1000,
) -> AllocationRun:
    """Store the incident's allocation run, earmark the reserve, record insurers' receivables,
    and instruct the reserve's part of every payout, all in one transaction; the payment
    batches are enqueued through ``dispatch`` after it commits (the sweeper covers a miss).

    ``expected_digest`` (from a preview) makes the commit refuse if any input changed since.
    Only one initial run per incident: a second, or a concurrent one, gets ConflictError.
    """
    require_role(actor, STAFF_WRITERS, "commit allocations")
    try:
        with transaction(session):
            incident = find_incident(session, incident_ref, lock=True)
            existing = session.scalar(select(AllocationRun.id).where(
                AllocationRun.incident_id == incident.id, AllocationRun.sequence == 1))
            if existing is not None:
                raise ConflictError(f"incident {incident.ref} already has a committed allocation (run #{existing})")
            hold_claims_still(session, incident.id)
            funding.lock_reserve(session)
            inp, layer_ids, customer_ids = build_input(session, actor, incident)
            digest = input_digest(inp)
            if expected_digest is not None and digest != expected_digest:
                raise ConflictError("the inputs changed since the preview (losses, prices, terms, reserve"
                                    " or tower); preview again before committing")
            result = allocate(inp)
            check_invariants(inp, result)
            run = _store_run(session, actor, incident, "initial", 1, digest, _summary(inp, result), result,
                             layer_ids, customer_ids)
            reserve_used = next(s.used_jpy for s in result.sources if s.id == RESERVE_ID)
            if reserve_used:
                session.add(ReserveEntry(kind="earmark", amount_jpy=reserve_used, incident_id=incident.id,
                                         allocation_run_id=run.id, created_by_label=actor.label,
                                         memo=f"Allocation run #{run.id} of {incident.ref}"))
            for source in result.sources:
                if source.id != RESERVE_ID and source.used_jpy:
                    session.add(InsuranceReceivable(run_id=run.id, layer_id=layer_ids[source.id],
                                                    amount_jpy=source.used_jpy, received_jpy=0))
            incident.status = IncidentStatus.PAYING.value
            batches = disbursements.create_instructions(session, actor, run, [RESERVE_ID], batch_size)
            record_event(
                session, actor, "allocation.committed", "incident", incident.ref,
                f"Allocation run #{run.id} of {incident.ref}: eligible ¥{result.total_eligible_jpy:,},"
                f" funded ¥{result.total_funded_jpy:,}, shortfall ¥{result.shortfall_jpy:,}",
                {"run_id": run.id, "inputs_sha256": digest, "customers": len(result.customers),
                 "sources": {s.id: s.used_jpy for s in result.sources}},
            )
    except IntegrityError as exc:
        # Only the unique (incident, sequence) means a lost race; any other violation is a bug.
        if not _is_sequence_clash(exc):
            raise
        raise ConflictError(f"another allocation of {incident_ref} was committed at the same time") from exc
    disbursements.dispatch_batches(session, dispatch, batches)
    return run


def _store_run(session, actor, incident, kind, sequence, digest, summary, result, layer_ids,  # type: ignore[no-untyped-def]
               customer_ids, recovery_id=None, only_paid=False):
    """Store a run with its sources and lines (a later-money run keeps only customers it pays)."""
    stored = [c for c in result.customers if not only_paid or c.payout_jpy]
    run = AllocationRun(
        incident_id=incident.id, kind=kind, sequence=sequence, inputs_sha256=digest,
        inputs_summary=canonical_json(summary), customers=len(stored),
        total_eligible_jpy=result.total_eligible_jpy, total_funded_jpy=result.total_funded_jpy,
        shortfall_jpy=result.shortfall_jpy, recovery_id=recovery_id, created_by_label=actor.label,
    )
    session.add(run)
    session.flush()
    for order, source in enumerate(result.sources):
        session.add(AllocationSource(
            run_id=run.id, draw_order=order, source_id=source.id, layer_id=layer_ids.get(source.id),
            available_jpy=source.available_jpy, used_jpy=source.used_jpy,
            aggregate_remaining_after_jpy=source.aggregate_remaining_after_jpy))
    session.flush()
    bulk_insert(
        session, AllocationLine.__tablename__,
        ("run_id", "customer_id", "approved_jpy", "eligible_jpy", "payout_jpy", "by_source"),
        ((run.id, customer_ids[c.id], c.approved_jpy, c.eligible_jpy, c.payout_jpy,
          "[" + ",".join(map(str, c.by_source)) + "]")
         for c in stored),
    )
    return run


def _summary(inp: AllocationInput, result: AllocationResult) -> dict[str, object]:
    return {
        "incident_type": inp.incident_type,
        "prices": {a.code: canonical_decimal(Decimal(a.ref_price)) for a in inp.assets.values()},
        "terms": {"deductible_jpy": inp.terms.deductible_jpy, "cap_jpy": inp.terms.cap_jpy,
                  "tranches_jpy": list(inp.tranches_jpy)},
        "reserve_available_jpy": inp.reserve_jpy,
        "layers": [{"id": l.id, "attachment_jpy": l.attachment_jpy, "limit_jpy": l.limit_jpy,
                    "share": canonical_decimal(Decimal(l.share)),
                    "aggregate_remaining_jpy": l.aggregate_remaining_jpy,
                    "excluded_incident_types": sorted(l.excluded_incident_types)} for l in inp.layers],
        "customers": len(inp.customers),
    }


# --- later money ----------------------------------------------------------------------------


def record_recovery(
    session: Session, actor: Actor, *, incident_ref: str, amount_jpy: int, source: str,
    dispatch: Dispatch | None = None, batch_size: int = 1000,
) -> AllocationRun:
    """Record money that arrived after the run and share it over unpaid balances at once; the
    money is in hand, so its payments are instructed in the same transaction."""
    require_role(actor, STAFF_WRITERS, "record recoveries")
    check_yen(amount_jpy, "amount_jpy", positive=True)
    source = (source or "").strip()
    if not source or len(source) > 300:
        raise ValidationError("source", "is required (at most 300 characters): say where the money came from")
    try:
        with transaction(session):
            incident = find_incident(session, incident_ref, lock=True)
            sequence = session.scalar(select(func.max(AllocationRun.sequence)).where(
                AllocationRun.incident_id == incident.id))
            if not sequence:
                raise ConflictError(f"incident {incident.ref} has no committed allocation yet:"
                                    " commit the initial run first")
            balances = session.execute(
                select(Customer.external_ref, Customer.id, func.max(AllocationLine.approved_jpy),
                       func.max(AllocationLine.eligible_jpy), func.sum(AllocationLine.payout_jpy))
                .join(AllocationRun, AllocationRun.id == AllocationLine.run_id)
                .join(Customer, Customer.id == AllocationLine.customer_id)
                .where(AllocationRun.incident_id == incident.id)
                .group_by(Customer.external_ref, Customer.id)
            ).all()
            customer_ids = {ref: customer_id for ref, customer_id, _v, _e, _p in balances}
            approved = {ref: int(v) for ref, _id, v, _e, _p in balances}
            unpaid = [(ref, int(e), int(e) - int(p)) for ref, _id, _v, e, p in balances]
            shared = distribute_later_money(amount_jpy, unpaid)
            recovery = Recovery(incident_id=incident.id, amount_jpy=amount_jpy, source=source,
                                created_by_label=actor.label)
            session.add(recovery)
            session.flush()
            result = _later_result(unpaid, approved, shared, amount_jpy)
            summary = {"recovery_id": recovery.id, "amount_jpy": amount_jpy, "source": source,
                       "distributed_jpy": shared.distributed_jpy, "surplus_jpy": shared.surplus_jpy}
            run = _store_run(session, actor, incident, "later_money", sequence + 1,
                             later_money_digest(unpaid, amount_jpy), summary, result, {}, customer_ids,
                             recovery_id=recovery.id, only_paid=True)
            batches = disbursements.create_instructions(session, actor, run, [RECOVERY_SOURCE], batch_size)
            record_event(
                session, actor, "recovery.distributed", "incident", incident.ref,
                f"¥{amount_jpy:,} from {source} shared over unpaid balances of {incident.ref}"
                f" (run #{run.id}; surplus ¥{shared.surplus_jpy:,})", {"run_id": run.id, **summary})
    except IntegrityError as exc:
        if not _is_sequence_clash(exc):
            raise
        raise ConflictError(f"another distribution for {incident_ref} was recorded at the same time") from exc
    disbursements.dispatch_batches(session, dispatch, batches)
    return run


def _is_sequence_clash(exc: IntegrityError) -> bool:
    text_ = str(exc.orig)
    return "uq_allocation_runs_incident_id_sequence" in text_ or (
        "allocation_runs.incident_id, allocation_runs.sequence" in text_)


@dataclass(frozen=True)
class _LaterCustomer:
    id: str
    approved_jpy: int
    eligible_jpy: int
    payout_jpy: int
    by_source: tuple[int, ...]  # aligned with the run's sources, like the engine's results


@dataclass(frozen=True)
class _LaterSource:
    id: str
    available_jpy: int
    used_jpy: int
    aggregate_remaining_after_jpy: None = None


@dataclass(frozen=True)
class _LaterResult:
    total_eligible_jpy: int
    total_funded_jpy: int
    shortfall_jpy: int
    sources: list[_LaterSource]
    customers: list[_LaterCustomer]


def _later_result(unpaid, approved, shared, amount):  # type: ignore[no-untyped-def]
    """A later-money run in the same shape as an engine result, for storage."""
    total_unpaid = sum(balance for _r, _e, balance in unpaid)
    customers = [
        _LaterCustomer(ref, approved[ref], eligible, shared.amounts[ref], (shared.amounts[ref],))
        for ref, eligible, _balance in unpaid
    ]
    return _LaterResult(total_unpaid, shared.distributed_jpy, total_unpaid - shared.distributed_jpy,
                        [_LaterSource(RECOVERY_SOURCE, amount, shared.distributed_jpy)], customers)


# --- reading --------------------------------------------------------------------------------


def runs(session: Session, actor: Actor, incident: Incident) -> list[AllocationRun]:
    require_role(actor, BACK_OFFICE_READERS, "read allocation runs")
    return list(session.scalars(select(AllocationRun).where(AllocationRun.incident_id == incident.id)
                                .order_by(AllocationRun.sequence)))


def get_run(session: Session, actor: Actor, incident: Incident, run_id: int) -> AllocationRun:
    require_role(actor, BACK_OFFICE_READERS, "read allocation runs")
    run = session.scalar(select(AllocationRun).where(AllocationRun.id == run_id,
                                                     AllocationRun.incident_id == incident.id))
    if run is None:
        raise NotFoundError(f"no allocation run {run_id} for {incident.ref}")
    return run


def run_lines(session: Session, actor: Actor, run: AllocationRun, query: str, page: int,
              page_size: int) -> tuple[list[tuple[str, AllocationLine]], bool]:
    """One page of a run's lines (customer reference, line), optionally filtered; and whether
    another page follows."""
    require_role(actor, BACK_OFFICE_READERS, "read allocation runs")
    rows = select(Customer.external_ref, AllocationLine).join(Customer, Customer.id == AllocationLine.customer_id) \
        .where(AllocationLine.run_id == run.id)
    if query:
        rows = rows.where(Customer.external_ref.contains(query, autoescape=True))
    page = min(max(page, 1), 10**6)  # an absurd page number must not overflow OFFSET
    found = session.execute(rows.order_by(Customer.external_ref).offset((page - 1) * page_size)
                            .limit(page_size + 1)).all()
    return [(ref, line) for ref, line in found[:page_size]], len(found) > page_size


def run_histogram(session: Session, run: AllocationRun) -> list[tuple[str, int]]:
    rows = session.execute(select(AllocationLine.eligible_jpy, AllocationLine.payout_jpy)
                           .where(AllocationLine.run_id == run.id).execution_options(yield_per=50_000))
    return payout_ratio_histogram(rows)


@dataclass(frozen=True)
class LineExplanation:
    """One customer's line, with every step of the calculation (of a stored run or a preview)."""

    customer: Customer
    run: AllocationRun | None  # None: the line of a preview
    approved_jpy: int
    eligible_jpy: int
    payout_jpy: int
    by_source: list[tuple[str, int]]
    positions: list[tuple[str, str, str, str]]  # asset, amount, price, exact yen value
    deductible_jpy: int
    cap_jpy: int | None
    tranches: list[tuple[int, int | None, int]]  # low, high (None: no top), part of E
    #: E minus everything allocated to the customer up to and including this run.
    still_owed_jpy: int


def explain_line(session: Session, actor: Actor, incident: Incident, run_id: int,
                 customer_ref: str) -> LineExplanation:
    """A stored run's line for one customer, with the terms the run was computed with."""
    run = get_run(session, actor, incident, run_id)
    customer = _customer(session, customer_ref)
    line = session.get(AllocationLine, (run.id, customer.id))
    if line is None:
        raise NotFoundError(f"customer {customer_ref!r} has no line in run #{run.id}")
    # Terms are those of the initial run: a later-money run has none of its own.
    initial = run if run.sequence == 1 else session.scalar(select(AllocationRun).where(
        AllocationRun.incident_id == incident.id, AllocationRun.sequence == 1))
    terms = json.loads(initial.inputs_summary)["terms"]
    paid_so_far = session.scalar(
        select(func.sum(AllocationLine.payout_jpy)).join(AllocationRun, AllocationRun.id == AllocationLine.run_id)
        .where(AllocationRun.incident_id == incident.id, AllocationRun.sequence <= run.sequence,
               AllocationLine.customer_id == customer.id)) or 0
    by_source = list(zip([s.source_id for s in run.sources], json.loads(line.by_source)))
    return _explain(session, incident, customer, run, line.approved_jpy, line.eligible_jpy, line.payout_jpy,
                    by_source, terms["deductible_jpy"], terms["cap_jpy"], terms["tranches_jpy"],
                    still_owed=line.eligible_jpy - int(paid_so_far))


def explain_preview_line(session: Session, actor: Actor, incident_ref: str, customer_ref: str) -> LineExplanation:
    """The line one customer would get if the allocation were committed now."""
    ensure_not_allocated(session, find_incident(session, incident_ref), "preview")
    computed = preview(session, actor, incident_ref)
    customer = _customer(session, customer_ref)
    ids = computed.result.customers.ids
    index = _index_of(ids, customer_ref)
    if index is None:
        raise NotFoundError(f"customer {customer_ref!r} has no losses in {incident_ref}")
    c = computed.result.customers[index]
    terms = computed.inputs.terms
    by_source = [(s.id, part) for s, part in zip(computed.result.sources, c.by_source)]
    return _explain(session, computed.incident, customer, None, c.approved_jpy, c.eligible_jpy, c.payout_jpy,
                    by_source, terms.deductible_jpy, terms.cap_jpy, list(computed.inputs.tranches_jpy),
                    still_owed=c.eligible_jpy - c.payout_jpy)


def _index_of(sorted_ids: Sequence[str], wanted: str) -> int | None:
    index = bisect_left(sorted_ids, wanted)  # results are sorted by id
    return index if index < len(sorted_ids) and sorted_ids[index] == wanted else None


def _customer(session: Session, customer_ref: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.external_ref == customer_ref))
    if customer is None:
        raise NotFoundError(f"no customer {customer_ref!r}")
    return customer


def _explain(session, incident, customer, run, approved, eligible, payout, by_source,  # type: ignore[no-untyped-def]
             deductible, cap, tranches, still_owed) -> LineExplanation:
    # The approved claim's positions (the ledger's or an adjustment's), valued as the run did.
    claim = session.scalar(select(Claim).where(Claim.incident_id == incident.id, Claim.customer_id == customer.id))
    if claim is None:
        raise NotFoundError(f"customer {customer.external_ref!r} has no claim in {incident.ref}")
    positions = [(line.asset, line.amount, canonical_decimal(line.price_jpy), line.value_exact)
                 for line in claim_lines(session, claim)]
    return LineExplanation(customer, run, approved, eligible, payout, by_source, positions, deductible, cap,
                           tranche_buckets(eligible, tranches), still_owed)


__all__ = ["RESERVE_ID", "Preview", "build_input", "preview", "commit_allocation", "record_recovery",
           "runs", "get_run", "explain_line", "explain_preview_line", "run_histogram", "payout_ratio_histogram"]
