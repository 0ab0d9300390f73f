"""Disbursements: payment instructions from committed runs, paid through a rail by jobs.

Instructions are created in the transaction that commits a run (or records an insurer's
payment, or shares later money), one per customer, source and destination, each with its own
idempotency key. Work is enqueued only after commit, and a sweeper re-enqueues whatever the
database says is due, so a lost job or a flushed Redis delays a payment but never loses it.

A job pays one batch in three steps: mark its payments "submitting" and commit; call the rail
outside any transaction; record the results. A worker killed between the first and the last
step leaves payments "submitting"; the next attempt sends them again with the same key, and
the bank (the rail) answers with the payment it already made instead of making another.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import ARRAY, BigInteger, Boolean, and_, any_, bindparam, func, literal, or_, select, text, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_event, record_events
from payouts.db.bulk import bulk_insert, raw_timestamp
from payouts.db.models import (
    AllocationLine,
    AllocationRun,
    AllocationSource,
    Claim,
    Customer,
    Disbursement,
    DisbursementBatch,
    Incident,
    InsuranceLayer,
    InsuranceReceivable,
    Notice,
    PayoutDestination,
    ReserveEntry,
)
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.bank_accounts import BankAccount
from payouts.domain.claims import ClaimStatus
from payouts.domain.disbursements import (
    OPEN_STATUSES,
    OUTCOME_UNKNOWN,
    PERMANENT_REASONS,
    WORKABLE_STATUSES,
    DisbursementStatus,
    after_failure,
    check_transition,
    payment_key,
    retry_delay_seconds,
)
from payouts.domain.errors import ConflictError, NotFoundError, TransitionError, ValidationError
from payouts.domain.money import check_yen
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.rails.base import Outcome, PaymentOrder, Rail, RailResult, RailTimeout
from payouts.services.access import require_role
from payouts.services.incidents import find_incident

Dispatch = Callable[..., None]
PAY_BATCH_JOB = "payouts.jobs.disbursements.pay_batch"
RESERVE = "reserve"
RECOVERY = "recovery"
S = DisbursementStatus
#: Statuses whose money has not reached the customer and is not being worked on by staff.
IN_FLIGHT = tuple(s.value for s in OPEN_STATUSES - {S.NEEDS_ATTENTION})
WORKABLE = tuple(s.value for s in WORKABLE_STATUSES)


def _among(session: Session, column, values: list[int]):  # type: ignore[no-untyped-def]
    """``column IN values`` for a batch's thousand ids: on PostgreSQL one array parameter
    (``= ANY``), so that neither SQLAlchemy nor psycopg handles a thousand placeholders a call."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(BigInteger)))
    return column.in_(values)


# --- creating instructions -------------------------------------------------------------------

_INSTRUCT_PAGE = 50_000  # allocation lines read, then written, per round of create_instructions


def create_instructions(session: Session, actor: Actor, run: AllocationRun, source_ids: Iterable[str],
                        batch_size: int) -> list[int]:
    """Instructions for the parts of ``run`` paid by ``source_ids``, inside the caller's
    transaction; customers without an approved destination are held. Returns new batch ids,
    to be dispatched once the caller has committed."""
    sources = {s.source_id: s.draw_order for s in session.scalars(
        select(AllocationSource).where(AllocationSource.run_id == run.id))}
    wanted = [(source, sources[source]) for source in source_ids if source in sources]
    if not wanted:
        return []
    destinations = dict(session.execute(
        select(PayoutDestination.customer_id, PayoutDestination.id)
        .join(AllocationLine, (AllocationLine.customer_id == PayoutDestination.customer_id)
              & (AllocationLine.run_id == run.id))
        .where(PayoutDestination.status == "approved")).all())
    now = utcnow()
    stamp = raw_timestamp(session, now)
    counts = {"pending": 0, "held": 0, "amount": 0}

    def rows(lines: list[tuple[int, str]]) -> Iterator[tuple[object, ...]]:
        for customer_id, by_source in lines:
            parts = json.loads(by_source)
            destination = destinations.get(customer_id)
            status = S.PENDING.value if destination else S.HELD.value
            for source, index in wanted:
                amount = int(parts[index])
                if amount <= 0:
                    continue
                counts["pending" if destination else "held"] += 1
                counts["amount"] += amount
                yield (run.incident_id, run.id, customer_id, source, amount, destination, status,
                       payment_key(run.id, customer_id, source, destination), 0, "", stamp, stamp)

    # A page of lines at a time, read in full before it is written: on PostgreSQL the write is
    # a COPY on this same connection, and a server-side cursor cannot be read while a COPY is
    # in progress (psycopg waits for it forever).
    after = 0
    while True:
        lines = [tuple(r) for r in session.execute(
            select(AllocationLine.customer_id, AllocationLine.by_source)
            .where(AllocationLine.run_id == run.id, AllocationLine.payout_jpy > 0,
                   AllocationLine.customer_id > after)
            .order_by(AllocationLine.customer_id).limit(_INSTRUCT_PAGE))]
        if not lines:
            break
        after = int(lines[-1][0])
        bulk_insert(session, Disbursement.__tablename__,
                    ("incident_id", "run_id", "customer_id", "source_id", "amount_jpy", "destination_id", "status",
                     "idempotency_key", "attempts", "failure_reason", "created_at", "updated_at"), rows(lines))
    record_event(session, actor, "disbursements.instructed", "allocation_run", run.id,
                 f"{counts['pending'] + counts['held']} payments instructed from run #{run.id}"
                 f" ({', '.join(s for s, _i in wanted)}): ¥{counts['amount']:,}; {counts['held']} held"
                 " until the customer's payout account is approved",
                 {"sources": [s for s, _i in wanted], "pending": counts["pending"], "held": counts["held"],
                  "amount_jpy": counts["amount"]})
    return plan_batches(session, run.incident_id, batch_size)


