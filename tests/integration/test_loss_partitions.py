"""Per-incident partitions of loss_positions on PostgreSQL: built whole, attached, all-or-nothing.

A first import into an incident builds its partition as a plain table and attaches it; later
imports and positions written one at a time go through the parent. These proofs need
PostgreSQL; on SQLite the same imports run against one plain table (test_loss_import).
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from payouts.db import loss_partitions
from payouts.db.migrate import alembic_config
from payouts.db.models import Base, Customer, LossImport, LossPosition
from payouts.db.session import make_session_factory
from payouts.services import incidents
from payouts.services.loss_import import import_losses
from tests.conftest import STAFF

pytestmark = pytest.mark.postgres

FIRST = (
    "customer_ref,asset,amount,name\n"
    "C1,BTC,0.5,Sato\n"
    "C1,ETH,2,Sato\n"
    "C2,JPY,1000,Suzuki\n"
)
CORRECTION = (
    "customer_ref,asset,amount\n"
    "C1,BTC,0.75\n"  # changed
    "C2,JPY,1000\n"  # unchanged
    "C3,BTC,1\n"  # new customer and position
)


@pytest.fixture
def session(pg_engine):  # type: ignore[no-untyped-def]
    with make_session_factory(pg_engine)() as s:
        yield s


def _incident(session, ref: str):  # type: ignore[no-untyped-def]
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    return incidents.record_incident(session, STAFF, ref=ref, title="t", incident_type="hack",
                                     occurred_at=t, discovered_at=t)


def _import(session, ref: str, body: str, name: str = "losses.csv"):  # type: ignore[no-untyped-def]
    return import_losses(session, STAFF, ref, io.BytesIO(body.encode()), name)


def _partitions(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Attached partitions of loss_positions -> their bound."""
    return dict(session.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'loss_positions'::regclass"
    )).all())


def _amounts(session, incident_id: int) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        select(Customer.external_ref, LossPosition.asset_code, LossPosition.amount_minor)
        .join(Customer, Customer.id == LossPosition.customer_id)
        .where(LossPosition.incident_id == incident_id)
    ).all()
    return {(ref, asset): amount for ref, asset, amount in rows}


def test_first_import_attaches_a_partition_with_validated_foreign_keys(session):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")
    report = _import(session, "INC-P", FIRST)
    assert report.status == "imported", report.problems
    name = loss_partitions.partition_name(incident.id)
    assert _partitions(session)[name] == f"FOR VALUES IN ('{incident.id}')"
    foreign_keys = {
        table: dict(session.execute(text(
            "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"
            " AND contype = 'f'"), {"t": table}).all())
        for table in (loss_partitions.PARENT, name)}
    assert len(foreign_keys[name]) == 4 and foreign_keys[name] == foreign_keys[loss_partitions.PARENT]
    assert all(foreign_keys[name].values())  # validated
    assert _amounts(session, incident.id) == {
        ("C1", "BTC"): 50_000_000, ("C1", "ETH"): 2 * 10**18, ("C2", "JPY"): 1000}
    # The attached partition is a foreign-key-checked part of the table like any other.
    with pytest.raises(Exception, match="foreign key"):
        session.execute(text(
            f"INSERT INTO loss_positions ({loss_partitions.COLUMNS})"
            " VALUES (:i, 999999, 'BTC', 1, :imp)"), {"i": incident.id, "imp": report.loss_import.id})
    session.rollback()


def test_a_partition_whose_rows_break_a_foreign_key_is_not_attached(session):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")
    seed = _import(session, "INC-P", FIRST)  # a loss_imports row to point at
    other = _incident(session, "INC-Q")
    rows = ("SELECT CAST(:incident_id AS bigint), CAST(999999 AS bigint), CAST('BTC' AS varchar(16)),"
            " CAST(1 AS numeric(78, 0)), CAST(:import_id AS bigint)")
    with pytest.raises(IntegrityError, match="fk_loss_positions_customer_id_customers"):
        loss_partitions.build_and_attach(session, other.id, rows,
                                         {"incident_id": other.id, "import_id": seed.loss_import.id})
    session.rollback()
    assert session.scalar(text("SELECT to_regclass(:n)"), {"n": loss_partitions.partition_name(other.id)}) is None
    assert loss_partitions.partition_name(incident.id) in _partitions(session)


def test_a_later_import_into_the_incident_updates_through_the_parent(session):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")
    _import(session, "INC-P", FIRST)
    report = _import(session, "INC-P", CORRECTION, "correction.csv")
    assert report.status == "imported", report.problems
    record = report.loss_import
    assert (record.positions_created, record.positions_updated, record.positions_unchanged) == (1, 1, 1)
    assert _amounts(session, incident.id) == {
        ("C1", "BTC"): 75_000_000, ("C1", "ETH"): 2 * 10**18, ("C2", "JPY"): 1000,
        ("C3", "BTC"): 100_000_000}
    assert set(_partitions(session)) == {loss_partitions.DEFAULT_PARTITION,
                                        loss_partitions.partition_name(incident.id)}


