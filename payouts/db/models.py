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
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
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
    external_ref: Mapped[str] = mapped_column(String(64), unique=True)
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
    """A customer's loss of one asset in one incident, in the asset's minor units."""

    __tablename__ = "loss_positions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    asset_code: Mapped[str] = mapped_column(ForeignKey("assets.code"))
    # Non-negative: CHECK written per dialect by the migration.
    amount_minor: Mapped[int] = mapped_column(ExactInteger)
    import_id: Mapped[int] = mapped_column(ForeignKey("loss_imports.id"))

    customer: Mapped[Customer] = relationship()
    asset: Mapped[Asset] = relationship()

    __table_args__ = (
        UniqueConstraint("incident_id", "customer_id", "asset_code"),
        Index("ix_loss_positions_customer", "customer_id"),
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