def plan_batches(session: Session, incident_id: int, batch_size: int, rail: str = "") -> list[int]:
    """Group the incident's pending payments that have no batch into batches of ``batch_size``
    (one job each: one job per payment is too slow at a million customers)."""
    # Locked as read: a concurrent planner (another sweeper) waits, then finds them batched.
    ids = list(session.scalars(select(Disbursement.id).where(
        Disbursement.incident_id == incident_id, Disbursement.status == S.PENDING.value,
        Disbursement.batch_id.is_(None)).order_by(Disbursement.id).with_for_update()))
    if not ids:
        return []
    batches = [DisbursementBatch(incident_id=incident_id, rail=rail, size=len(ids[i:i + batch_size]),
                                 status="queued") for i in range(0, len(ids), batch_size)]
    session.add_all(batches)
    session.flush()
    batch_ids = [b.id for b in batches]
    # By primary key alone, a page of rows a statement: a condition on status or batch_id lets
    # a planner whose statistics predate these rows scan that index once per batch, which
    # took minutes at a million payments.
    page = 50_000
    for start in range(0, len(ids), page):
        chunk = ids[start:start + page]
        owners = [batch_ids[(start + i) // batch_size] for i in range(len(chunk))]
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(
                "UPDATE disbursements AS d SET batch_id = v.batch_id"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:batches AS bigint[])) AS v(id, batch_id)"
                " WHERE d.id = v.id"), {"ids": chunk, "batches": owners})
        else:
            table = Disbursement.__table__
            session.execute(table.update().where(table.c.id == bindparam("b_id"))
                            .values(batch_id=bindparam("b_batch")),
                            [{"b_id": i, "b_batch": b} for i, b in zip(chunk, owners)])
    return batch_ids


def dispatch_batches(session: Session, dispatch: Dispatch | None, batch_ids: Iterable[int]) -> int:
    """Enqueue batches (after the commit that created them); records when each was enqueued."""
    ids = list(batch_ids)
    if dispatch is None or not ids:
        return 0
    with transaction(session):
        session.execute(update(DisbursementBatch).where(DisbursementBatch.id.in_(ids))
                        .values(enqueued_at=utcnow()).execution_options(synchronize_session=False))
    for batch_id in ids:
        dispatch(PAY_BATCH_JOB, batch_id, job_id=f"payouts-pay-batch-{batch_id}")
    return len(ids)


def destination_approved(session: Session, actor: Actor, destination: PayoutDestination) -> int:
    """A customer's newly approved account releases their held payments to it (inside the
    caller's transaction; the sweeper batches and enqueues them). Returns how many."""
    held = session.execute(select(Disbursement.id, Disbursement.run_id, Disbursement.source_id).where(
        Disbursement.customer_id == destination.customer_id,
        Disbursement.status == S.HELD.value).with_for_update()).all()
    now = utcnow()
    check_transition(S.HELD, S.PENDING)
    for disbursement_id, run_id, source_id in held:
        session.execute(update(Disbursement).where(Disbursement.id == disbursement_id).values(
            status=S.PENDING.value, destination_id=destination.id, batch_id=None, updated_at=now,
            idempotency_key=payment_key(run_id, destination.customer_id, source_id, destination.id)))
    record_events(session, actor, (
        ("disbursement.released", "disbursement", i,
         f"Payment #{i} released to approved destination #{destination.id}",
         {"status": [S.HELD.value, S.PENDING.value], "destination_id": destination.id}) for i, _r, _s in held))
    return len(held)


