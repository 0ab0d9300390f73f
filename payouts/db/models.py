"""The records of the product, as typed SQLAlchemy 2.x models.

The schema itself comes only from Alembic migrations (migrations/); a test checks that these
models and the migrations agree. CHECK constraints on exact-quantity columns are written by the
migrations per dialect (see payouts.db.types.non_negative_quantity_check).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false as sa_false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from payouts.db.types import ExactDecimal, ExactInteger, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger keeps PostgreSQL ids 64-bit.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Asset(Base):
    """A currency or token the exchange holds, with its smallest-unit precision."""

    __tablename__ = "assets"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    decimals: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("decimals >= 0 AND decimals <= 30", name="decimals_range"),)


class User(Base):
    """A login: customer, staff, approver, admin or regulator."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    #: argon2 hash; NULL until a customer activates their account.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Bumped on password change or forced logout; sessions carry it and die when it moves.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Base32 TOTP secret once the user has confirmed a second factor; NULL without one.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    #: The last TOTP time step accepted, so one code cannot be replayed.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    #: Wrong second-factor codes since the last right one: kept here, not in the browser's
    #: cookie, which a guesser could replay to start counting again.
    totp_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    customer: Mapped[Customer | None] = relationship(back_populates="user")

    __table_args__ = (
        CheckConstraint(
            "role IN ('customer', 'staff', 'approver', 'admin', 'regulator')", name="role_known"
        ),
        CheckConstraint("(role = 'customer') = (customer_id IS NOT NULL)", name="customer_link"),
    )


class Customer(Base):
    """An exchange customer, identified by the exchange's own reference."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Compared byte by byte ("C" collation) on PostgreSQL, as SQLite does: an identifier has no
    #: language, and a million-row import sorts and indexes it several times faster this way.
    external_ref: Mapped[str] = mapped_column(
        String(64).with_variant(String(64, collation="C"), "postgresql"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    user: Mapped[User | None] = relationship(back_populates="customer")


class Incident(Base):
    """A hack, operational failure or fraud whose victims are to be compensated."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    incident_type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="recorded")
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    discovered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    prices: Mapped[list[ReferencePrice]] = relationship(
        back_populates="incident", order_by="ReferencePrice.asset_code"
    )

    __table_args__ = (
        CheckConstraint(
            "incident_type IN ('hack', 'operational_failure', 'insider_fraud', 'other')",
            name="type_known",
        ),
        CheckConstraint(
            "status IN ('recorded', 'claims_open', 'paying', 'closed')", name="status_known"
        ),
        CheckConstraint("discovered_at >= occurred_at", name="discovered_after_occurred"),
    )


class ReferencePrice(Base):
    """Yen per whole unit of an asset for one incident, fixed with its source before payment."""

    __tablename__ = "reference_prices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    asset_code: Mapped[str] = mapped_column(ForeignKey("assets.code"))
    price_jpy: Mapped[Decimal] = mapped_column(ExactDecimal)
    #: How the price was fixed, e.g. "VWAP of JPY pairs 2018-01-26 00:00-23:59 JST".
    source: Mapped[str] = mapped_column(String(500))
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    set_by_label: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="prices")
    asset: Mapped[Asset] = relationship()

    __table_args__ = (UniqueConstraint("incident_id", "asset_code"),)


class LossImport(Base):
    """One accepted loss file: what it contained and what it changed."""

    __tablename__ = "loss_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(BigInteger)
    customers_created: Mapped[int] = mapped_column(BigInteger)
    customers_updated: Mapped[int] = mapped_column(BigInteger)
    positions_created: Mapped[int] = mapped_column(BigInteger)
    positions_updated: Mapped[int] = mapped_column(BigInteger)
    positions_unchanged: Mapped[int] = mapped_column(BigInteger)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    imported_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    incident: Mapped[Incident] = relationship()

    # The same file imported twice into one incident is recognised and changes nothing.
    __table_args__ = (UniqueConstraint("incident_id", "sha256"),)


