"""Funding records: the reserve ledger, the insurance tower and per-incident terms."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, selectinload

from payouts.audit.log import record_event
from payouts.db.models import (
    AllocationRun,
    AllocationSource,
    CompensationTerms,
    InsuranceLayer,
    InsurancePolicy,
    ReserveEntry,
)
from payouts.db.session import transaction
from payouts.domain.errors import NotFoundError, ValidationError
from payouts.domain.incidents import IncidentType
from payouts.domain.money import canonical_decimal, check_yen, parse_price
from payouts.domain.reserve import EntryKind, ReserveBalance
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.services.access import require_role
from payouts.services.incidents import ensure_not_allocated, find_incident

#: Serialises changes to the reserve's balance (PostgreSQL advisory lock key, "rsrv").
_RESERVE_LOCK_KEY = 0x72737276
MAX_MEMO = 500


def lock_reserve(session: Session) -> None:
    """Take the reserve lock for this transaction: balance checks and entries stay consistent."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _RESERVE_LOCK_KEY})


def reserve_balance(session: Session, before: dt.datetime | None = None) -> ReserveBalance:
    """The reserve's balance from all its entries, or from those made before ``before``."""
    query = select(ReserveEntry.kind, func.sum(ReserveEntry.amount_jpy)).group_by(ReserveEntry.kind)
    if before is not None:
        query = query.where(ReserveEntry.created_at < before)
    return ReserveBalance.from_totals(session.execute(query).all())


def reserve_entries(session: Session, actor: Actor, limit: int = 200) -> list[ReserveEntry]:
    require_role(actor, BACK_OFFICE_READERS, "read the reserve ledger")
    return list(session.scalars(select(ReserveEntry).order_by(ReserveEntry.id.desc()).limit(limit)))


def record_reserve_movement(
    session: Session, actor: Actor, *, kind: str, amount_jpy: int, memo: str
) -> ReserveEntry:
    """A deposit into or a withdrawal from the reserve (withdrawals only from what is available)."""
    require_role(actor, STAFF_WRITERS, "move reserve funds")
    if kind not in (EntryKind.DEPOSIT.value, EntryKind.WITHDRAWAL.value):
        raise ValidationError("kind", "must be deposit or withdrawal")
    check_yen(amount_jpy, "amount_jpy", positive=True)
    memo = (memo or "").strip()
    if not memo or len(memo) > MAX_MEMO:
        raise ValidationError("memo", f"is required (at most {MAX_MEMO} characters): say what the money is")
    with transaction(session):
        lock_reserve(session)
        balance = reserve_balance(session)
        if kind == EntryKind.WITHDRAWAL.value and amount_jpy > balance.available:
            raise ValidationError(
                "amount_jpy", f"exceeds the available reserve of ¥{balance.available:,}"
            )
        entry = ReserveEntry(kind=kind, amount_jpy=amount_jpy, memo=memo, created_by_label=actor.label)
        session.add(entry)
        session.flush()
        after = balance.available + (amount_jpy if kind == "deposit" else -amount_jpy)
        record_event(session, actor, f"reserve.{kind}_recorded", "reserve", entry.id,
                     f"Reserve {kind} of ¥{amount_jpy:,}: {memo}",
                     {"amount_jpy": amount_jpy, "available_jpy": [balance.available, after]})
    return entry


# --- insurance ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerStatus:
    layer: InsuranceLayer
    aggregate_used_jpy: int

    @property
    def aggregate_remaining_jpy(self) -> int | None:
        limit = self.layer.aggregate_limit_jpy
        return None if limit is None else max(limit - self.aggregate_used_jpy, 0)


def create_policy(
    session: Session, actor: Actor, *, policy_number: str, insurer: str,
    period_start: dt.date, period_end: dt.date,
) -> InsurancePolicy:
    require_role(actor, STAFF_WRITERS, "record insurance policies")
    policy_number, insurer = (policy_number or "").strip(), (insurer or "").strip()
    if not policy_number or len(policy_number) > 60:
        raise ValidationError("policy_number", "is required (at most 60 characters)")
    if not insurer or len(insurer) > 200:
        raise ValidationError("insurer", "is required (at most 200 characters)")
    if period_end < period_start:
        raise ValidationError("period_end", "cannot be before period_start")
    with transaction(session):
        if session.scalar(select(InsurancePolicy.id).where(InsurancePolicy.policy_number == policy_number)):
            raise ValidationError("policy_number", f"policy {policy_number!r} already exists")
        policy = InsurancePolicy(policy_number=policy_number, insurer=insurer, period_start=period_start,
                                 period_end=period_end, created_by_label=actor.label)
        session.add(policy)
        session.flush()
        record_event(session, actor, "policy.recorded", "insurance_policy", policy_number,
                     f"Insurance policy {policy_number} with {insurer} recorded",
                     {"insurer": insurer, "period": [period_start.isoformat(), period_end.isoformat()]})
    return policy