# --- insurers' payments ----------------------------------------------------------------------


def record_insurer_payment(session: Session, actor: Actor, *, incident_ref: str, layer_code: str,
                           amount_jpy: int, batch_size: int, dispatch: Dispatch | None = None) -> InsuranceReceivable:
    """Record money an insurer paid on a layer of the incident's initial run. Once the layer's
    whole share has arrived, its part of every customer's payout is instructed."""
    require_role(actor, STAFF_WRITERS, "record insurers' payments")
    check_yen(amount_jpy, "amount_jpy", positive=True)
    with transaction(session):
        incident = find_incident(session, incident_ref, lock=True)
        receivable = session.scalar(
            select(InsuranceReceivable).join(AllocationRun, AllocationRun.id == InsuranceReceivable.run_id)
            .join(InsuranceLayer, InsuranceLayer.id == InsuranceReceivable.layer_id)
            .where(AllocationRun.incident_id == incident.id, InsuranceLayer.code == layer_code)
            .with_for_update())
        if receivable is None:
            raise NotFoundError(f"layer {layer_code!r} owes nothing for incident {incident.ref}")
        outstanding = receivable.amount_jpy - receivable.received_jpy
        if amount_jpy > outstanding:
            raise ValidationError("amount_jpy", f"is more than the ¥{outstanding:,} still owed by layer {layer_code}")
        before = receivable.received_jpy
        receivable.received_jpy += amount_jpy
        record_event(session, actor, "insurer.payment_recorded", "insurance_receivable", receivable.id,
                     f"¥{amount_jpy:,} received from layer {layer_code} for {incident.ref}",
                     {"received_jpy": [before, receivable.received_jpy], "amount_jpy": receivable.amount_jpy})
        batches: list[int] = []
        if receivable.received_jpy == receivable.amount_jpy:
            run = session.get(AllocationRun, receivable.run_id)
            assert run is not None
            batches = create_instructions(session, actor, run, [layer_code], batch_size)
    dispatch_batches(session, dispatch, batches)
    return receivable


# --- paying a batch (the job's work) -------------------------------------------------------


@dataclass
class BatchOutcome:
    batch_id: int
    attempted: int = 0
    paid: int = 0
    submitted: int = 0
    retrying: int = 0
    needs_attention: int = 0
    timed_out: bool = False


def process_batch(session: Session, actor: Actor, rail: Rail, batch_id: int) -> BatchOutcome:
    """Pay what is due in one batch. Safe to run twice, concurrently, or after a crash.

    Payments left "submitting" are sent again: the job that marked them may have died, and a
    live one that is still waiting for the bank loses nothing by a duplicate, because the bank
    answers the same key with the same payment."""
    outcome = BatchOutcome(batch_id)
    now = utcnow()
    with transaction(session):
        batch = session.scalar(select(DisbursementBatch).where(DisbursementBatch.id == batch_id)
                               .with_for_update(skip_locked=True))
        if batch is None:
            return outcome  # another worker holds it right now, or it does not exist
        due = or_(Disbursement.status == S.PENDING.value,
                  and_(Disbursement.status == S.RETRYING.value, Disbursement.next_attempt_at <= now),
                  Disbursement.status == S.SUBMITTING.value)
        rows = session.execute(
            select(Disbursement.id, Disbursement.amount_jpy, Disbursement.idempotency_key, Disbursement.status,
                   PayoutDestination.bank_code, PayoutDestination.branch_code, PayoutDestination.account_type,
                   PayoutDestination.account_number, PayoutDestination.holder_kana)
            .join(PayoutDestination, PayoutDestination.id == Disbursement.destination_id)
            .where(Disbursement.batch_id == batch_id, due).order_by(Disbursement.id)
            .with_for_update(of=Disbursement)).all()
        if not rows:
            _finish_if_done(session, batch, now)
            return outcome
        ids = [r.id for r in rows]
        session.execute(update(Disbursement).where(_among(session, Disbursement.id, ids)).values(
            status=S.SUBMITTING.value, attempts=Disbursement.attempts + 1, updated_at=now, rail=rail.name)
            .execution_options(synchronize_session=False))
        batch.status = "running"
        batch.started_at = batch.started_at or now
        batch.rail = rail.name
        record_event(session, actor, "disbursement_batch.submitting", "disbursement_batch", batch_id,
                     f"{len(ids)} payments of batch #{batch_id} sent to {rail.name}",
                     {"disbursements": ids, "resent_after_interruption":
                      [r.id for r in rows if r.status == S.SUBMITTING.value]})
    orders = [PaymentOrder(r.idempotency_key, r.amount_jpy, BankAccount(
        r.bank_code, r.branch_code, r.account_type, r.account_number, r.holder_kana)) for r in rows]
    outcome.attempted = len(orders)
    try:
        results: list[RailResult] | None = rail.pay(orders)
    except RailTimeout:
        results = None  # the bank may or may not have them: the next attempt resends the same keys
        outcome.timed_out = True
    _record_results(session, actor, batch_id, ids, results, outcome)
    return outcome


