"""Demo data for `make run`: one incident with a few thousand customers and a login per role.

Idempotent: loading twice changes nothing but the demo passwords, which are drawn afresh on
every load and printed, so no password lives in the code or the repository.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_events
from payouts.db.models import Claim, Customer, Incident, PayingAccount, PayoutDestination, ReferencePrice, User
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.claims import FourEyesPolicy
from payouts.domain.roles import SYSTEM_ACTOR, Actor, Role
from payouts.domain.sample_losses import customer_ref, loss_file_bytes
from payouts.services import activation, adequacy, funding, incidents, loss_import, users, zengin_files
from payouts.services import claims as claims_service

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
        if code not in have and incident.status == "recorded":
            incidents.set_reference_price(
                session, actor, incident_ref=DEMO_INCIDENT, asset_code=code, price=price, source=source
            )
    if incident.status == "recorded":
        # The same bytes every time: a second load is recognised as already imported.
        report = loss_import.import_losses(
            session, actor, DEMO_INCIDENT, io.BytesIO(loss_file_bytes(n_customers)), "demo-ledger.csv"
        )
        if not report.ok:
            raise RuntimeError(f"demo loss file rejected: {report.problems[:3]}")
    _ensure_funding(session, incident.id)
    ensure_adequacy(session)
    logins = [_ensure_login(session, *spec) for spec in DEMO_LOGINS]
    _ensure_claims(session)
    ensure_paying_account(session)
    # A customer who has not activated yet: the code stands for the exchange's app or letter.
    code = activation.issue_activation_code(session, actor, customer_ref(2))
    logins.append(Login(customer_ref(2).lower(), "activation", code))
    return logins


#: Japanese banks' codes (real codes; the accounts are invented) and katakana holder names.
_BANKS = (("0001", "001"), ("0005", "101"), ("0009", "201"), ("0010", "301"))
_KANA = ("ｻﾄｳ ﾊﾙﾄ", "ｽｽﾞｷ ﾕｲ", "ﾀｶﾊｼ ｿｳﾀ", "ﾀﾅｶ ﾋﾅ", "ｲﾄｳ ﾕｳﾄ", "ﾜﾀﾅﾍﾞ ﾒｲ", "ﾔﾏﾓﾄ ﾘｸ", "ﾅｶﾑﾗ ｱｵｲ")


def _ensure_claims(session: Session) -> None:
    """Claims in every state a reviewer meets: most customers accepted with an approved
    account (and approved in bulk), some disputed, some above the four-eyes threshold waiting
    for approvers, a few still open, and the demo customer's own claim open to try the portal.
    Customers' moves are recorded as made by the demo loader on their behalf."""
    incident = incidents.get_incident(session, SYSTEM_ACTOR, DEMO_INCIDENT)
    if incident.status == "recorded":
        claims_service.open_claims(session, SYSTEM_ACTOR, DEMO_INCIDENT)
    rows = session.execute(select(Claim.id, Claim.customer_id, Customer.external_ref, Claim.status, Claim.total_jpy)
                           .join(Customer, Customer.id == Claim.customer_id)
                           .where(Claim.incident_id == incident.id).order_by(Customer.external_ref)).all()
    if any(r.status != "open" for r in rows):
        return  # seeded before
    loader = Actor("demo loader (on behalf of customers)", Role.ADMIN)
    now = utcnow()
    accepted, disputed = [], []
    for index, row in enumerate(rows):
        if row.external_ref == customer_ref(1) or index % 25 == 3:
            continue  # left open
        (disputed if index % 25 == 7 else accepted).append(row)
    with transaction(session):
        ids = [r.id for r in accepted]
        for start in range(0, len(ids), 5000):
            session.execute(update(Claim).where(Claim.id.in_(ids[start:start + 5000])).values(
                status="accepted", accepted_at=now, updated_at=now, row_version=Claim.row_version + 1)
                .execution_options(synchronize_session=False))
        record_events(session, loader, (("claim.accepted", "claim", r.id, f"Customer accepted claim #{r.id} (demo)",
                                         {"status": ["open", "accepted"], "version": 1}) for r in accepted))
        destinations = []
        for index, r in enumerate(accepted):
            bank, branch = _BANKS[index % len(_BANKS)]
            # Two accounts the sandbox bank will refuse, to show a payment needing attention.
            number = "0000000" if index in (5, 400) else f"{(r.customer_id * 7919) % 10_000_000:07d}"
            destinations.append(PayoutDestination(
                customer_id=r.customer_id, bank_code=bank, branch_code=branch, account_type="ordinary",
                account_number=number, holder_kana=_KANA[index % len(_KANA)], status="approved",
                approvals_required=1, submitted_by_label="demo loader", submitted_at=now, decided_at=now))
        session.add_all(destinations)
        session.flush()
        record_events(session, loader, (("destination.approved", "payout_destination", d.id,
                                         f"Payout account for customer #{d.customer_id} approved (demo)",
                                         {"status": [None, "approved"]}) for d in destinations))
    for r in disputed[:12]:
        customer = Actor(r.external_ref.lower(), Role.CUSTOMER,
                         session.scalar(select(User.id).where(User.customer_id == r.customer_id)))
        claim = session.get(Claim, r.id)
        assert claim is not None
        claims_service.dispute_claim(session, customer, r.id, claim.row_version,
                                     reason="My ETH withdrawal shortly before the hack is missing from the"
                                            " ledger (demo)", corrected={"ETH": "1.5"})
    staff = _demo_actor(session, "staff@demo.payouts")
    approver = _demo_actor(session, "approver@demo.payouts")
    policy = FourEyesPolicy(DEMO_FOUR_EYES_THRESHOLD)
    claims_service.bulk_approve(session, staff, DEMO_INCIDENT, policy)
    # Above the threshold: two people approve. Leave some for the demo's approvers to finish.
    large = session.scalars(select(Claim).where(Claim.incident_id == incident.id, Claim.status == "accepted")
                            .order_by(Claim.id)).all()
    for index, claim in enumerate(large):
        claims_service.approve_claim(session, staff, claim.id, claim.row_version, policy)
        if index % 4:
            claims_service.approve_claim(session, approver, claim.id, claim.row_version, policy)