class LossPosition(Base):
    """A customer's loss of one asset in one incident, in the asset's minor units.

    Keyed by what it is (incident, customer, asset). On PostgreSQL the table is partitioned by
    incident: a first import builds its incident's partition as a plain table and attaches it,
    so a million rows are checked against customers, assets and imports in one set-based pass
    each instead of four trigger lookups per row (payouts.db.loss_partitions).
    """

    __tablename__ = "loss_positions"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id"), primary_key=True, autoincrement=False
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id"), primary_key=True, autoincrement=False
    )
    asset_code: Mapped[str] = mapped_column(ForeignKey("assets.code"), primary_key=True)
    # Non-negative: CHECK written per dialect by the migration.
    amount_minor: Mapped[int] = mapped_column(ExactInteger)
    import_id: Mapped[int] = mapped_column(ForeignKey("loss_imports.id"))

    customer: Mapped[Customer] = relationship()
    asset: Mapped[Asset] = relationship()

    __table_args__ = (
        Index("ix_loss_positions_customer", "customer_id"),
        {"postgresql_partition_by": "LIST (incident_id)"},
    )


class AuditEvent(Base):
    """One link of the append-only, hash-chained audit trail (see payouts.audit)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(80))
    summary: Mapped[str] = mapped_column(Text)
    #: Canonical JSON of {"field": [before, after], ...} or other structured detail.
    details: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_events_subject", "subject_type", "subject_id"),
        Index("ix_audit_events_action", "action"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )


# --- Funding: the liability reserve and the insurance tower ----------------------------------


class ReserveEntry(Base):
    """One movement of the liability reserve. Balances are derived from entries, never typed.

    deposit / withdrawal move cash in or out; earmark sets cash aside for an incident's committed
    allocation; release returns an unneeded earmark; payment pays earmarked cash to customers.
    """

    __tablename__ = "reserve_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount_jpy: Mapped[int] = mapped_column(BigInteger)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    allocation_run_id: Mapped[int | None] = mapped_column(ForeignKey("allocation_runs.id"))
    memo: Mapped[str] = mapped_column(String(500))
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("amount_jpy > 0", name="amount_positive"),
        CheckConstraint(
            "kind IN ('deposit', 'withdrawal', 'earmark', 'release', 'payment')", name="kind_known"
        ),
        CheckConstraint(
            "(kind IN ('deposit', 'withdrawal')) = (incident_id IS NULL)", name="incident_for_earmarks"
        ),
        Index("ix_reserve_entries_incident", "incident_id"),
    )


class InsurancePolicy(Base):
    """An approved insurance policy whose layers may fund compensation."""

    __tablename__ = "insurance_policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_number: Mapped[str] = mapped_column(String(60), unique=True)
    insurer: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    layers: Mapped[list[InsuranceLayer]] = relationship(
        back_populates="policy", order_by="InsuranceLayer.attachment_jpy"
    )

    __table_args__ = (CheckConstraint("period_end >= period_start", name="period_ordered"),)


class InsuranceLayer(Base):
    """A layer of the tower: pays the loss above its attachment, up to its limit, times its share."""

    __tablename__ = "insurance_layers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("insurance_policies.id"))
    #: The id the allocation engine and its results use, unique across the tower ("L1", ...).
    code: Mapped[str] = mapped_column(String(40), unique=True)
    attachment_jpy: Mapped[int] = mapped_column(BigInteger)
    limit_jpy: Mapped[int] = mapped_column(BigInteger)
    share: Mapped[Decimal] = mapped_column(ExactDecimal)
    #: What the policy period's aggregate allows on the insurer's share; NULL: no aggregate.
    aggregate_limit_jpy: Mapped[int | None] = mapped_column(BigInteger)
    #: Comma-separated incident types the layer does not cover.
    excluded_incident_types: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    policy: Mapped[InsurancePolicy] = relationship(back_populates="layers")

    __table_args__ = (
        CheckConstraint("attachment_jpy >= 0", name="attachment_non_negative"),
        CheckConstraint("limit_jpy >= 0", name="limit_non_negative"),
        CheckConstraint(
            "aggregate_limit_jpy IS NULL OR aggregate_limit_jpy >= 0", name="aggregate_non_negative"
        ),
    )


class CompensationTerms(Base):
    """Per-incident customer terms: deductible, cap, and priority tranches (small claims first)."""

    __tablename__ = "compensation_terms"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    deductible_jpy: Mapped[int] = mapped_column(BigInteger, default=0)
    cap_jpy: Mapped[int | None] = mapped_column(BigInteger)
    #: Strictly increasing thresholds in yen, comma-separated ("200000,1000000"); "" for none.
    tranches_jpy: Mapped[str] = mapped_column(String(500), default="")
    set_by_label: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("deductible_jpy >= 0", name="deductible_non_negative"),
        CheckConstraint("cap_jpy IS NULL OR cap_jpy >= 0", name="cap_non_negative"),
    )


# --- Allocation runs ----------------------------------------------------------------------------


class AllocationRun(Base):
    """An immutable, committed allocation of an incident (or of money that arrived later)."""

    __tablename__ = "allocation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    #: "initial" (the waterfall) or "later_money" (a recovery spread over unpaid balances).
    kind: Mapped[str] = mapped_column(String(20))
    #: 1 for the initial run, then 2, 3, ... : unique per incident, so two concurrent commits
    #: of the same step cannot both succeed.
    sequence: Mapped[int] = mapped_column(Integer)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    #: Canonical JSON of everything but the customers (terms, prices, sources, totals of inputs).
    inputs_summary: Mapped[str] = mapped_column(Text)
    customers: Mapped[int] = mapped_column(BigInteger)
    total_eligible_jpy: Mapped[int] = mapped_column(BigInteger)
    total_funded_jpy: Mapped[int] = mapped_column(BigInteger)
    shortfall_jpy: Mapped[int] = mapped_column(BigInteger)
    recovery_id: Mapped[int | None] = mapped_column(ForeignKey("recoveries.id"))
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    sources: Mapped[list[AllocationSource]] = relationship(order_by="AllocationSource.draw_order")

    __table_args__ = (
        UniqueConstraint("incident_id", "sequence"),
        CheckConstraint("kind IN ('initial', 'later_money')", name="kind_known"),
        CheckConstraint("(kind = 'initial') = (sequence = 1)", name="initial_first"),
        CheckConstraint(
            "total_funded_jpy >= 0 AND shortfall_jpy >= 0"
            " AND total_funded_jpy + shortfall_jpy = total_eligible_jpy",
            name="totals_reconcile",
        ),
    )


class AllocationSource(Base):
    """What one source (the reserve or a layer) could give and gave in a run, in draw order."""

    __tablename__ = "allocation_sources"

    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"), primary_key=True)
    draw_order: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(40))
    layer_id: Mapped[int | None] = mapped_column(ForeignKey("insurance_layers.id"))
    available_jpy: Mapped[int] = mapped_column(BigInteger)
    used_jpy: Mapped[int] = mapped_column(BigInteger)
    aggregate_remaining_after_jpy: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("used_jpy >= 0 AND used_jpy <= available_jpy", name="used_within_available"),
        CheckConstraint("source_id <> 'reserve' OR layer_id IS NULL", name="reserve_has_no_layer"),
    )


class AllocationLine(Base):
    """One customer's result in a run: value, eligible claim, payout and its split by source."""

    __tablename__ = "allocation_lines"

    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    approved_jpy: Mapped[int] = mapped_column(BigInteger)
    eligible_jpy: Mapped[int] = mapped_column(BigInteger)
    payout_jpy: Mapped[int] = mapped_column(BigInteger)
    #: JSON array of yen, aligned with the run's sources in draw order: "[76923,73077]".
    by_source: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "payout_jpy >= 0 AND payout_jpy <= eligible_jpy AND eligible_jpy <= approved_jpy",
            name="payout_within_claim",
        ),
        Index("ix_allocation_lines_customer", "customer_id"),
    )


