"""Demo data for `make run`: one incident with a few thousand customers and a login per role.

Idempotent: loading twice changes nothing but the demo passwords, which are drawn afresh on
every load and printed, so no password lives in the code or the repository.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.db.models import Incident, ReferencePrice, User
from payouts.domain.roles import SYSTEM_ACTOR, Role
from payouts.domain.sample_losses import customer_ref, loss_file_bytes
from payouts.services import adequacy, funding, incidents, loss_import, users

DEMO_INCIDENT = "DEMO-2026-01"
DEMO_CUSTOMERS = 3000
DEMO_PRICES = {
    "JPY": ("1", "Yen is its own price"),
    "BTC": ("14250000", "VWAP of BTC/JPY on the exchange, 2026-10-01 00:00-12:00 JST"),
    "ETH": ("512300.5", "VWAP of ETH/JPY on the exchange, 2026-10-01 00:00-12:00 JST"),
}
DEMO_LOGINS = (
    ("staff@demo.payouts", "Demo Staff", Role.STAFF, None),
    ("approver@demo.payouts", "Demo Approver", Role.APPROVER, None),
    ("admin@demo.payouts", "Demo Admin", Role.ADMIN, None),
    ("regulator@demo.payouts", "Demo Regulator (FSA)", Role.REGULATOR, None),
    ("customer@demo.payouts", "Demo Customer", Role.CUSTOMER, customer_ref(1)),
)


@dataclass(frozen=True)
class Login:
    username: str
    role: str
    password: str


def load_demo(session: Session, n_customers: int = DEMO_CUSTOMERS) -> list[Login]:
    actor = SYSTEM_ACTOR
    if session.scalar(select(Incident.id).where(Incident.ref == DEMO_INCIDENT)) is None:
        occurred = dt.datetime(2026, 10, 1, 3, 12, tzinfo=dt.timezone.utc)
        incidents.record_incident(
            session,
            actor,
            ref=DEMO_INCIDENT,
            title="Hot wallet compromise (demo)",
            incident_type="hack",
            occurred_at=occurred,
            discovered_at=occurred + dt.timedelta(hours=2, minutes=40),
            description="Unauthorised withdrawals of BTC, ETH and JPY from the hot wallet.",
        )
    incident = incidents.get_incident(session, actor, DEMO_INCIDENT)
    have = {p.asset_code for p in session.scalars(
        select(ReferencePrice).where(ReferencePrice.incident_id == incident.id))}
    for code, (price, source) in DEMO_PRICES.items():
        if code not in have:
            incidents.set_reference_price(
                session, actor, incident_ref=DEMO_INCIDENT, asset_code=code, price=price, source=source
            )
    # The same bytes every time: a second load is recognised as already imported.
    report = loss_import.import_losses(
        session, actor, DEMO_INCIDENT, io.BytesIO(loss_file_bytes(n_customers)), "demo-ledger.csv"
    )
    if not report.ok:
        raise RuntimeError(f"demo loss file rejected: {report.problems[:3]}")
    _ensure_funding(session, incident.id)
    _ensure_adequacy(session)
    return [_ensure_login(session, *spec) for spec in DEMO_LOGINS]


#: Illustrative rule parameters (docs/reserve-rule.md explains each choice).
DEMO_RULE = {
    "volume_rates": [{"market": "spot", "rate": "0.0002"}, {"market": "margin", "rate": "0.0004"},
                     {"market": "*", "rate": "0.0002"}],
    "cold_wallet_rate": "0.005", "hot_wallet_rate": "0.05", "incident_multiple": "0.5",
    "incident_lookback_years": 3, "floor_jpy": 2_000_000_000, "cap_jpy": 40_000_000_000,
    "insurance_credit_ratio": "0.8", "insurance_max_share": "0.5", "qualifying_policies": None,
}


def _ensure_adequacy(session: Session) -> None:
    """A mid-sized exchange: a year of volumes, wallet holdings, one past incident, a rule."""
    actor = SYSTEM_ACTOR
    if not adequacy.rule_versions(session, actor):
        adequacy.set_rule(session, actor, effective_from=dt.date(2025, 4, 1), params=DEMO_RULE, illustrative=True,
                          rationale="Illustrative until the FSA publishes its formula: scaled so that a "
                                    "mid-sized exchange lands between the ¥2bn floor and ¥40bn cap reported "
                                    "for large securities firms.")
    if not adequacy.volumes(session, actor):
        today = dt.date.today().replace(day=1)
        for back in range(14):
            index = today.year * 12 + today.month - 1 - back
            month = dt.date(index // 12, index % 12 + 1, 1)
            wobble = 90 + (back * 7) % 25  # between 90% and 114% of the usual month
            adequacy.record_volume(session, actor, month=month, market="spot",
                                   volume_jpy=300_000_000_000 * wobble // 100)
            adequacy.record_volume(session, actor, month=month, market="margin",
                                   volume_jpy=600_000_000_000 * wobble // 100)
    if not adequacy.snapshots(session, actor):
        as_of = dt.date.today() - dt.timedelta(days=1)
        adequacy.record_snapshot(session, actor, as_of=as_of, wallet="cold", value_jpy=180_000_000_000)
        adequacy.record_snapshot(session, actor, as_of=as_of, wallet="hot", value_jpy=12_000_000_000)
    if not adequacy.external_incidents(session, actor):
        adequacy.record_external_incident(session, actor, occurred_on=dt.date.today() - dt.timedelta(days=700),
                                          loss_jpy=1_200_000_000,
                                          description="Operational failure in a deposit wallet (demo history)")


def _ensure_funding(session: Session, incident_id: int) -> None:
    """A reserve, a three-layer tower and terms that leave the demo incident a little short,
    so a preview shows the waterfall, the tranches and a haircut at work."""
    actor = SYSTEM_ACTOR
    if funding.reserve_balance(session).deposits == 0:
        funding.record_reserve_movement(session, actor, kind="deposit", amount_jpy=4_000_000_000,
                                        memo="FY2026 liability reserve (demo)")
    if not funding.policies(session, actor):
        funding.create_policy(session, actor, policy_number="DEMO-CYBER-2026", insurer="Demo Marine & Fire",
                              period_start=dt.date(2026, 4, 1), period_end=dt.date(2027, 3, 31))
        for code, attachment, limit, share, aggregate, excluded in (
            ("L1", 3_000_000_000, 3_000_000_000, "1", 5_000_000_000, []),
            ("L2", 6_000_000_000, 4_000_000_000, "0.5", None, ["insider_fraud"]),
            ("L3", 10_000_000_000, 5_000_000_000, "1", 1_000_000_000, []),
        ):
            funding.add_layer(session, actor, policy_number="DEMO-CYBER-2026", code=code,
                              attachment_jpy=attachment, limit_jpy=limit, share=share,
                              aggregate_limit_jpy=aggregate, excluded_incident_types=excluded)
    if funding.get_terms(session, incident_id) is None:
        funding.set_terms(session, actor, incident_ref=DEMO_INCIDENT, deductible_jpy=0, cap_jpy=None,
                          tranches_jpy="200000,1000000")


def _ensure_login(
    session: Session, username: str, display: str, role: Role, ref: str | None
) -> Login:
    password = secrets.token_urlsafe(12)
    existing = session.scalar(select(User).where(User.username == username))
    if existing is None:
        users.create_user(
            session, SYSTEM_ACTOR, username=username, display_name=display, role=role,
            password=password, customer_ref=ref,
        )
    else:
        users.set_password(session, SYSTEM_ACTOR, username, password)
    return Login(username, role.value, password)
