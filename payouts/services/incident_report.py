"""The per-incident report for regulatory filing: who was affected, where their claims stand,
what was eligible, funded, paid and still outstanding by source, and how long payment took.

Every figure is an exact integer computed by SQL aggregates; nothing here is a float. Time to
payment is measured per customer (one claim per customer and incident) from the incident's
``occurred_at`` to the claim's ``paid_at``, in whole seconds (rounded down). The median and the
90th percentile use the nearest-rank method: the value at rank ceil(p/100 * N) of the sorted
times. The database finds that row itself (ORDER BY paid_at, OFFSET rank - 1), so a million paid
claims cost two indexed reads, not a million rows sent to Python, and the same code runs on
SQLite and PostgreSQL. The histogram counts paid customers by whole days since the incident,
also in SQL (one row of conditional counts), its last bucket open-ended.

Reading the report is a read, never a change: what a regulator views or exports is recorded by
the web layer (payouts.web.app._register_regulator_view_log), as for every other page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from payouts.db.models import (
    AllocationRun,
    AllocationSource,
    Claim,
    Disbursement,
    Incident,
    InsuranceLayer,
    InsuranceReceivable,
    LossPosition,
)
from payouts.db.types import utcnow
from payouts.domain.claims import ClaimStatus
from payouts.domain.disbursements import DisbursementStatus
from payouts.domain.roles import BACK_OFFICE_READERS, Actor
from payouts.services.access import require_role
from payouts.services.incidents import find_incident

JST = ZoneInfo("Asia/Tokyo")
RESERVE = "reserve"
RECOVERY = "recovery"
DAY_SECONDS = 86_400
HOUR_SECONDS = 3_600
#: Closed one-day buckets of the histogram at most; one open-ended bucket follows them.
HISTOGRAM_DAYS = 30
#: Claims that will never be paid: they are neither paid nor "still unpaid".
CLOSED_UNPAID = (ClaimStatus.REJECTED.value, ClaimStatus.WITHDRAWN.value)


@dataclass(frozen=True)
class StateLine:
    """Claims in one state: how many, and the sum of their current totals in yen."""

    status: str
    count: int
    amount_jpy: int


@dataclass(frozen=True)
class SourceLine:
    """One source's money for the incident, over all of its committed runs.

    ``owed_jpy`` / ``received_jpy`` are what an insurance layer owes for the runs and has paid
    of it (None for the reserve and for recovered money, which are cash already held)."""

    source_id: str
    allocated_jpy: int
    owed_jpy: int | None
    received_jpy: int | None
    instructed_jpy: int
    paid_jpy: int

    @property
    def outstanding_jpy(self) -> int:
        """Allocated to customers and not yet paid to them."""
        return self.allocated_jpy - self.paid_jpy

    @property
    def is_layer(self) -> bool:
        return self.owed_jpy is not None


@dataclass(frozen=True)
class Duration:
    """A whole number of seconds, shown as days and hours."""

    seconds: int

    @property
    def days(self) -> int:
        return self.seconds // DAY_SECONDS

    @property
    def hours(self) -> int:
        """Hours beyond the whole days."""
        return self.seconds % DAY_SECONDS // HOUR_SECONDS

    @property
    def total_hours(self) -> int:
        return self.seconds // HOUR_SECONDS


@dataclass(frozen=True)
class Bucket:
    """Paid customers whose payment came ``start_day`` to ``end_day`` days after the incident
    (start included, end excluded); ``end_day`` None: that many days or more."""

    start_day: int
    end_day: int | None
    count: int


@dataclass(frozen=True)
class TimeToPayment:
    paid: int
    unpaid: int
    closed_unpaid: int
    fastest: Duration | None
    median: Duration | None
    p90: Duration | None
    slowest: Duration | None
    histogram: list[Bucket]

    @property
    def histogram_max(self) -> int:
        return max((b.count for b in self.histogram), default=0)


@dataclass(frozen=True)
class IncidentReport:
    incident: Incident
    occurred_at_jst: dt.datetime
    discovered_at_jst: dt.datetime
    generated_at_jst: dt.datetime
    customers_affected: int
    claims_by_state: list[StateLine]
    total_claimed_jpy: int
    runs: int
    eligible_jpy: int
    funded_jpy: int
    shortfall_jpy: int
    sources: list[SourceLine]
    time_to_payment: TimeToPayment

    @property
    def claims(self) -> int:
        return sum(s.count for s in self.claims_by_state)

    @property
    def allocated_jpy(self) -> int:
        return sum(s.allocated_jpy for s in self.sources)

    @property
    def instructed_jpy(self) -> int:
        return sum(s.instructed_jpy for s in self.sources)

    @property
    def paid_jpy(self) -> int:
        return sum(s.paid_jpy for s in self.sources)

    @property
    def outstanding_jpy(self) -> int:
        return sum(s.outstanding_jpy for s in self.sources)


def nearest_rank(percent: int, n: int) -> int:
    """The 1-based rank of the ``percent``-th percentile of ``n`` sorted values by the
    nearest-rank method: ceil(percent / 100 * n), at least 1. Integers only."""
    if n <= 0:
        raise ValueError("no values")
    if not 0 < percent <= 100:
        raise ValueError("percent must be in (0, 100]")
    return max(1, -(-percent * n // 100))


def whole_seconds(later: dt.datetime, earlier: dt.datetime) -> int:
    """``later - earlier`` in whole seconds, rounded down, never negative (exact: timedelta
    keeps days, seconds and microseconds as integers)."""
    delta = later - earlier
    return max(0, delta.days * DAY_SECONDS + delta.seconds)


def incident_report(session: Session, actor: Actor, incident_ref: str, *,
                    histogram_days: int = HISTOGRAM_DAYS) -> IncidentReport:
    """Everything a regulator's filing asks about one incident, as of now."""
    require_role(actor, BACK_OFFICE_READERS, "read the incident report")
    incident = find_incident(session, incident_ref)
    states = _claims_by_state(session, incident)
    claims = sum(s.count for s in states)
    customers = claims or int(session.scalar(
        select(func.count(func.distinct(LossPosition.customer_id)))
        .where(LossPosition.incident_id == incident.id)) or 0)
    runs, eligible, funded = session.execute(
        select(func.count(),
               func.coalesce(func.sum(case((AllocationRun.kind == "initial", AllocationRun.total_eligible_jpy),
                                           else_=0)), 0),
               func.coalesce(func.sum(AllocationRun.total_funded_jpy), 0))
        .where(AllocationRun.incident_id == incident.id)).one()
    return IncidentReport(
        incident=incident,
        occurred_at_jst=incident.occurred_at.astimezone(JST),
        discovered_at_jst=incident.discovered_at.astimezone(JST),
        generated_at_jst=utcnow().astimezone(JST),
        customers_affected=int(customers),
        claims_by_state=states,
        total_claimed_jpy=sum(s.amount_jpy for s in states),
        runs=int(runs),
        eligible_jpy=int(eligible),
        funded_jpy=int(funded),
        # Each later run shares money over what the runs before it left unpaid, so what is
        # still short is the initial run's eligible total less everything funded since.
        shortfall_jpy=int(eligible) - int(funded),
        sources=_sources(session, incident),
        time_to_payment=_time_to_payment(session, incident, histogram_days),
    )