class InsuranceReceivable(Base):
    """What a layer owes for a committed run, and what the insurer has paid of it."""

    __tablename__ = "insurance_receivables"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"))
    layer_id: Mapped[int] = mapped_column(ForeignKey("insurance_layers.id"))
    amount_jpy: Mapped[int] = mapped_column(BigInteger)
    received_jpy: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("run_id", "layer_id"),
        CheckConstraint("received_jpy >= 0 AND received_jpy <= amount_jpy", name="received_within_amount"),
    )


class Recovery(Base):
    """Money that arrived after the initial run (recovered funds, a late insurer payment)."""

    __tablename__ = "recoveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    amount_jpy: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(300))
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("amount_jpy > 0", name="amount_positive"),)


# --- Audit checkpoints ------------------------------------------------------------------------


class AuditCheckpoint(Base):
    """A head of the audit chain (seq, hash) recorded for publication outside the database.

    A later verification must find exactly this hash at this seq; a checkpoint beyond the head
    means the chain was truncated (docs/audit-chain.md). Append-only on PostgreSQL.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_label: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_audit_checkpoints_seq", "seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )


# --- Reserve adequacy -------------------------------------------------------------------------


class ReserveRuleVersion(Base):
    """One version of the rule that sizes the required liability reserve (never edited)."""

    __tablename__ = "reserve_rule_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    effective_from: Mapped[dt.date] = mapped_column(Date)
    #: Canonical JSON of the parameters (rates as exact decimal strings).
    parameters: Mapped[str] = mapped_column(Text)
    illustrative: Mapped[bool] = mapped_column(Boolean, default=True)
    rationale: Mapped[str] = mapped_column(Text, default="")
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)


class TradingVolume(Base):
    """The exchange's JPY trading volume of one market in one month."""

    __tablename__ = "trading_volumes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date)  # the first day of the month
    market: Mapped[str] = mapped_column(String(40))
    volume_jpy: Mapped[int] = mapped_column(BigInteger)
    recorded_by_label: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("month", "market"),
        CheckConstraint("volume_jpy >= 0", name="volume_non_negative"),
    )