def _record_results(session: Session, actor: Actor, batch_id: int, ids: list[int],
                    results: list[RailResult] | None, outcome: BatchOutcome) -> None:
    now = utcnow()
    with transaction(session):
        batch = session.scalar(select(DisbursementBatch).where(DisbursementBatch.id == batch_id).with_for_update())
        assert batch is not None
        # Only rows still "submitting" are ours to settle: a duplicate job may have settled some.
        current = {r.id: r for r in session.execute(
            select(Disbursement.id, Disbursement.attempts, Disbursement.idempotency_key, Disbursement.amount_jpy,
                   Disbursement.source_id, Disbursement.customer_id, Disbursement.incident_id,
                   Disbursement.key_unanswered)
            .where(_among(session, Disbursement.id, ids), Disbursement.status == S.SUBMITTING.value)
            .with_for_update()).all()}
        by_key = {r.idempotency_key: r for r in current.values()}
        changes: list[dict[str, object]] = []
        events = []
        reserve_paid = 0
        paid_customers: list[tuple[int, int, int]] = []
        unanswered = results is None
        if results is None:
            results = [RailResult(r.idempotency_key, Outcome.TRANSIENT, None, OUTCOME_UNKNOWN)
                       for r in current.values()]
        for result in results:
            row = by_key.get(result.idempotency_key)
            if row is None:
                continue
            change: dict[str, object] = {"b_id": row.id, "b_status": None, "b_reference": result.reference,
                                         "b_reason": "", "b_next": None, "b_paid_at": None,
                                         # True: the bank may hold the key; False: an answer for
                                         # the key came; None: a "try again" said nothing of it.
                                         "b_unanswered": True if unanswered else (
                                             None if result.outcome is Outcome.TRANSIENT else False)}
            if result.outcome is Outcome.PAID:
                change.update(b_status=S.PAID.value, b_paid_at=now)
                outcome.paid += 1
                if row.source_id == RESERVE:
                    reserve_paid += row.amount_jpy
                paid_customers.append((row.incident_id, row.customer_id, row.amount_jpy))
            elif result.outcome is Outcome.SUBMITTED:
                change.update(b_status=S.SUBMITTED.value)
                outcome.submitted += 1
            else:
                permanent = result.outcome is Outcome.REJECTED
                status = after_failure(row.attempts, permanent)
                reason = PERMANENT_REASONS.get(result.reason, result.reason) if permanent else result.reason
                change.update(b_status=status.value, b_reason=(reason or "")[:300])
                if status is S.RETRYING:
                    change["b_next"] = now + dt.timedelta(seconds=retry_delay_seconds(row.attempts, row.idempotency_key))
                    outcome.retrying += 1
                else:
                    outcome.needs_attention += 1
            check_transition(S.SUBMITTING, str(change["b_status"]))  # the table in the domain decides
            changes.append(change)
            events.append((f"disbursement.{_PAST[change['b_status']]}", "disbursement", row.id,
                           f"Payment #{row.id} of ¥{row.amount_jpy:,}: {change['b_status']}"
                           + (f" ({change['b_reason']})" if change["b_reason"] else ""),
                           {"status": [S.SUBMITTING.value, change["b_status"]], "attempt": row.attempts,
                            "rail_reference": result.reference}))
        if changes:
            _apply_changes(session, changes, now)
        if reserve_paid:
            session.add(ReserveEntry(kind="payment", amount_jpy=reserve_paid, incident_id=batch.incident_id,
                                     created_by_label=actor.label, memo=f"Payments of batch #{batch_id}"))
        claim_ids = _notify_and_find_settled(session, paid_customers, now)
        _notify_failures(session, [c for c in changes if c["b_status"] == S.NEEDS_ATTENTION.value], current, now)
        _finish_if_done(session, batch, now)
        # The audit chain has one head for every writer: it is taken last, so that other
        # workers wait for this one's events and commit only, not for all of the above.
        if events:
            record_events(session, actor, events)
        _mark_claims_paid(session, actor, claim_ids)