def _claims_by_state(session: Session, incident: Incident) -> list[StateLine]:
    found = {status: (int(n), int(total or 0)) for status, n, total in session.execute(
        select(Claim.status, func.count(), func.sum(Claim.total_jpy))
        .where(Claim.incident_id == incident.id).group_by(Claim.status))}
    known = [s.value for s in ClaimStatus]
    return [StateLine(status, *found.get(status, (0, 0)))
            for status in known + sorted(set(found) - set(known))]


def _sources(session: Session, incident: Incident) -> list[SourceLine]:
    allocated = {s: int(v or 0) for s, v in session.execute(
        select(AllocationSource.source_id, func.sum(AllocationSource.used_jpy))
        .join(AllocationRun, AllocationRun.id == AllocationSource.run_id)
        .where(AllocationRun.incident_id == incident.id).group_by(AllocationSource.source_id))}
    receivables = {code: (int(owed or 0), int(received or 0)) for code, owed, received in session.execute(
        select(InsuranceLayer.code, func.sum(InsuranceReceivable.amount_jpy),
               func.sum(InsuranceReceivable.received_jpy))
        .join(InsuranceReceivable, InsuranceReceivable.layer_id == InsuranceLayer.id)
        .join(AllocationRun, AllocationRun.id == InsuranceReceivable.run_id)
        .where(AllocationRun.incident_id == incident.id).group_by(InsuranceLayer.code))}
    paid_status = DisbursementStatus.PAID.value
    disbursed = {s: (int(instructed or 0), int(paid or 0)) for s, instructed, paid in session.execute(
        select(Disbursement.source_id, func.sum(Disbursement.amount_jpy),
               func.sum(case((Disbursement.status == paid_status, Disbursement.amount_jpy), else_=0)))
        .where(Disbursement.incident_id == incident.id).group_by(Disbursement.source_id))}
    ids = set(allocated) | set(receivables) | set(disbursed)
    order = sorted(ids, key=lambda s: (s != RESERVE, s == RECOVERY, s))
    return [SourceLine(s, allocated.get(s, 0), receivables.get(s, (None, None))[0],
                       receivables.get(s, (None, None))[1], *disbursed.get(s, (0, 0)))
            for s in order]