class WalletSnapshot(Base):
    """The JPY value of customer assets held in cold or hot wallets on a date."""

    __tablename__ = "wallet_snapshots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    wallet: Mapped[str] = mapped_column(String(10))
    value_jpy: Mapped[int] = mapped_column(BigInteger)
    recorded_by_label: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("as_of", "wallet"),
        CheckConstraint("wallet IN ('cold', 'hot')", name="wallet_known"),
        CheckConstraint("value_jpy >= 0", name="value_non_negative"),
    )


class ExternalIncident(Base):
    """A past incident the product did not handle (before it, or elsewhere in the group)."""

    __tablename__ = "external_incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    loss_jpy: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(500))
    recorded_by_label: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("loss_jpy >= 0", name="loss_non_negative"),)


class StressTest(Base):
    """A stored stress test: a hypothetical incident run through the allocation engine."""

    __tablename__ = "stress_tests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(40))
    wallet: Mapped[str] = mapped_column(String(10))
    share_lost: Mapped[Decimal] = mapped_column(ExactDecimal)
    loss_jpy: Mapped[int] = mapped_column(BigInteger)
    customers: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[dt.date] = mapped_column(Date)
    funded_jpy: Mapped[int] = mapped_column(BigInteger)
    shortfall_jpy: Mapped[int] = mapped_column(BigInteger)
    #: Canonical JSON: the inputs used (reserve, layers, tranches) and the results in detail.
    details: Mapped[str] = mapped_column(Text)
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("wallet IN ('cold', 'hot')", name="wallet_known"),
        CheckConstraint("funded_jpy >= 0 AND shortfall_jpy >= 0", name="amounts_non_negative"),
        CheckConstraint("funded_jpy + shortfall_jpy = loss_jpy", name="totals_reconcile"),
    )


# --- Claims -----------------------------------------------------------------------------------


class Claim(Base):
    """One customer's claim in one incident: the ledger's positions, or a staff adjustment of
    them, valued at the incident's reference prices, and where it stands (payouts.domain.claims).

    ``version`` is the content version: 1 is the imported ledger positions; each adjustment adds
    a ClaimVersion with its own positions and voids earlier approvals. ``row_version`` guards
    concurrent writers: two staff acting on one claim at once, one wins, the other is told.
    """

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(30), default="open")
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: The yen value of the current version, rounded down once, exactly as allocation values it.
    total_jpy: Mapped[int] = mapped_column(BigInteger)
    #: Who made the current version (NULL for the ledger's): they may never approve it.
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The latest reason given to the customer (a rejection, a request for information).
    status_reason: Mapped[str] = mapped_column(String(1000), default="")
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    incident: Mapped[Incident] = relationship()
    customer: Mapped[Customer] = relationship()

    __mapper_args__ = {"version_id_col": row_version}
    __table_args__ = (
        UniqueConstraint("incident_id", "customer_id"),
        Index("ix_claims_incident_status", "incident_id", "status"),
        Index("ix_claims_customer", "customer_id"),
        CheckConstraint(
            "status IN ('open', 'accepted', 'disputed', 'needs_information', 'under_review',"
            " 'approved', 'rejected', 'withdrawn', 'paid')",
            name="status_known",
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("total_jpy >= 0", name="total_non_negative"),
    )


class ClaimVersion(Base):
    """A staff adjustment of a claim's positions: a new version the customer must accept again."""

    __tablename__ = "claim_versions"

    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    total_jpy: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(1000))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("version >= 2", name="adjusted_version"),)


class ClaimPosition(Base):
    """One asset of an adjusted claim version, in the asset's minor units."""

    __tablename__ = "claim_positions"

    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_code: Mapped[str] = mapped_column(ForeignKey("assets.code"), primary_key=True)
    # Non-negative: CHECK written per dialect by the migration.
    amount_minor: Mapped[int] = mapped_column(ExactInteger)