def add_layer(
    session: Session, actor: Actor, *, policy_number: str, code: str, attachment_jpy: int,
    limit_jpy: int, share: str, aggregate_limit_jpy: int | None, excluded_incident_types: list[str],
) -> InsuranceLayer:
    require_role(actor, STAFF_WRITERS, "record insurance layers")
    code = (code or "").strip()
    if not code or len(code) > 40 or code == "reserve" or not code.replace("-", "").replace("_", "").isalnum():
        raise ValidationError("code", "must be 1-40 letters, digits, '-' or '_' (and not 'reserve')")
    check_yen(attachment_jpy, "attachment_jpy")
    check_yen(limit_jpy, "limit_jpy")
    if aggregate_limit_jpy is not None:
        check_yen(aggregate_limit_jpy, "aggregate_limit_jpy")
    share_value: Decimal = parse_price(share, field="share")
    if share_value > 1:
        raise ValidationError("share", "must be greater than 0 and at most 1")
    known = {t.value for t in IncidentType}
    excluded = sorted({t.strip() for t in excluded_incident_types if t.strip()})
    for kind in excluded:
        if kind not in known:
            raise ValidationError("excluded_incident_types", f"unknown incident type {kind!r}")
    with transaction(session):
        policy = session.scalar(select(InsurancePolicy).where(InsurancePolicy.policy_number == policy_number))
        if policy is None:
            raise NotFoundError(f"no policy {policy_number!r}")
        if session.scalar(select(InsuranceLayer.id).where(InsuranceLayer.code == code)):
            raise ValidationError("code", f"a layer {code!r} already exists")
        layer = InsuranceLayer(policy_id=policy.id, code=code, attachment_jpy=attachment_jpy,
                               limit_jpy=limit_jpy, share=share_value,
                               aggregate_limit_jpy=aggregate_limit_jpy,
                               excluded_incident_types=",".join(excluded))
        session.add(layer)
        session.flush()
        record_event(session, actor, "layer.recorded", "insurance_layer", code,
                     f"Layer {code} of policy {policy_number}: ¥{limit_jpy:,} xs ¥{attachment_jpy:,}"
                     f" at {canonical_decimal(share_value)}",
                     {"attachment_jpy": attachment_jpy, "limit_jpy": limit_jpy,
                      "share": canonical_decimal(share_value),
                      "aggregate_limit_jpy": aggregate_limit_jpy, "excluded_incident_types": excluded})
    return layer


def tower(session: Session, actor: Actor, on_date: dt.date | None = None,
          as_at: dt.datetime | None = None) -> list[LayerStatus]:
    """Layers (of policies in force on ``on_date``, or all) with what their aggregate has used:
    by every committed run, or (``as_at``) by the runs committed before that moment, so a
    past date reads as it stood then."""
    require_role(actor, BACK_OFFICE_READERS, "read the insurance tower")
    query = select(InsuranceLayer).join(InsurancePolicy).options(selectinload(InsuranceLayer.policy))
    if on_date is not None:
        query = query.where(InsurancePolicy.period_start <= on_date, InsurancePolicy.period_end >= on_date)
    layers = list(session.scalars(query.order_by(InsuranceLayer.attachment_jpy, InsuranceLayer.code)))
    usage = (select(AllocationSource.layer_id, func.sum(AllocationSource.used_jpy))
             .where(AllocationSource.layer_id.is_not(None)).group_by(AllocationSource.layer_id))
    if as_at is not None:
        usage = usage.join(AllocationRun, AllocationRun.id == AllocationSource.run_id).where(
            AllocationRun.created_at < as_at)
    used = dict(session.execute(usage).all())
    return [LayerStatus(layer, int(used.get(layer.id, 0))) for layer in layers]


def policies(session: Session, actor: Actor) -> list[InsurancePolicy]:
    require_role(actor, BACK_OFFICE_READERS, "read insurance policies")
    return list(session.scalars(
        select(InsurancePolicy).options(selectinload(InsurancePolicy.layers))
        .order_by(InsurancePolicy.period_start.desc(), InsurancePolicy.policy_number)))


# --- compensation terms -------------------------------------------------------------------------


def parse_tranches(text_value: str) -> tuple[int, ...]:
    """"200000, 1000000" -> (200000, 1000000): whole yen, strictly increasing."""
    parts = [p.strip().replace("_", "") for p in (text_value or "").split(",") if p.strip()]
    values: list[int] = []
    for part in parts:
        if not part.isdigit() or not part.isascii():
            raise ValidationError("tranches_jpy", f"{part!r} is not a whole number of yen")
        values.append(int(part))
    if any(b <= a for a, b in zip(values, values[1:])) or (values and values[0] <= 0):
        raise ValidationError("tranches_jpy", "must be positive and strictly increasing")
    return tuple(values)


def get_terms(session: Session, incident_id: int) -> CompensationTerms | None:
    return session.get(CompensationTerms, incident_id)


def set_terms(
    session: Session, actor: Actor, *, incident_ref: str, deductible_jpy: int, cap_jpy: int | None,
    tranches_jpy: str,
) -> CompensationTerms:
    require_role(actor, STAFF_WRITERS, "set compensation terms")
    check_yen(deductible_jpy, "deductible_jpy")
    if cap_jpy is not None:
        check_yen(cap_jpy, "cap_jpy")
    tranches = parse_tranches(tranches_jpy)
    stored = ",".join(map(str, tranches))
    with transaction(session):
        incident = find_incident(session, incident_ref, lock=True)
        ensure_not_allocated(session, incident, "compensation terms")
        terms = session.get(CompensationTerms, incident.id, with_for_update=True)
        before = None if terms is None else [terms.deductible_jpy, terms.cap_jpy, terms.tranches_jpy]
        if terms is None:
            terms = CompensationTerms(incident_id=incident.id)
            session.add(terms)
        terms.deductible_jpy, terms.cap_jpy, terms.tranches_jpy = deductible_jpy, cap_jpy, stored
        terms.set_by_label, terms.set_at = actor.label, dt.datetime.now(dt.timezone.utc)
        session.flush()
        after = [deductible_jpy, cap_jpy, stored]
        record_event(session, actor, "terms.set", "incident", incident.ref,
                     f"Compensation terms of {incident.ref}: deductible ¥{deductible_jpy:,},"
                     f" cap {'none' if cap_jpy is None else f'¥{cap_jpy:,}'}, tranches [{stored}]",
                     {k: [before[i] if before else None, after[i]]
                      for i, k in enumerate(("deductible_jpy", "cap_jpy", "tranches_jpy"))})
    return terms