def _time_to_payment(session: Session, incident: Incident, histogram_days: int) -> TimeToPayment:
    start = incident.occurred_at
    is_paid = (Claim.incident_id == incident.id) & (Claim.status == ClaimStatus.PAID.value) \
        & Claim.paid_at.is_not(None)
    paid, first, last = session.execute(
        select(func.count(), func.min(Claim.paid_at), func.max(Claim.paid_at)).where(is_paid)).one()
    paid = int(paid)
    unpaid, closed = session.execute(
        select(func.coalesce(func.sum(case((Claim.status.in_(CLOSED_UNPAID), 0), else_=1)), 0),
               func.coalesce(func.sum(case((Claim.status.in_(CLOSED_UNPAID), 1), else_=0)), 0))
        .where(Claim.incident_id == incident.id, ~is_paid)).one()
    if not paid:
        return TimeToPayment(0, int(unpaid), int(closed), None, None, None, None, [])

    def at_rank(rank: int) -> Duration:
        value = session.scalar(select(Claim.paid_at).where(is_paid)
                               .order_by(Claim.paid_at, Claim.id).offset(rank - 1).limit(1))
        assert value is not None
        return Duration(whole_seconds(value, start))

    slowest = Duration(whole_seconds(last, start))
    # Closed buckets up to the slowest payment's day (at most histogram_days), then "N+ days".
    closed_days = max(1, min(slowest.days + 1, histogram_days))
    bounds = [start + dt.timedelta(days=d) for d in range(1, closed_days + 1)]
    # Cumulative counts "paid before day d" in one row; the buckets are their differences.
    cumulative = session.execute(select(*[
        func.coalesce(func.sum(case((Claim.paid_at < literal(b, Claim.paid_at.type), 1), else_=0)), 0)
        for b in bounds]).where(is_paid)).one()
    below = [int(c) for c in cumulative]
    histogram = [Bucket(d, d + 1, below[d] - (below[d - 1] if d else 0)) for d in range(closed_days)]
    histogram.append(Bucket(closed_days, None, paid - below[-1]))
    return TimeToPayment(
        paid=paid, unpaid=int(unpaid), closed_unpaid=int(closed),
        fastest=Duration(whole_seconds(first, start)),
        median=at_rank(nearest_rank(50, paid)), p90=at_rank(nearest_rank(90, paid)),
        slowest=slowest, histogram=histogram)