class ClaimDispute(Base):
    """A customer's dispute of one claim version: the reason and the amounts they say are right."""

    __tablename__ = "claim_disputes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    #: Canonical JSON {"BTC": "1.25", ...}: the customer's corrected amounts in whole units.
    corrected: Mapped[str] = mapped_column(Text, default="{}")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_claim_disputes_claim", "claim_id"),)


class EvidenceFile(Base):
    """A file a customer sent with a dispute, stored outside the web root under storage_name."""

    __tablename__ = "evidence_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("claim_disputes.id"))
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_name: Mapped[str] = mapped_column(String(100), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_evidence_files_claim", "claim_id"),
        CheckConstraint("byte_size > 0", name="not_empty"),
    )


class ClaimApproval(Base):
    """One person's approval of one claim version. Voided when the claim is edited."""

    __tablename__ = "claim_approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user_label: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    # Two approvals of one version are always two different people.
    __table_args__ = (UniqueConstraint("claim_id", "version", "user_id"),)


class PayoutDestination(Base):
    """A Japanese bank account a customer asked to be paid into (payouts.domain.bank_accounts).

    pending until approved (two different people when it changes an approved destination);
    at most one approved destination per customer is current, earlier ones are superseded.
    """

    __tablename__ = "payout_destinations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[str] = mapped_column(String(10))
    account_number: Mapped[str] = mapped_column(String(7))
    #: The holder's name in half-width kana, as the bank transfer carries it.
    holder_kana: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    approvals_required: Mapped[int] = mapped_column(Integer)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_by_label: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str] = mapped_column(String(1000), default="")
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": row_version}
    __table_args__ = (
        Index("ix_payout_destinations_customer", "customer_id", "status"),
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'superseded')", name="status_known"
        ),
        CheckConstraint("account_type IN ('ordinary', 'current', 'savings')", name="type_known"),
        CheckConstraint("approvals_required IN (1, 2)", name="approvals_one_or_two"),
    )


class DestinationApproval(Base):
    """One person's approval of a payout destination."""

    __tablename__ = "destination_approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("payout_destinations.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("destination_id", "user_id"),)