#: The demo runs with the default four-eyes threshold (PAYOUTS_FOUR_EYES_THRESHOLD_JPY).
DEMO_FOUR_EYES_THRESHOLD = 1_000_000


def _demo_actor(session: Session, username: str) -> Actor:
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return users.actor_of(user)


def ensure_paying_account(session: Session) -> None:
    """The exchange's (invented) reserve account, for Zengin transfer files (the demo and the
    real-browser walks both set it up)."""
    if session.scalar(select(PayingAccount.id).where(PayingAccount.purpose == "reserve")) is None:
        zengin_files.set_paying_account(session, SYSTEM_ACTOR, purpose="reserve", company_code="1234567890",
                                        company_name="ﾃﾞﾓｺｳｶﾝｼﾞｮ", bank_code="0005", bank_name="ﾐﾂﾋﾞｼﾕｰｴﾌｼﾞｪｲ",
                                        branch_code="001", branch_name="ﾎﾝﾃﾝ", account_type="current",
                                        account_number="7654321")


#: Illustrative rule parameters (docs/reserve-rule.md explains each choice).
DEMO_RULE = {
    "volume_rates": [{"market": "spot", "rate": "0.0002"}, {"market": "margin", "rate": "0.0004"},
                     {"market": "*", "rate": "0.0002"}],
    "cold_wallet_rate": "0.005", "hot_wallet_rate": "0.05", "incident_multiple": "0.5",
    "incident_lookback_years": 3, "floor_jpy": 2_000_000_000, "cap_jpy": 40_000_000_000,
    "insurance_credit_ratio": "0.8", "insurance_max_share": "0.5", "qualifying_policies": None,
}


def ensure_adequacy(session: Session) -> None:
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
