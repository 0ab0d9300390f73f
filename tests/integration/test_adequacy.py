"""Reserve adequacy over the records: rule versions, inputs, the requirement at a date, stress tests."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from sqlalchemy import func, select

from payouts.db.models import AuditEvent, StressTest, TradingVolume
from payouts.domain.errors import PermissionDenied, ValidationError
from payouts.domain.incidents import business_date
from payouts.services import adequacy, funding
from payouts.services.demo import DEMO_RULE
from tests.conftest import REGULATOR, STAFF

# The reserve balance on a date comes from ledger entries made before its end, and the seed's
# deposit is made now: the tests work on today's date in Japan, whatever day they run.
TODAY = business_date(dt.datetime.now(dt.timezone.utc))


def month(back: int) -> dt.date:
    """The first day of the month ``back`` months before this one."""
    index = TODAY.year * 12 + TODAY.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def seed(session, rule=None):  # type: ignore[no-untyped-def]
    adequacy.set_rule(session, STAFF, effective_from=month(10), params=rule or DEMO_RULE,
                      rationale="test", illustrative=True)
    for back in range(11):
        adequacy.record_volume(session, STAFF, month=month(back), market="spot", volume_jpy=100_000_000_000)
    adequacy.record_snapshot(session, STAFF, as_of=month(0), wallet="cold", value_jpy=100_000_000_000)
    adequacy.record_snapshot(session, STAFF, as_of=month(0), wallet="hot", value_jpy=10_000_000_000)
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=3_000_000_000, memo="reserve")


def test_requirement_from_the_records(session):  # type: ignore[no-untyped-def]
    seed(session)
    result = adequacy.adequacy(session, STAFF, TODAY)
    r = result.requirement
    # spot: 11 months x ¥100bn x 0.0002; cold ¥100bn x 0.005; hot ¥10bn x 0.05; no incidents.
    assert r.volume_part_jpy == 220_000_000
    assert r.holdings_part_jpy == 500_000_000 + 500_000_000
    assert r.sum_jpy == 1_220_000_000
    assert (r.gross_requirement_jpy, r.binding) == (2_000_000_000, "floor")
    assert r.insurance_offset_jpy == 0 and r.cash_requirement_jpy == 2_000_000_000
    assert r.reserve_balance_jpy == 3_000_000_000 and r.surplus_jpy == 1_000_000_000 and r.met


def test_only_the_trailing_twelve_months_count(session):  # type: ignore[no-untyped-def]
    seed(session)
    adequacy.record_volume(session, STAFF, month=month(12), market="spot", volume_jpy=10**12)
    assert adequacy.adequacy(session, STAFF, TODAY).requirement.volume_part_jpy == 220_000_000
    # At the end of last month the window starts a month earlier: ¥1tn + 10 x ¥100bn at 0.0002.
    last_month = adequacy.adequacy(session, STAFF, month(0) - dt.timedelta(days=1))
    assert last_month.requirement.volume_part_jpy == 400_000_000
    assert last_month.requirement.reserve_balance_jpy == 0  # the deposit was made later


def test_insurance_offsets_at_most_what_the_rule_allows(session):  # type: ignore[no-untyped-def]
    seed(session)
    funding.create_policy(session, STAFF, policy_number="P", insurer="I", period_start=month(12),
                          period_end=TODAY + dt.timedelta(days=365))
    funding.add_layer(session, STAFF, policy_number="P", code="L1", attachment_jpy=0, limit_jpy=10_000_000_000,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    r = adequacy.adequacy(session, STAFF, TODAY).requirement
    assert r.insurance_available_jpy == 8_000_000_000
    assert r.insurance_offset_jpy == 1_000_000_000  # half of the ¥2bn gross
    assert r.cash_requirement_jpy == 1_000_000_000


def test_policies_outside_the_qualifying_list_do_not_count(session):  # type: ignore[no-untyped-def]
    seed(session, rule={**DEMO_RULE, "qualifying_policies": ["OTHER"]})
    funding.create_policy(session, STAFF, policy_number="P", insurer="I", period_start=month(12),
                          period_end=TODAY + dt.timedelta(days=365))
    funding.add_layer(session, STAFF, policy_number="P", code="L1", attachment_jpy=0, limit_jpy=10**10,
                      share="1", aggregate_limit_jpy=None, excluded_incident_types=[])
    assert adequacy.adequacy(session, STAFF, TODAY).requirement.insurance_offset_jpy == 0


def test_no_rule_no_requirement_and_versions_by_date(session):  # type: ignore[no-untyped-def]
    assert adequacy.adequacy(session, STAFF, TODAY) is None
    seed(session)
    adequacy.set_rule(session, STAFF, effective_from=TODAY, params={**DEMO_RULE, "floor_jpy": 5 * 10**9},
                      rationale="published", illustrative=False)
    assert adequacy.adequacy(session, STAFF, TODAY - dt.timedelta(days=1)).rule.version == 1
    later = adequacy.adequacy(session, STAFF, TODAY)
    assert later.rule.version == 2 and later.requirement.gross_requirement_jpy == 5 * 10**9
    assert [e.action for e in session.scalars(select(AuditEvent).where(
        AuditEvent.action == "reserve_rule.versioned"))] == ["reserve_rule.versioned"] * 2


@pytest.mark.parametrize("change, field", [
    ({"hot_wallet_rate": "-0.1"}, "hot_wallet_rate"),
    ({"insurance_max_share": "1.5"}, "insurance_max_share"),
    ({"cap_jpy": 1}, "cap_jpy"),
    ({"cold_wallet_rate": 0.005}, "cold_wallet_rate"),
    ({"qualifying_policies": "P"}, "qualifying_policies"),
])
def test_bad_rules_are_refused_naming_the_field(session, change, field):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as error:
        adequacy.set_rule(session, STAFF, effective_from=TODAY, params={**DEMO_RULE, **change}, rationale="x",
                          illustrative=True)
    assert error.value.field == field
    assert adequacy.rule_versions(session, STAFF) == []


def test_inputs_csv_is_all_or_nothing(session):  # type: ignore[no-untyped-def]
    good = b"month,market,volume_jpy\n2026-01,spot,100\n2026-02,spot,200\n"
    assert adequacy.import_inputs(session, STAFF, "volumes", io.BytesIO(good)) == 2
    bad = b"month,market,volume_jpy\n2026-03,spot,300\n2026-04,spot,-1\n"
    with pytest.raises(ValidationError, match="line 3"):
        adequacy.import_inputs(session, STAFF, "volumes", io.BytesIO(bad))
    assert session.scalar(select(func.count()).select_from(TradingVolume)) == 2
    with pytest.raises(ValidationError, match="line 1"):
        adequacy.import_inputs(session, STAFF, "snapshots", io.BytesIO(good))
    snaps = b"as_of,wallet,value_jpy\n2026-11-01,cold,5\n2026-11-01,warm,5\n"
    with pytest.raises(ValidationError, match="line 3: wallet must be cold or hot"):
        adequacy.import_inputs(session, STAFF, "snapshots", io.BytesIO(snaps))


def test_stress_test_runs_the_engine_and_is_stored(session):  # type: ignore[no-untyped-def]
    seed(session)
    row = adequacy.run_stress_test(session, STAFF, preset=None, wallet="hot", share_lost="0.5", customers=1000,
                                   tranches_jpy="200000,1000000", label="half the hot wallet")
    assert row.loss_jpy == 5_000_000_000
    assert row.funded_jpy == 3_000_000_000 and row.shortfall_jpy == 2_000_000_000
    details = json.loads(row.details)
    assert details["sources"][0] == {"id": "reserve", "available_jpy": 3_000_000_000, "used_jpy": 3_000_000_000}
    tranches = details["tranche_payout"]
    assert sum(t["paid_jpy"] for t in tranches) == 3_000_000_000
    assert tranches[0]["paid_percent"] == 100  # small claims first
    assert session.scalar(select(func.count()).select_from(StressTest)) == 1
    assert "half the hot wallet" in adequacy.stress_csv([row])


def test_stress_test_presets_and_bad_input(session):  # type: ignore[no-untyped-def]
    seed(session)
    row = adequacy.run_stress_test(session, STAFF, preset="dmm-2024", wallet=None, share_lost=None, customers=500,
                                   tranches_jpy="", label="")
    assert row.preset == "dmm-2024" and row.wallet == "hot"
    for kwargs, field in (({"preset": "nope"}, "preset"), ({"share_lost": "1.5"}, "share_lost"),
                          ({"customers": 0}, "customers"), ({"wallet": "warm"}, "wallet")):
        args = {"preset": None, "wallet": "hot", "share_lost": "0.1", "customers": 10, "tranches_jpy": "",
                "label": "", **kwargs}
        with pytest.raises(ValidationError) as error:
            adequacy.run_stress_test(session, STAFF, **args)
        assert error.value.field == field


def test_regulator_reads_but_cannot_change(session):  # type: ignore[no-untyped-def]
    seed(session)
    assert adequacy.adequacy(session, REGULATOR, TODAY) is not None
    with pytest.raises(PermissionDenied):
        adequacy.set_rule(session, REGULATOR, effective_from=TODAY, params=DEMO_RULE, rationale="x", illustrative=True)
    with pytest.raises(PermissionDenied):
        adequacy.run_stress_test(session, REGULATOR, preset="dmm-2024", wallet=None, share_lost=None, customers=10,
                                 tranches_jpy="", label="")


def test_history_gives_a_point_per_month(session):  # type: ignore[no-untyped-def]
    seed(session)
    points = adequacy.history(session, STAFF, months=12, today=TODAY)
    assert len(points) == 12 and points[-1][0] == TODAY
    assert points[0][1] is None  # eleven months ago: no rule in force yet
    assert all(a is not None for _d, a in points[1:])


def test_a_later_commit_does_not_rewrite_a_past_date(session):  # type: ignore[no-untyped-def]
    """Insurance aggregate used and incident losses count from the moment the run is committed."""
    from payouts.services import allocation, incidents
    from payouts.services.loss_import import import_losses

    seed(session)
    funding.create_policy(session, STAFF, policy_number="P", insurer="I", period_start=month(12),
                          period_end=TODAY + dt.timedelta(days=365))
    funding.add_layer(session, STAFF, policy_number="P", code="L1", attachment_jpy=0, limit_jpy=10**10,
                      share="1", aggregate_limit_jpy=10**10, excluded_incident_types=[])
    yesterday = TODAY - dt.timedelta(days=1)
    before = adequacy.adequacy(session, STAFF, yesterday).requirement
    occurred = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    incidents.record_incident(session, STAFF, ref="INC-X", title="t", incident_type="hack", occurred_at=occurred,
                              discovered_at=occurred)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-X", asset_code="JPY", price="1", source="yen")
    import_losses(session, STAFF, "INC-X", io.BytesIO(b"customer_ref,asset,amount\nX1,JPY,9000000000\n"), "x.csv")
    from tests.helpers import approve_all_claims

    approve_all_claims(session, STAFF, "INC-X")
    allocation.commit_allocation(session, STAFF, "INC-X")
    assert adequacy.adequacy(session, STAFF, yesterday).requirement == before
    now = adequacy.adequacy(session, STAFF, TODAY).requirement
    assert now.incident_part_jpy == 4_500_000_000  # half of the ¥9bn lost, counted from today
    assert dict(now.layer_credits)["L1"] < dict(before.layer_credits)["L1"]  # aggregate used today


def test_csv_exports_defuse_spreadsheet_formulas(session):  # type: ignore[no-untyped-def]
    seed(session)
    row = adequacy.run_stress_test(session, STAFF, preset=None, wallet="hot", share_lost="0.1", customers=10,
                                   tranches_jpy="", label="=HYPERLINK(\"http://evil\")")
    exported = adequacy.stress_csv([row])
    assert "'=HYPERLINK" in exported and ",=HYPERLINK" not in exported


def test_a_malformed_inputs_csv_names_its_line(session):  # type: ignore[no-untyped-def]
    bad = b'month,market,volume_jpy\n2026-01,spot,1\n2026-02,"spot,2\n'
    with pytest.raises(ValidationError, match="line 3"):
        adequacy.import_inputs(session, STAFF, "volumes", io.BytesIO(bad))