class Notice(Base):
    """A message to a customer, shown inside the portal only (never e-mailed with a link)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    #: What happened, e.g. "claim.adjusted"; the portal words it in the customer's language.
    kind: Mapped[str] = mapped_column(String(40))
    #: Canonical JSON of what the wording needs (amounts as integers, reasons as text).
    params: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_notices_customer", "customer_id", "created_at"),)


class ActivationCode(Base):
    """A one-time code, delivered out of band, with which a customer sets their first password."""

    __tablename__ = "activation_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: SHA-256 of the code (the code is random and long enough that a plain hash is safe).
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_activation_codes_user", "user_id"),)


# --- Disbursements ----------------------------------------------------------------------------


class DisbursementBatch(Base):
    """A group of instructions one job pays together (payouts.domain.disbursements)."""

    __tablename__ = "disbursement_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    rail: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_disbursement_batches_status", "status"),
        CheckConstraint("status IN ('queued', 'running', 'done')", name="status_known"),
    )


class Disbursement(Base):
    """One payment instruction: a customer's payout from one source into one destination.

    The idempotency key goes to the rail with every attempt, so a repeated or duplicated job
    never pays twice; it changes only when the destination does (a new payment).
    """

    __tablename__ = "disbursements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("allocation_runs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    #: "reserve", an insurance layer's code, or "recovery".
    source_id: Mapped[str] = mapped_column(String(40))
    amount_jpy: Mapped[int] = mapped_column(BigInteger)
    destination_id: Mapped[int | None] = mapped_column(ForeignKey("payout_destinations.id"))
    status: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("disbursement_batches.id"))
    rail: Mapped[str | None] = mapped_column(String(20))
    rail_reference: Mapped[str | None] = mapped_column(String(80))
    failure_reason: Mapped[str] = mapped_column(String(300), default="")
    #: An attempt with this key went unanswered (a timeout), and no answer for the key has come
    #: since: the bank may hold the payment, so the key must never be replaced. Only a paid,
    #: rejected or submitted answer clears it; a "try again later" says nothing of the key.
    key_unanswered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    zengin_file_id: Mapped[int | None] = mapped_column(ForeignKey("zengin_files.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("run_id", "customer_id", "source_id"),
        Index("ix_disbursements_incident_status", "incident_id", "status"),
        Index("ix_disbursements_batch", "batch_id"),
        Index("ix_disbursements_customer", "customer_id"),
        CheckConstraint("amount_jpy > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('held', 'pending', 'submitting', 'submitted', 'retrying', 'paid',"
            " 'needs_attention', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("status = 'held' OR destination_id IS NOT NULL", name="destination_unless_held"),
    )


class PayingAccount(Base):
    """An account of the exchange that payments leave from (the reserve's, the insurance one's)."""

    __tablename__ = "paying_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: "reserve" or "insurance": which sources' payments leave from it.
    purpose: Mapped[str] = mapped_column(String(20), unique=True)
    #: The 10-digit 依頼人コード the bank gave the exchange for 総合振込.
    company_code: Mapped[str] = mapped_column(String(10))
    company_name_kana: Mapped[str] = mapped_column(String(40))
    bank_code: Mapped[str] = mapped_column(String(4))
    bank_name_kana: Mapped[str] = mapped_column(String(15))
    branch_code: Mapped[str] = mapped_column(String(3))
    branch_name_kana: Mapped[str] = mapped_column(String(15))
    account_type: Mapped[str] = mapped_column(String(10))
    account_number: Mapped[str] = mapped_column(String(7))

    __table_args__ = (CheckConstraint("purpose IN ('reserve', 'insurance')", name="purpose_known"),)


class ZenginFile(Base):
    """A 総合振込 transfer file for one paying account and transfer date, and its bank result."""

    __tablename__ = "zengin_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    paying_account_id: Mapped[int] = mapped_column(ForeignKey("paying_accounts.id"))
    transfer_date: Mapped[dt.date] = mapped_column(Date)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int] = mapped_column(Integer)
    total_jpy: Mapped[int] = mapped_column(BigInteger)
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    result_imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("paying_account_id", "transfer_date"),)


class SandboxTransfer(Base):
    """The simulated bank's own book (payouts.rails.sandbox): one row per idempotency key.

    It stands for a system outside ours, so the rail writes it on its own connection and commits
    at once, as a real bank would, whatever happens to our transaction afterwards.
    """

    __tablename__ = "sandbox_transfers"

    idempotency_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    amount_jpy: Mapped[int] = mapped_column(BigInteger)
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[str] = mapped_column(String(10))
    account_number: Mapped[str] = mapped_column(String(7))
    holder_kana: Mapped[str] = mapped_column(String(60))
    #: "paid" or "rejected" (with the reason code a bank would give).
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="")
    bank_reference: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- API keys and idempotency -----------------------------------------------------------------


class ApiKey(Base):
    """A key for /api/v1, created by an admin and shown once; it acts as one role (its scope).

    Only the SHA-256 of the secret is kept: the secret is 32 random bytes, so a plain hash is
    enough (nothing to brute-force), and a lookup by hash is one indexed query.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: The secret's first 8 characters: shown in lists so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: staff, approver, admin or regulator: the key acts as that role.
    role: Mapped[str] = mapped_column(String(20))
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("role IN ('staff', 'approver', 'admin', 'regulator')", name="role_known"),
    )


class IdempotencyRecord(Base):
    """The first response to a POST made with an Idempotency-Key, per API key.

    The row is inserted (and committed) before the action runs: the unique key makes a
    concurrent duplicate fail to insert, so the action runs once.
    """

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    #: SHA-256 over method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="in_progress")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        CheckConstraint("status IN ('in_progress', 'done')", name="status_known"),
    )


class ImportJob(Base):
    """A large loss file waiting for (or being run by) a worker, and how its import ended."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    filename: Mapped[str] = mapped_column(String(255))
    #: The spooled upload, under the upload directory (never a web root); removed when done.
    stored_name: Mapped[str] = mapped_column(String(100), unique=True)
    byte_size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    #: imported, already_imported or rejected, once done.
    outcome: Mapped[str | None] = mapped_column(String(30))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("loss_imports.id"))
    rows: Mapped[int | None] = mapped_column(BigInteger)
    problem_count: Mapped[int | None] = mapped_column(BigInteger)
    #: JSON list of the first problems, each naming its line.
    problems: Mapped[str] = mapped_column(Text, default="[]")
    created_by_label: Mapped[str] = mapped_column(String(200))
    created_by_role: Mapped[str] = mapped_column(String(20))
    #: The login that queued it (none for an API key or the command line): the import is theirs,
    #: so four eyes keeps them from approving the claims computed from it.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_import_jobs_incident", "incident_id"),
        CheckConstraint("status IN ('queued', 'running', 'done')", name="status_known"),
    )