def _apply_changes(session: Session, changes: list[dict[str, object]], now: dt.datetime) -> None:
    """Each settled payment's new state. The rows were read "submitting" and locked by this
    transaction (FOR UPDATE), so nobody else has settled them since."""
    if session.get_bind().dialect.name == "postgresql":
        # One statement over arrays (an executemany is a thousand statements for the server),
        # joined on the primary key alone: a condition on status would let the planner, whose
        # statistics rarely see "submitting" rows, pick a status index and compare every row
        # with every row.
        session.execute(text(
            "UPDATE disbursements AS d SET status = v.status, rail_reference = v.reference,"
            " failure_reason = v.reason, next_attempt_at = v.next_at, paid_at = v.paid_at, updated_at = :now,"
            " key_unanswered = coalesce(v.unanswered, d.key_unanswered)"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), CAST(:refs AS varchar[]),"
            " CAST(:reasons AS varchar[]), CAST(:nexts AS timestamptz[]), CAST(:paid AS timestamptz[]),"
            " CAST(:unanswered AS boolean[]))"
            " AS v(id, status, reference, reason, next_at, paid_at, unanswered)"
            " WHERE d.id = v.id"),
            {"now": now, "ids": [c["b_id"] for c in changes],
             "statuses": [c["b_status"] for c in changes], "refs": [c["b_reference"] for c in changes],
             "reasons": [c["b_reason"] for c in changes], "nexts": [c["b_next"] for c in changes],
             "paid": [c["b_paid_at"] for c in changes], "unanswered": [c["b_unanswered"] for c in changes]})
        return
    table = Disbursement.__table__
    session.execute(
        table.update().where(table.c.id == bindparam("b_id")).where(table.c.status == S.SUBMITTING.value)
        .values(status=bindparam("b_status"), rail_reference=bindparam("b_reference"),
                failure_reason=bindparam("b_reason"), next_attempt_at=bindparam("b_next"),
                paid_at=bindparam("b_paid_at"), updated_at=now,
                key_unanswered=func.coalesce(bindparam("b_unanswered", type_=Boolean), table.c.key_unanswered)),
        changes)


_PAST = {S.PAID.value: "paid", S.SUBMITTED.value: "submitted", S.RETRYING.value: "retry_scheduled",
         S.NEEDS_ATTENTION.value: "needs_attention"}


def _settle_customers(session: Session, actor: Actor, paid: list[tuple[int, int, int]], now: dt.datetime) -> None:
    """Notices for payments made, and claims marked paid once everything allocated to the
    customer has been paid (the insurers' parts may come later than the reserve's)."""
    _mark_claims_paid(session, actor, _notify_and_find_settled(session, paid, now))


def _notify_and_find_settled(session: Session, paid: list[tuple[int, int, int]], now: dt.datetime) -> list[int]:
    """Notices for payments (incident, customer, yen) made; the ids of the approved claims
    whose customer has now been paid everything allocated to them."""
    if not paid:
        return []
    postgresql = session.get_bind().dialect.name == "postgresql"
    stamp = now if postgresql else now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    bulk_insert(session, Notice.__tablename__, ("customer_id", "kind", "params", "created_at"),
                ((c, "payment.sent", json.dumps({"amount_jpy": a}), stamp) for _i, c, a in paid))
    by_incident: dict[int, set[int]] = defaultdict(set)
    for incident_id, customer_id, _a in paid:
        by_incident[incident_id].add(customer_id)
    claim_ids: list[int] = []
    for incident_id, customers in by_incident.items():
        ids = sorted(customers)
        allocated = dict(session.execute(
            select(AllocationLine.customer_id, func.sum(AllocationLine.payout_jpy))
            .join(AllocationRun, AllocationRun.id == AllocationLine.run_id)
            .where(AllocationRun.incident_id == incident_id, _among(session, AllocationLine.customer_id, ids))
            .group_by(AllocationLine.customer_id)).all())
        paid_so_far = dict(session.execute(
            select(Disbursement.customer_id, func.sum(Disbursement.amount_jpy))
            .where(Disbursement.incident_id == incident_id, _among(session, Disbursement.customer_id, ids),
                   Disbursement.status == S.PAID.value)
            .group_by(Disbursement.customer_id)).all())
        done = [c for c in ids if allocated.get(c) and int(paid_so_far.get(c, 0)) == int(allocated[c])]
        if done:
            claim_ids += session.scalars(select(Claim.id).where(
                Claim.incident_id == incident_id, _among(session, Claim.customer_id, done),
                Claim.status == ClaimStatus.APPROVED.value))
    return claim_ids


