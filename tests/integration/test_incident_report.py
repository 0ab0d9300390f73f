"""The per-incident report over the records: claims by state, amounts by source reconciled with
the disbursements, and time to payment (nearest-rank median and 90th percentile, histogram)
on paid_at values set directly. Runs on SQLite and on PostgreSQL (PAYOUTS_TEST_DATABASE_URL).
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from payouts.db.models import Claim, Customer, Disbursement
from payouts.domain.errors import NotFoundError, PermissionDenied
from payouts.domain.roles import Actor, Role
from payouts.services import allocation, claims, disbursements, incidents
from payouts.services.incident_report import Bucket, incident_report, nearest_rank, whole_seconds
from payouts.services.loss_import import import_losses
from tests.conftest import REGULATOR, STAFF
from tests.integration.test_allocation_runs import setup_case
from tests.integration.test_disbursements import L1_PARTS, RESERVE_PARTS, give_accounts, inline_dispatch

T = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
DAY, HOUR = 86_400, 3_600


def report(session: Session, actor: Actor = STAFF, ref: str = "INC-1", **kw):  # type: ignore[no-untyped-def]
    """The report, with the read transaction ended (SQLite: the inline jobs need the lock)."""
    result = incident_report(session, actor, ref, **kw)
    session.commit()
    return result


def by_source(r):  # type: ignore[no-untyped-def]
    return {s.source_id: (s.allocated_jpy, s.owed_jpy, s.received_jpy, s.instructed_jpy, s.paid_jpy,
                          s.outstanding_jpy) for s in r.sources}


def disbursed(session: Session, source: str, status: str | None = None) -> int:
    where = [Disbursement.source_id == source] + ([Disbursement.status == status] if status else [])
    value = session.scalar(select(func.coalesce(func.sum(Disbursement.amount_jpy), 0)).where(*where))
    session.commit()
    return int(value)


def test_nearest_rank_is_integer_arithmetic() -> None:
    assert [nearest_rank(50, n) for n in (1, 2, 3, 10, 11)] == [1, 1, 2, 5, 6]
    assert [nearest_rank(90, n) for n in (1, 2, 9, 10, 11, 1_000_000, 1_000_001)] == [1, 2, 9, 9, 10, 900_000, 900_001]
    assert nearest_rank(100, 7) == 7
    with pytest.raises(ValueError):
        nearest_rank(50, 0)
    assert whole_seconds(T + dt.timedelta(days=2, seconds=5, microseconds=999_999), T) == 2 * DAY + 5
    assert whole_seconds(T - dt.timedelta(seconds=1), T) == 0


def test_amounts_by_source_follow_the_money_and_reconcile(session, engine, db_url, tmp_path):  # type: ignore[no-untyped-def]
    expected = setup_case(session)
    give_accounts(session)
    before = report(session)
    assert before.customers_affected == 5 and before.runs == 0 and before.sources == []
    assert (before.eligible_jpy, before.funded_jpy, before.shortfall_jpy) == (0, 0, 0)
    assert before.time_to_payment.paid == 0 and before.time_to_payment.unpaid == 5
    assert before.time_to_payment.median is None and before.time_to_payment.histogram == []

    dispatch = inline_dispatch(engine, db_url, tmp_path)
    allocation.commit_allocation(session, STAFF, "INC-1", batch_size=2, dispatch=dispatch)
    disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                         amount_jpy=500_000, batch_size=2, dispatch=dispatch)
    r = report(session)
    # Claims: every one approved, their totals the ledger's losses in yen.
    states = {s.status: (s.count, s.amount_jpy) for s in r.claims_by_state}
    assert states["approved"] == (5, 6_950_000)
    assert sum(n for n, _a in states.values()) == r.claims == r.customers_affected == 5
    assert r.total_claimed_jpy == 6_950_000
    assert (r.eligible_jpy, r.funded_jpy, r.shortfall_jpy) == (
        expected["total_eligible_jpy"], expected["total_funded_jpy"], expected["shortfall_jpy"])
    reserve, l1 = sum(RESERVE_PARTS.values()), sum(L1_PARTS.values())
    # The reserve's part is paid; the insurer has paid part of its layer, so none of it is instructed.
    assert by_source(r) == {"reserve": (reserve, None, None, reserve, reserve, 0),
                            "L1": (l1, l1, 500_000, 0, 0, l1)}
    assert [s.source_id for s in r.sources] == ["reserve", "L1"]
    assert r.paid_jpy == disbursed(session, "reserve", "paid") + disbursed(session, "L1", "paid") == reserve
    assert r.outstanding_jpy == r.funded_jpy - r.paid_jpy == l1
    recon = disbursements.reconcile(session, REGULATOR, "INC-1")
    session.commit()
    assert r.paid_jpy == recon.paid_jpy and r.instructed_jpy == recon.instructed_jpy
    assert {s.source_id: s.instructed_jpy for s in recon.sources} == {s.source_id: s.instructed_jpy for s in r.sources}
    assert r.time_to_payment.paid == 0 and r.time_to_payment.unpaid == 5  # nobody is paid in full yet

    disbursements.record_insurer_payment(session, STAFF, incident_ref="INC-1", layer_code="L1",
                                         amount_jpy=450_001, batch_size=2, dispatch=dispatch)
    r = report(session, REGULATOR)  # regulators read it too
    assert by_source(r) == {"reserve": (reserve, None, None, reserve, reserve, 0),
                            "L1": (l1, l1, l1, l1, l1, 0)}
    for source in ("reserve", "L1"):
        line = next(s for s in r.sources if s.source_id == source)
        assert line.paid_jpy == disbursed(session, source, "paid") == disbursed(session, source)
    assert r.paid_jpy == r.funded_jpy and r.outstanding_jpy == 0
    states = {s.status: s.count for s in r.claims_by_state}
    assert states["paid"] == 5 and states["approved"] == 0
    t = r.time_to_payment
    assert (t.paid, t.unpaid, t.closed_unpaid) == (5, 0, 0)
    assert t.median is not None and t.p90 is not None and t.fastest.seconds <= t.median.seconds <= t.p90.seconds
    assert sum(b.count for b in t.histogram) == 5 and t.histogram[-1].end_day is None


# --- time to payment on known paid_at values -------------------------------------------------

#: Seconds after the incident at which each paid customer was paid (plus a fraction of a second
#: on some: rounded down). Sorted: the median is the 6th of 11, the 90th percentile the 10th.
PAID_AFTER = [
    dt.timedelta(minutes=30),
    dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=500_000),
    dt.timedelta(days=1),
    dt.timedelta(days=1, hours=6),
    dt.timedelta(days=2),
    dt.timedelta(days=2, hours=5, minutes=30, microseconds=1),
    dt.timedelta(days=3, hours=1),
    dt.timedelta(days=3, hours=2),
    dt.timedelta(days=7),
    dt.timedelta(days=12, hours=7, minutes=15, microseconds=750_000),
    dt.timedelta(days=45),
]
OTHER_STATES = ["approved", "rejected", "open"]


def seed_paid_incident(session: Session) -> dict[str, int]:
    """INC-2 with 14 customers (customer i lost i × ¥1,000), claims open, then written directly:
    11 paid at PAID_AFTER (in shuffled order), one approved, one rejected, one open."""
    incidents.record_incident(session, STAFF, ref="INC-2", title="Known times", incident_type="operational_failure",
                              occurred_at=T, discovered_at=T + dt.timedelta(hours=3))
    incidents.set_reference_price(session, STAFF, incident_ref="INC-2", asset_code="JPY", price="1", source="yen")
    n = len(PAID_AFTER) + len(OTHER_STATES)
    rows = "".join(f"K{i:02d},JPY,{i * 1000}\n" for i in range(1, n + 1))
    result = import_losses(session, STAFF, "INC-2", io.BytesIO(("customer_ref,asset,amount\n" + rows).encode()), "k.csv")
    assert result.status == "imported", result.problems
    claims.open_claims(session, STAFF, "INC-2")
    ids = dict(session.execute(select(Customer.external_ref, Claim.id).join(Claim, Claim.customer_id == Customer.id)).all())
    order = [7, 2, 10, 0, 5, 9, 1, 3, 8, 4, 6]  # paid_at not in claim-id order
    for k, index in enumerate(order, start=1):
        session.execute(update(Claim).where(Claim.id == ids[f"K{k:02d}"])
                        .values(status="paid", paid_at=T + PAID_AFTER[index]))
    for k, state in enumerate(OTHER_STATES, start=len(PAID_AFTER) + 1):
        session.execute(update(Claim).where(Claim.id == ids[f"K{k:02d}"]).values(status=state))
    session.commit()
    return ids


def test_claims_by_state_counts_and_totals(session):  # type: ignore[no-untyped-def]
    seed_paid_incident(session)
    r = report(session, ref="INC-2")
    states = {s.status: (s.count, s.amount_jpy) for s in r.claims_by_state}
    paid_total = sum(k * 1000 for k in range(1, 12))
    assert states["paid"] == (11, paid_total)
    assert states["approved"] == (1, 12_000) and states["rejected"] == (1, 13_000) and states["open"] == (1, 14_000)
    assert {s for s, (n, _a) in states.items() if n == 0} == {"accepted", "disputed", "needs_information",
                                                               "under_review", "withdrawn"}
    assert r.claims == r.customers_affected == 14
    assert r.total_claimed_jpy == sum(k * 1000 for k in range(1, 15))
    assert r.occurred_at_jst.utcoffset() == dt.timedelta(hours=9)
    assert r.occurred_at_jst.strftime("%Y-%m-%d %H:%M") == "2026-03-01 09:00"
    assert r.discovered_at_jst.strftime("%H:%M") == "12:00"
    assert r.sources == [] and r.runs == 0


def test_median_and_90th_percentile_by_nearest_rank_on_whole_seconds(session):  # type: ignore[no-untyped-def]
    seed_paid_incident(session)
    t = report(session, ref="INC-2").time_to_payment
    assert (t.paid, t.unpaid, t.closed_unpaid) == (11, 2, 1)  # approved and open wait; rejected never will
    seconds = sorted(d.days * DAY + d.seconds for d in PAID_AFTER)
    assert t.median.seconds == seconds[nearest_rank(50, 11) - 1] == 2 * DAY + 5 * HOUR + 30 * 60
    assert (t.median.days, t.median.hours, t.median.total_hours) == (2, 5, 53)
    assert t.p90.seconds == seconds[nearest_rank(90, 11) - 1] == 12 * DAY + 7 * HOUR + 15 * 60
    assert (t.p90.days, t.p90.hours) == (12, 7)
    assert t.fastest.seconds == 1800 and t.slowest.seconds == 45 * DAY
    assert all(isinstance(d.seconds, int) for d in (t.fastest, t.median, t.p90, t.slowest))


def test_histogram_by_day_with_an_open_ended_last_bucket(session):  # type: ignore[no-untyped-def]
    seed_paid_incident(session)
    t = report(session, ref="INC-2").time_to_payment
    assert len(t.histogram) == 31  # 30 closed days (the slowest is past them), then "30 days or more"
    assert t.histogram[0] == Bucket(0, 1, 2)  # 23:59:59.5 is still day 0
    assert t.histogram[1] == Bucket(1, 2, 2)  # exactly one day is day 1
    counts = {b.start_day: b.count for b in t.histogram if b.count}
    assert counts == {0: 2, 1: 2, 2: 2, 3: 2, 7: 1, 12: 1, 30: 1}
    assert t.histogram[-1] == Bucket(30, None, 1)
    assert sum(b.count for b in t.histogram) == t.paid
    assert t.histogram_max == 2

    short = report(session, ref="INC-2", histogram_days=5).time_to_payment.histogram
    assert [(b.start_day, b.end_day, b.count) for b in short] == [
        (0, 1, 2), (1, 2, 2), (2, 3, 2), (3, 4, 2), (4, 5, 0), (5, None, 3)]

    # When everyone was paid within a few days, the closed buckets stop at the slowest day.
    session.execute(update(Claim).where(Claim.paid_at > T + dt.timedelta(days=4))
                    .values(paid_at=T + dt.timedelta(days=3, hours=23)))
    session.commit()
    t = report(session, ref="INC-2").time_to_payment
    assert [(b.start_day, b.end_day, b.count) for b in t.histogram] == [
        (0, 1, 2), (1, 2, 2), (2, 3, 2), (3, 4, 5), (4, None, 0)]
    assert t.p90.seconds == 3 * DAY + 23 * HOUR and t.median.seconds == 2 * DAY + 5 * HOUR + 30 * 60


def test_only_the_back_office_reads_it(session):  # type: ignore[no-untyped-def]
    seed_paid_incident(session)
    with pytest.raises(PermissionDenied):
        incident_report(session, Actor(label="k01", role=Role.CUSTOMER), "INC-2")
    with pytest.raises(NotFoundError):
        incident_report(session, STAFF, "NOPE")
    assert report(session, REGULATOR, "INC-2").claims == 14