def test_a_failure_after_attaching_leaves_no_partition_and_nothing_written(session, monkeypatch):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")

    def fail(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("audit store unavailable")

    # The audit event is written after the partition is attached, in the same transaction.
    monkeypatch.setattr("payouts.services.loss_import.record_event", fail)
    with pytest.raises(RuntimeError):
        _import(session, "INC-P", FIRST)
    session.rollback()
    name = loss_partitions.partition_name(incident.id)
    assert session.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is None
    assert set(_partitions(session)) == {loss_partitions.DEFAULT_PARTITION}
    for model in (Customer, LossPosition, LossImport):
        assert session.scalar(select(func.count()).select_from(model)) == 0
    monkeypatch.undo()
    assert _import(session, "INC-P", FIRST).status == "imported"


def test_a_rejected_file_builds_no_partition(session):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")
    report = _import(session, "INC-P", FIRST + "C2,JPY,5,Suzuki\n")
    assert report.status == "rejected" and "duplicate row" in report.problems[0]
    assert session.scalar(text("SELECT to_regclass(:n)"),
                          {"n": loss_partitions.partition_name(incident.id)}) is None


def test_positions_written_one_by_one_stay_in_the_default_partition(session):  # type: ignore[no-untyped-def]
    written = _incident(session, "INC-ORM")
    other = _incident(session, "INC-P")
    seed = _import(session, "INC-P", FIRST)
    customer = session.scalar(select(Customer).where(Customer.external_ref == "C1"))
    session.add(LossPosition(incident_id=written.id, customer_id=customer.id, asset_code="BTC",
                             amount_minor=1, import_id=seed.loss_import.id))
    session.commit()
    assert session.scalar(text(f"SELECT count(*) FROM {loss_partitions.DEFAULT_PARTITION}")) == 1
    # That incident already has a position, so its import goes through the parent, not a
    # new partition; the position it already had is updated in place.
    assert not loss_partitions.can_build(session, written.id)
    report = _import(session, "INC-ORM", CORRECTION)
    assert report.status == "imported", report.problems
    assert loss_partitions.partition_name(written.id) not in _partitions(session)
    assert _amounts(session, written.id)[("C1", "BTC")] == 75_000_000
    assert session.scalar(text(f"SELECT count(*) FROM {loss_partitions.DEFAULT_PARTITION}")) == 3
    assert len(_amounts(session, other.id)) == 3


def test_models_still_match_the_migrations_with_partitions_present(session, pg_engine):  # type: ignore[no-untyped-def]
    _incident(session, "INC-P")
    _import(session, "INC-P", FIRST)
    session.commit()
    with pg_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_name": loss_partitions.include_in_autogenerate})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_gathers_partitions_back_into_one_table_and_upgrade_splits_them_again(session, pg_engine):  # type: ignore[no-untyped-def]
    incident = _incident(session, "INC-P")
    _import(session, "INC-P", FIRST)
    before = _amounts(session, incident.id)
    session.close()
    cfg = alembic_config(pg_engine.url.render_as_string(hide_password=False))
    command.downgrade(cfg, "0008")
    with pg_engine.connect() as conn:
        ids = conn.execute(text("SELECT count(DISTINCT id) FROM loss_positions")).scalar()
        assert ids == 3
        assert conn.execute(text("SELECT to_regclass(:n)"), {"n": loss_partitions.DEFAULT_PARTITION}).scalar() is None
    command.upgrade(cfg, "head")
    with make_session_factory(pg_engine)() as fresh:
        assert _amounts(fresh, incident.id) == before
        # Existing positions move into their incident's own partition; the default stays empty.
        assert set(_partitions(fresh)) == {loss_partitions.DEFAULT_PARTITION,
                                           loss_partitions.partition_name(incident.id)}
        assert fresh.scalar(text(f"SELECT count(*) FROM {loss_partitions.DEFAULT_PARTITION}")) == 0
        assert not loss_partitions.can_build(fresh, incident.id)


def test_building_a_partition_waits_for_no_reader(session, pg_engine):  # type: ignore[no-untyped-def]
    _incident(session, "INC-P")
    session.commit()
    with pg_engine.connect() as reader:
        # A long read of every table the partition's foreign keys point at, still open. (Only
        # the DEFAULT partition is taken exclusively, for the moment ATTACH checks it.)
        for table in ("customers", "incidents", "assets", "loss_imports"):
            reader.execute(text(f"SELECT count(*) FROM {table}"))
        # Were any step to need an exclusive lock on one of them, it would wait for this reader
        # and give up after the timeout.
        session.execute(text("SET lock_timeout = '3s'"))
        report = _import(session, "INC-P", FIRST)
        assert report.status == "imported", report.problems
        reader.rollback()
    session.execute(text("RESET lock_timeout"))