def _mark_claims_paid(session: Session, actor: Actor, claim_ids: list[int]) -> None:
    if claim_ids:
        from payouts.services.claims import mark_claims_paid

        mark_claims_paid(session, actor, claim_ids)


def _notify_failures(session: Session, failed: list[dict[str, object]], rows: dict, now: dt.datetime) -> None:
    """Tell the customer; a payment whose outcome is unknown is "delayed", not "failed": told
    it failed, a customer would change account, which cannot help and only adds a step."""
    def unknown(change: dict[str, object]) -> bool:
        flag = change["b_unanswered"]
        return bool(rows[change["b_id"]].key_unanswered if flag is None else flag)

    if failed:
        session.execute(Notice.__table__.insert(), [
            {"customer_id": rows[c["b_id"]].customer_id, "claim_id": None,
             "kind": "payment.delayed" if unknown(c) else "payment.failed",
             "params": json.dumps({"reason": c["b_reason"]}), "created_at": now} for c in failed])


def _finish_if_done(session: Session, batch: DisbursementBatch, now: dt.datetime) -> None:
    open_rows = session.scalar(select(func.count()).select_from(Disbursement).where(
        Disbursement.batch_id == batch.id, Disbursement.status.in_(WORKABLE)))
    if not open_rows and batch.status != "done":
        batch.status = "done"
        batch.finished_at = now


# --- the sweeper ---------------------------------------------------------------------------


@dataclass
class SweepReport:
    planned: list[int] = field(default_factory=list)
    dispatched: int = 0


def sweep(session: Session, actor: Actor, dispatch: Dispatch | None, *, batch_size: int,
          stale_after: dt.timedelta = dt.timedelta(minutes=2)) -> SweepReport:
    """Re-enqueue what the database says is due: unbatched pending payments (newly released),
    batches not enqueued lately that still have pending payments (a lost job, a flushed
    Redis), retries whose time has come, and payments left "submitting" by a dead worker.

    First it releases held payments of customers whose account is approved. The approval
    releases them itself, but one that committed while an allocation was still writing its
    payments could not see them, and nothing else would ever release them."""
    report = SweepReport()
    # One customer per transaction: each release writes audit events, and the chain's lock is
    # taken last and held briefly, never while waiting for another customer's payments.
    stranded = list(session.scalars(select(PayoutDestination.id).where(
        PayoutDestination.status == "approved",
        PayoutDestination.customer_id.in_(select(Disbursement.customer_id).where(Disbursement.status == S.HELD.value)))))
    session.rollback()
    for destination_id in stranded:
        with transaction(session):
            destination = session.get(PayoutDestination, destination_id, populate_existing=True)
            if destination is not None and destination.status == "approved":
                destination_approved(session, actor, destination)  # re-reads the held rows locked
    now = utcnow()
    with transaction(session):
        incidents = session.scalars(select(Disbursement.incident_id).where(
            Disbursement.status == S.PENDING.value, Disbursement.batch_id.is_(None)).distinct())
        for incident_id in list(incidents):
            report.planned += plan_batches(session, incident_id, batch_size)
        stale = now - stale_after
        due = session.scalars(
            select(Disbursement.batch_id).join(DisbursementBatch, DisbursementBatch.id == Disbursement.batch_id)
            .where(or_(
                and_(Disbursement.status == S.PENDING.value,
                     or_(DisbursementBatch.enqueued_at.is_(None), DisbursementBatch.enqueued_at <= stale)),
                and_(Disbursement.status == S.RETRYING.value, Disbursement.next_attempt_at <= now),
                and_(Disbursement.status == S.SUBMITTING.value, Disbursement.updated_at <= stale)))
            .distinct())
        batch_ids = sorted(set(due) | set(report.planned))
    report.dispatched = dispatch_batches(session, dispatch, batch_ids)
    return report


# --- staff actions --------------------------------------------------------------------------


