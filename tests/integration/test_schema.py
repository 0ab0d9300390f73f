"""The schema: migrations are its only source, agree with the models, and keep money exact."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from payouts.db.migrate import heads
from payouts.db.loss_partitions import include_in_autogenerate
from payouts.db.models import Base, Customer, Incident, LossImport, LossPosition, ReferencePrice
from payouts.db.session import make_session_factory


def test_one_migration_head():
    assert len(heads()) == 1


def test_models_and_migrations_agree(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": include_in_autogenerate}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def _incident_with_import(session):  # type: ignore[no-untyped-def]
    t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    incident = Incident(ref="X", title="x", incident_type="hack", status="recorded",
                        occurred_at=t, discovered_at=t, description="")
    customer = Customer(external_ref="C1", name="", email="", locale="ja")
    session.add_all([incident, customer])
    session.flush()
    imp = LossImport(incident_id=incident.id, filename="f", sha256="0" * 64, byte_size=1,
                     row_count=1, customers_created=1, customers_updated=0, positions_created=1,
                     positions_updated=0, positions_unchanged=0, imported_by_label="t")
    session.add(imp)
    session.flush()
    return incident, customer, imp


@pytest.mark.parametrize("amount", [10**24, 2**64 + 1, 0, 123456789012345678901234567890123])
def test_huge_quantities_round_trip_exactly(engine, amount):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    with factory() as session:
        incident, customer, imp = _incident_with_import(session)
        session.add(LossPosition(incident_id=incident.id, customer_id=customer.id,
                                 asset_code="ETH", amount_minor=amount, import_id=imp.id))
        session.commit()
    with factory() as session:
        stored = session.scalar(select(LossPosition.amount_minor))
    assert stored == amount and isinstance(stored, int)


def test_prices_keep_every_digit(engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    price = Decimal("88.549000000000000000123")
    with factory() as session:
        incident, _c, _i = _incident_with_import(session)
        session.add(ReferencePrice(incident_id=incident.id, asset_code="XEM", price_jpy=price,
                                   source="s", set_by_label="t"))
        session.commit()
    with factory() as session:
        assert session.scalar(select(ReferencePrice.price_jpy)) == price


def test_negative_quantity_is_refused_by_the_database(engine):  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine)
    with factory() as session:
        incident, customer, imp = _incident_with_import(session)
        session.add(LossPosition(incident_id=incident.id, customer_id=customer.id,
                                 asset_code="BTC", amount_minor=-1, import_id=imp.id))
        with pytest.raises(IntegrityError):
            session.commit()


@pytest.mark.postgres
def test_audit_table_refuses_update_and_delete_on_postgresql(pg_engine):  # type: ignore[no-untyped-def]
    from payouts.audit.log import record_event
    from payouts.domain.roles import SYSTEM_ACTOR

    factory = make_session_factory(pg_engine)
    with factory() as session:
        record_event(session, SYSTEM_ACTOR, "test.done", "test", 1, "x")
        session.commit()
    for statement in ("UPDATE audit_events SET summary = 'forged'", "DELETE FROM audit_events",
                      "TRUNCATE audit_events"):
        with pg_engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
