"""Allocation runs over the records: preview, commit, earmark, receivables, later money, races."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from payouts.db.models import AllocationLine, AllocationRun, AuditEvent, InsuranceReceivable
from payouts.db.session import make_session_factory
from payouts.domain.errors import ConflictError, PermissionDenied, ValidationError
from payouts.services import allocation, claims, funding, incidents
from payouts.services.loss_import import import_losses
from tests.conftest import REGULATOR, STAFF
from tests.helpers import approve_all_claims

T = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
# A copy of shared/spec/allocation-cases/10_priority_tranches_small_claims_first.json, so these
# database tests stand on their own; tests/unit/test_allocation_cases.py reads the originals.
CASE = Path(__file__).resolve().parents[1] / "data" / "allocation_case_priority_tranches.json"


def setup_case(session, case_path: Path = CASE):  # type: ignore[no-untyped-def]
    """Records that mirror a spec scenario with JPY losses: the run must reproduce it."""
    case = json.loads(case_path.read_text())
    inputs = case["inputs"]
    incidents.record_incident(session, STAFF, ref="INC-1", title="t", incident_type=inputs["incident_type"],
                              occurred_at=T, discovered_at=T)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="JPY", price="1", source="yen")
    rows = "".join(f"{c['id']},JPY,{p['amount_minor']}\n" for c in inputs["customers"] for p in c["positions"])
    report = import_losses(session, STAFF, "INC-1", io.BytesIO(("customer_ref,asset,amount\n" + rows).encode()), "f.csv")
    assert report.status == "imported", report.problems
    terms = inputs["customer_terms"]
    funding.set_terms(session, STAFF, incident_ref="INC-1", deductible_jpy=terms["deductible_jpy"],
                      cap_jpy=terms["cap_jpy"], tranches_jpy=",".join(map(str, inputs["priority_tranches_jpy"])))
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=inputs["reserve_jpy"], memo="cash")
    funding.create_policy(session, STAFF, policy_number="P-1", insurer="Tokio Test", period_start=dt.date(2026, 1, 1),
                          period_end=dt.date(2026, 12, 31))
    for layer in inputs["layers"]:
        funding.add_layer(session, STAFF, policy_number="P-1", code=layer["id"], attachment_jpy=layer["attachment_jpy"],
                          limit_jpy=layer["limit_jpy"], share=layer["share"],
                          aggregate_limit_jpy=layer["aggregate_remaining_jpy"],
                          excluded_incident_types=layer["excluded_incident_types"])
    approve_all_claims(session, STAFF, "INC-1")
    return case["expected"]


def test_preview_reproduces_the_spec_scenario_and_writes_nothing(session):  # type: ignore[no-untyped-def]
    expected = setup_case(session)
    events = session.scalar(select(func.count()).select_from(AuditEvent))
    preview = allocation.preview(session, STAFF, "INC-1")
    got = {c.id: c.payout_jpy for c in preview.result.customers}
    assert got == {c["id"]: c["payout_jpy"] for c in expected["customers"]}
    assert preview.result.total_funded_jpy == expected["total_funded_jpy"]
    assert session.scalar(select(func.count()).select_from(AllocationRun)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == events


def test_commit_stores_the_run_earmarks_and_records_receivables(session):  # type: ignore[no-untyped-def]
    expected = setup_case(session)
    preview = allocation.preview(session, STAFF, "INC-1")
    run = allocation.commit_allocation(session, STAFF, "INC-1", preview.digest)
    assert (run.total_eligible_jpy, run.total_funded_jpy, run.shortfall_jpy) == (
        expected["total_eligible_jpy"], expected["total_funded_jpy"], expected["shortfall_jpy"])
    lines = session.execute(select(AllocationLine.payout_jpy, AllocationLine.by_source)
                            .where(AllocationLine.run_id == run.id)).all()
    assert sum(p for p, _s in lines) == expected["total_funded_jpy"]
    by_source = [json.loads(s) for _p, s in lines]
    assert sum(s[0] for s in by_source) == expected["sources"][0]["used_jpy"]
    balance = funding.reserve_balance(session)
    assert balance.earmarked == expected["sources"][0]["used_jpy"]
    assert balance.available == 0
    receivable = session.scalar(select(InsuranceReceivable))
    assert receivable.amount_jpy == expected["sources"][1]["used_jpy"]
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "allocation.committed"))
    assert event.subject_id == "INC-1" and preview.digest in event.details


def test_second_commit_is_refused(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    allocation.commit_allocation(session, STAFF, "INC-1")
    with pytest.raises(ConflictError, match="already has a committed allocation"):
        allocation.commit_allocation(session, STAFF, "INC-1")


def test_commit_refuses_inputs_changed_since_the_preview(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    preview = allocation.preview(session, STAFF, "INC-1")
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=1, memo="one more yen")
    with pytest.raises(ConflictError, match="changed since the preview"):
        allocation.commit_allocation(session, STAFF, "INC-1", preview.digest)
    assert session.scalar(select(func.count()).select_from(AllocationRun)) == 0


def test_missing_price_is_named_when_claims_open(session):  # type: ignore[no-untyped-def]
    incidents.record_incident(session, STAFF, ref="INC-P", title="t", incident_type="hack",
                              occurred_at=T, discovered_at=T)
    import_losses(session, STAFF, "INC-P", io.BytesIO(b"customer_ref,asset,amount\nC009,BTC,1\n"), "g.csv")
    with pytest.raises(ValidationError, match="no reference price fixed for BTC"):
        claims.open_claims(session, STAFF, "INC-P")
    with pytest.raises(ValidationError, match="no approved claims"):
        allocation.preview(session, STAFF, "INC-P")


def test_regulator_may_preview_but_not_commit(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    allocation.preview(session, REGULATOR, "INC-1")
    with pytest.raises(PermissionDenied):
        allocation.commit_allocation(session, REGULATOR, "INC-1")


def test_the_aggregate_used_by_a_run_is_not_available_to_the_next(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    allocation.commit_allocation(session, STAFF, "INC-1")
    status = funding.tower(session, STAFF)[0]
    assert status.aggregate_used_jpy == 950001


def test_later_money_goes_to_unpaid_balances_and_reduces_nobody(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    first = allocation.commit_allocation(session, STAFF, "INC-1")
    before = dict(session.execute(select(AllocationLine.customer_id, AllocationLine.payout_jpy)
                                  .where(AllocationLine.run_id == first.id)).all())
    eligible = dict(session.execute(select(AllocationLine.customer_id, AllocationLine.eligible_jpy)
                                    .where(AllocationLine.run_id == first.id)).all())
    later = allocation.record_recovery(session, STAFF, incident_ref="INC-1", amount_jpy=1_000_003,
                                       source="funds recovered from the attacker's exchange account")
    extra = dict(session.execute(select(AllocationLine.customer_id, AllocationLine.payout_jpy)
                                 .where(AllocationLine.run_id == later.id)).all())
    assert sum(extra.values()) == 1_000_003
    for customer, paid in before.items():
        assert paid + extra.get(customer, 0) <= eligible[customer]
        assert extra.get(customer, 0) >= 0
    # Customers already paid in full get nothing more.
    full = [c for c, p in before.items() if p == eligible[c]]
    assert full and all(extra.get(c, 0) == 0 for c in full)


def test_later_money_beyond_what_is_unpaid_is_a_surplus(session):  # type: ignore[no-untyped-def]
    expected = setup_case(session)
    allocation.commit_allocation(session, STAFF, "INC-1")
    later = allocation.record_recovery(session, STAFF, incident_ref="INC-1", amount_jpy=10**9, source="big")
    assert later.total_funded_jpy == expected["shortfall_jpy"]
    assert json.loads(later.inputs_summary)["surplus_jpy"] == 10**9 - expected["shortfall_jpy"]


def test_recovery_needs_a_committed_run(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    with pytest.raises(ConflictError, match="no committed allocation"):
        allocation.record_recovery(session, STAFF, incident_ref="INC-1", amount_jpy=5, source="x")


def test_withdrawal_cannot_exceed_the_available_reserve(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    allocation.commit_allocation(session, STAFF, "INC-1")  # earmarks everything
    with pytest.raises(ValidationError) as error:
        funding.record_reserve_movement(session, STAFF, kind="withdrawal", amount_jpy=1, memo="x")
    assert error.value.field == "amount_jpy"


@pytest.mark.postgres
def test_two_concurrent_commits_one_wins(pg_engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    with factory() as session:
        setup_case(session)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def commit() -> None:
        with factory() as session:
            barrier.wait()
            try:
                allocation.commit_allocation(session, STAFF, "INC-1")
                outcomes.append("committed")
            except ConflictError as exc:
                outcomes.append(f"conflict: {exc}")

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.split(":")[0] for o in outcomes) == ["committed", "conflict"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(AllocationRun)) == 1
        assert funding.reserve_balance(session).earmarked == 1_000_000


@pytest.mark.postgres
def test_committed_runs_cannot_be_edited_on_postgresql(pg_engine):  # type: ignore[no-untyped-def]
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    factory = make_session_factory(pg_engine)
    with factory() as session:
        setup_case(session)
        allocation.commit_allocation(session, STAFF, "INC-1")
    for statement in ("UPDATE allocation_lines SET payout_jpy = payout_jpy + 1",
                      "DELETE FROM allocation_runs", "UPDATE allocation_sources SET used_jpy = 0"):
        with pg_engine.connect() as conn:
            with pytest.raises(DBAPIError, match="immutable once committed"):
                conn.execute(text(statement))


def test_inputs_are_frozen_once_an_allocation_is_committed(session):  # type: ignore[no-untyped-def]
    setup_case(session)
    allocation.commit_allocation(session, STAFF, "INC-1")
    with pytest.raises(ConflictError, match="losses can no longer change"):
        import_losses(session, STAFF, "INC-1", io.BytesIO(b"customer_ref,asset,amount\nC001,JPY,1\n"), "late.csv")
    with pytest.raises(ConflictError, match="reference prices can no longer change"):
        incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="JPY", price="2", source="s")
    with pytest.raises(ConflictError, match="compensation terms can no longer change"):
        funding.set_terms(session, STAFF, incident_ref="INC-1", deductible_jpy=1, cap_jpy=None, tranches_jpy="")


def test_policy_periods_are_japanese_dates(session):  # type: ignore[no-untyped-def]
    """An incident at 05:00 JST on 1 April is on the first day of an April policy, though it is
    still 31 March in UTC."""
    setup_case(session)
    occurred = dt.datetime(2026, 3, 31, 20, 0, tzinfo=dt.timezone.utc)  # 2026-04-01 05:00 JST
    incidents.record_incident(session, STAFF, ref="INC-APR", title="t", incident_type="hack",
                              occurred_at=occurred, discovered_at=occurred)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-APR", asset_code="JPY", price="1", source="yen")
    import_losses(session, STAFF, "INC-APR", io.BytesIO(b"customer_ref,asset,amount\nX1,JPY,5000000\n"), "apr.csv")
    approve_all_claims(session, STAFF, "INC-APR")
    funding.create_policy(session, STAFF, policy_number="P-APR", insurer="April Re",
                          period_start=dt.date(2026, 4, 1), period_end=dt.date(2027, 3, 31))
    funding.add_layer(session, STAFF, policy_number="P-APR", code="APR1", attachment_jpy=0, limit_jpy=10**7,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    funding.create_policy(session, STAFF, policy_number="P-MAR", insurer="March Re",
                          period_start=dt.date(2025, 4, 1), period_end=dt.date(2026, 3, 31))
    funding.add_layer(session, STAFF, policy_number="P-MAR", code="MAR1", attachment_jpy=0, limit_jpy=10**7,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    layers = [s.id for s in allocation.preview(session, STAFF, "INC-APR").result.sources]
    assert "APR1" in layers  # in force from 1 April (JST)
    assert "MAR1" not in layers  # ended on 31 March (JST), the UTC date of the incident