def retry_payment(session: Session, actor: Actor, disbursement_id: int, *, batch_size: int,
                  dispatch: Dispatch | None = None) -> Disbursement:
    """Send a payment that needs attention again, to the customer's approved account. A bank
    rejection is final for that account: it is retried only once the account has changed
    (a destination change needs two people), never into the account that refused it.

    A payment whose last attempt timed out may already be booked at the bank under its key, so
    it goes again with the same key to the same account, whatever account is approved now: the
    rail answers a key it has with its payment, and a new key would pay twice. That holds until
    an answer for the key itself arrives (Disbursement.key_unanswered), however many "try again
    later" answers came in between; only then does the payment move to a new account."""
    require_role(actor, STAFF_WRITERS, "retry payments")
    with transaction(session):
        row = session.scalar(select(Disbursement).where(Disbursement.id == disbursement_id).with_for_update())
        if row is None:
            raise NotFoundError(f"no payment #{disbursement_id}")
        if row.status != S.NEEDS_ATTENTION.value:
            raise TransitionError(f"payment #{row.id} is {row.status}; only a payment that needs attention is retried")
        if row.key_unanswered:
            destination_id = row.destination_id  # and the same key: see above
        else:
            destination = session.scalar(select(PayoutDestination).where(
                PayoutDestination.customer_id == row.customer_id, PayoutDestination.status == "approved"))
            if destination is None:
                raise ConflictError("the customer has no approved payout account: enter one and have it approved"
                                    " first")
            if destination.id == row.destination_id and _was_rejected(row):
                raise ConflictError("the bank rejected this account; fix the payout account (two people approve"
                                    " the change) before retrying")
            destination_id = destination.id
        before = (row.status, row.destination_id)
        check_transition(row.status, S.PENDING)
        row.status = S.PENDING.value
        row.destination_id = destination_id
        row.idempotency_key = payment_key(row.run_id, row.customer_id, row.source_id, destination_id)
        row.batch_id = None
        # A new payment: it leaves in the next Zengin transfer file, not in the one that failed.
        row.zengin_file_id = None
        row.failure_reason = ""
        row.next_attempt_at = None
        row.updated_at = utcnow()
        session.flush()
        record_event(session, actor, "disbursement.retried", "disbursement", row.id,
                     f"{actor.label} sent payment #{row.id} again to destination #{destination_id}",
                     {"status": [before[0], S.PENDING.value], "destination_id": [before[1], destination_id]})
        batches = plan_batches(session, row.incident_id, batch_size)
        session.refresh(row, ["batch_id"])  # plan_batches set it in the database only
    dispatch_batches(session, dispatch, batches)
    return row


def _was_rejected(row: Disbursement) -> bool:
    """A bank's rejection (recorded against the key) rather than a run of transient failures."""
    return row.failure_reason in PERMANENT_REASONS.values() or row.failure_reason in PERMANENT_REASONS


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusTotal:
    status: str
    count: int
    amount_jpy: int


@dataclass(frozen=True)
class SourceLine:
    source_id: str
    allocated_jpy: int
    awaiting_funds_jpy: int
    instructed_jpy: int

    @property
    def difference_jpy(self) -> int:
        return self.allocated_jpy - self.awaiting_funds_jpy - self.instructed_jpy


@dataclass(frozen=True)
class Reconciliation:
    incident: Incident
    sources: list[SourceLine]
    by_status: list[StatusTotal]
    instructed_jpy: int
    paid_jpy: int
    pending_jpy: int
    failed_jpy: int
    cancelled_jpy: int
    #: Payments from the reserve recorded paid, and the reserve ledger's payments for the
    #: incident: two records written by every settlement, so they must agree to the yen.
    reserve_paid_jpy: int = 0
    reserve_ledger_paid_jpy: int = 0

    @property
    def status_difference_jpy(self) -> int:
        return self.instructed_jpy - self.paid_jpy - self.pending_jpy - self.failed_jpy - self.cancelled_jpy

    @property
    def ledger_difference_jpy(self) -> int:
        return self.reserve_paid_jpy - self.reserve_ledger_paid_jpy

    @property
    def balanced(self) -> bool:
        return (self.status_difference_jpy == 0 and self.ledger_difference_jpy == 0
                and all(s.difference_jpy == 0 for s in self.sources))


def reconcile(session: Session, actor: Actor, incident_ref: str) -> Reconciliation:
    """Instructions against allocations, by source, and instructions by outcome, to the yen.

    allocated = awaiting an insurer's payment + instructed, for every source;
    instructed = paid + pending + failed (+ cancelled); and paid from the reserve = the
    reserve ledger's payments for the incident. Any difference is a finding. (The bank's own
    record is not read here: the rails offer no statement to compare with.)"""
    require_role(actor, BACK_OFFICE_READERS, "read the reconciliation")
    incident = find_incident(session, incident_ref)
    allocated = dict(session.execute(
        select(AllocationSource.source_id, func.sum(AllocationSource.used_jpy))
        .join(AllocationRun, AllocationRun.id == AllocationSource.run_id)
        .where(AllocationRun.incident_id == incident.id).group_by(AllocationSource.source_id)).all())
    awaiting = dict(session.execute(
        select(InsuranceLayer.code, func.sum(InsuranceReceivable.amount_jpy))
        .join(InsuranceReceivable, InsuranceReceivable.layer_id == InsuranceLayer.id)
        .join(AllocationRun, AllocationRun.id == InsuranceReceivable.run_id)
        .where(AllocationRun.incident_id == incident.id,
               InsuranceReceivable.received_jpy < InsuranceReceivable.amount_jpy)
        .group_by(InsuranceLayer.code)).all())
    # One pass over the incident's payments, by source and status, gives what was instructed
    # per source, the totals per status and what the reserve has paid.
    instructed: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    amount: dict[str, int] = defaultdict(int)
    reserve_paid = 0
    for source, status, n, total in session.execute(
            select(Disbursement.source_id, Disbursement.status, func.count(), func.sum(Disbursement.amount_jpy))
            .where(Disbursement.incident_id == incident.id).group_by(Disbursement.source_id, Disbursement.status)):
        instructed[source] += int(total)
        counts[status] += int(n)
        amount[status] += int(total)
        if source == RESERVE and status == S.PAID.value:
            reserve_paid = int(total)
    sources = [SourceLine(s, int(allocated.get(s) or 0), int(awaiting.get(s) or 0), instructed.get(s, 0))
               for s in sorted(set(allocated) | set(instructed), key=lambda s: (s != RESERVE, s))
               if allocated.get(s) or instructed.get(s)]
    by_status = [StatusTotal(status, counts[status], amount[status]) for status in sorted(counts)]
    ledger_paid = session.scalar(select(func.coalesce(func.sum(ReserveEntry.amount_jpy), 0)).where(
        ReserveEntry.incident_id == incident.id, ReserveEntry.kind == "payment"))
    return Reconciliation(
        incident, sources, by_status, sum(amount.values()), amount.get(S.PAID.value, 0),
        sum(amount.get(s, 0) for s in IN_FLIGHT), amount.get(S.NEEDS_ATTENTION.value, 0),
        amount.get(S.CANCELLED.value, 0), reserve_paid, int(ledger_paid or 0))


@dataclass(frozen=True)
class Progress:
    by_status: list[StatusTotal]
    paid_last_minute: int
    paid_last_hour: int
    batches: list[tuple[DisbursementBatch, dict[str, int]]]
    needs_attention: list[tuple[Disbursement, str]]


def progress(session: Session, actor: Actor, incident_ref: str, *, batch_limit: int = 50,
             failure_limit: int = 100) -> Progress:
    """What staff watch while an incident is paid: totals by state, throughput, each batch's
    progress, and the payments that need a person."""
    require_role(actor, BACK_OFFICE_READERS, "read disbursements")
    incident = find_incident(session, incident_ref)
    now = utcnow()
    by_status = [StatusTotal(status, int(n), int(a)) for status, n, a in session.execute(
        select(Disbursement.status, func.count(), func.sum(Disbursement.amount_jpy))
        .where(Disbursement.incident_id == incident.id).group_by(Disbursement.status).order_by(Disbursement.status))]

    def paid_since(delta: dt.timedelta) -> int:
        return int(session.scalar(select(func.count()).select_from(Disbursement).where(
            Disbursement.incident_id == incident.id, Disbursement.status == S.PAID.value,
            Disbursement.paid_at >= now - delta)) or 0)

    batches = list(session.scalars(select(DisbursementBatch).where(DisbursementBatch.incident_id == incident.id)
                                   .order_by(DisbursementBatch.id.desc()).limit(batch_limit)))
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if batches:
        for batch_id, status, n in session.execute(
                select(Disbursement.batch_id, Disbursement.status, func.count())
                .where(Disbursement.batch_id.in_([b.id for b in batches]))
                .group_by(Disbursement.batch_id, Disbursement.status)):
            counts[batch_id][status] = int(n)
    failures = [(d, ref) for d, ref in session.execute(
        select(Disbursement, Customer.external_ref).join(Customer, Customer.id == Disbursement.customer_id)
        .where(Disbursement.incident_id == incident.id, Disbursement.status == S.NEEDS_ATTENTION.value)
        .order_by(Disbursement.id).limit(failure_limit))]
    return Progress(by_status, paid_since(dt.timedelta(minutes=1)), paid_since(dt.timedelta(hours=1)),
                    [(b, counts.get(b.id, {})) for b in batches], failures)



def settle_paid(session: Session, actor: Actor, paid: list[tuple[int, int, int]], now: dt.datetime) -> None:
    """After payments (incident, customer, yen) were recorded paid by another path (a bank's
    Zengin result): notices, and claims marked paid once fully paid."""
    _settle_customers(session, actor, paid, now)
