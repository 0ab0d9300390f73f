"""Loss import: all-or-nothing, line-numbered reports, idempotent, audited in the same transaction."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import func, select

from payouts.db.models import AuditEvent, Customer, LossImport, LossPosition
from payouts.domain.errors import NotFoundError, PermissionDenied
from payouts.domain.sample_losses import loss_file_bytes
from payouts.services import incidents
from payouts.services.loss_import import import_losses
from tests.conftest import REGULATOR, STAFF

GOOD = (
    "customer_ref,asset,amount,name,email\n"
    "C1,BTC,0.12345678,Sato Haruto,sato@example.jp\n"
    "C1,ETH,1.000000000000000001,,\n"
    "C2,JPY,150000,Suzuki Yui,\n"
)


@pytest.fixture
def incident(session):  # type: ignore[no-untyped-def]
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    return incidents.record_incident(session, STAFF, ref="INC-1", title="t", incident_type="hack",
                                     occurred_at=t, discovered_at=t)


def run(session, text_or_bytes, name="losses.csv"):  # type: ignore[no-untyped-def]
    data = text_or_bytes.encode() if isinstance(text_or_bytes, str) else text_or_bytes
    return import_losses(session, STAFF, "INC-1", io.BytesIO(data), name)


def counts(session):  # type: ignore[no-untyped-def]
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Customer, LossPosition, LossImport, AuditEvent)
    )


def test_good_file_creates_customers_and_exact_positions(session, incident):  # type: ignore[no-untyped-def]
    report = run(session, GOOD)
    assert report.status == "imported", report.problems
    record = report.loss_import
    assert (record.row_count, record.customers_created, record.positions_created) == (3, 2, 3)
    amounts = dict(session.execute(select(LossPosition.asset_code, LossPosition.amount_minor)).all())
    assert amounts == {"BTC": 12345678, "ETH": 10**18 + 1, "JPY": 150000}
    c1 = session.scalar(select(Customer).where(Customer.external_ref == "C1"))
    assert (c1.name, c1.email) == ("Sato Haruto", "sato@example.jp")
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "losses.imported"))
    assert event.subject_id == "INC-1" and '"rows":3' in event.details


def test_same_file_twice_changes_nothing(session, incident):  # type: ignore[no-untyped-def]
    first = run(session, GOOD)
    before = counts(session)
    second = run(session, GOOD, name="renamed.csv")
    assert second.status == "already_imported"
    assert second.loss_import.id == first.loss_import.id
    assert counts(session) == before


def test_a_later_file_updates_amounts_and_names_without_doubling(session, incident):  # type: ignore[no-untyped-def]
    run(session, GOOD)
    report = run(session, "customer_ref,asset,amount,name\nC1,BTC,0.2,Sato H.\nC3,BTC,1,\n")
    record = report.loss_import
    assert (record.positions_created, record.positions_updated, record.positions_unchanged) == (1, 1, 0)
    assert (record.customers_created, record.customers_updated) == (1, 1)
    assert session.scalar(select(func.count()).select_from(LossPosition)) == 4
    btc = session.execute(
        select(LossPosition.amount_minor).join(Customer).where(
            Customer.external_ref == "C1", LossPosition.asset_code == "BTC")
    ).scalar_one()
    assert btc == 20_000_000


BAD_FILES = [
    ("", "the file is empty"),
    ("customer_ref,asset\nC1,BTC\n", "missing column 'amount'"),
    ("customer_ref,asset,amount\n", "no data rows"),
    ("customer_ref,asset,amount,colour\nC1,BTC,1,red\n", "unknown column 'colour'"),
    ("customer_ref,asset,amount\nC1,DOGE,1\n", "line 2: unknown asset 'DOGE'"),
    ("customer_ref,asset,amount\nC1,BTC,1\nC2,BTC,0.123456789\n", "line 3: amount has 9 decimal places; this asset allows 8"),
    ("customer_ref,asset,amount\nC1,JPY,-5\n", "line 2: amount must not be negative"),
    ("customer_ref,asset,amount\nC1,JPY,12abc\n", "line 2: amount is not a plain decimal"),
    ("customer_ref,asset,amount\nC1,JPY,1e5\n", "line 2: amount is not a plain decimal"),
    ("customer_ref,asset,amount\nC1,JPY,1\nC2,JPY,2\nC1,JPY,3\n", "line 4: duplicate row for customer C1 and asset JPY (first at line 2)"),
    ("customer_ref,asset,amount\n,JPY,1\n", "line 2: customer_ref is empty"),
    ("customer_ref,asset,amount\nC1,JPY\n", "line 2: has fewer fields than the header"),
    ("customer_ref,asset,amount,email\nC1,JPY,1,not-an-email\n", "line 2: email 'not-an-email' is not a valid address"),
    ("customer_ref,asset,amount,name\nC1,JPY,1,A\nC1,BTC,1,B\n", "line 3: customer C1 is given two different values for name"),
    ("customer_ref,asset,amount\nC1,JPY,\n", "line 2: amount is empty"),
    ("customer_ref,asset,amount,email\nC1,JPY,1,a@x.jp\nC1,BTC,1,\nC1,ETH,1,b@x.jp\n",
     "line 4: customer C1 is given two different values for email"),
    ("customer_ref,asset,amount,name\nC1,JPY,1,A\nC1,BTC,1,B\nC1,ETH,1,\n",
     "line 3: customer C1 is given two different values for name"),
    ("customer_ref,asset,amount\nC1,JPY,1\n\nC2,JPY,2\n", "line 3: "),
    ("customer_ref,asset,amount\nC1,JPY,1,extra\n", "line 2: has more fields than the header"),
    ('customer_ref,asset,amount,name\nC1,JPY,1,"Sato\n', "line 2: "),
    ("customer_ref,asset,amount,name\nC1,JPY,1,Bell\x07Name\n", "line 2: name contains control characters"),
    ("customer_ref,asset,amount\nC1\t,JPY,1\n", "line 2: customer_ref 'C1"),  # shown as 'C1\\t' or with the tab
    ("customer_ref,asset,amount,name\nC1,JPY,1,Sato\t\n", "line 2: name contains control characters"),
    ("customer_ref,asset,amount\nC1,JPY," + "9" * 79 + "\n", "line 2: amount is too large"),
    ("customer_ref,asset,amount\nC1,ETH," + "9" * 61 + "\n", "line 2: amount is too large"),
    ("customer_ref,asset,amount\nC1 C2,JPY,1\n", "line 2: customer_ref 'C1 C2' is not a valid reference"),
]


@pytest.mark.parametrize("content, expected", BAD_FILES)
def test_bad_file_is_rejected_whole_naming_the_problem(session, incident, content, expected):  # type: ignore[no-untyped-def]
    run(session, GOOD)
    before = counts(session)
    report = run(session, content)
    assert report.status == "rejected"
    assert any(expected in p for p in report.problems), report.problems
    assert counts(session) == before


def test_wrong_encoding_names_the_line(session, incident):  # type: ignore[no-untyped-def]
    data = "customer_ref,asset,amount,name\nC1,JPY,1,佐藤\nC2,JPY,2,鈴木\n".encode("shift_jis")
    report = run(session, data)
    assert report.status == "rejected"
    assert report.problems[0].startswith("line 2: is not valid UTF-8")
    assert counts(session)[1] == 0


def test_utf8_with_bom_and_japanese_names_is_accepted(session, incident):  # type: ignore[no-untyped-def]
    data = "\ufeffcustomer_ref,asset,amount,name\nC1,JPY,1, 佐藤\u3000陽翔\u3000 \n".encode("utf-8")
    assert run(session, data).status == "imported"
    # Only ASCII spaces are trimmed, the same on both import paths.
    assert session.scalar(select(Customer.name)) == "佐藤\u3000陽翔\u3000"


def test_two_imports_into_different_incidents_share_new_customers(session, incident):  # type: ignore[no-untyped-def]
    t = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref="INC-2", title="t", incident_type="hack", occurred_at=t,
                              discovered_at=t)
    run(session, GOOD)
    second = import_losses(session, STAFF, "INC-2", io.BytesIO(GOOD.encode()), "same-people.csv")
    assert second.status == "imported"
    assert second.loss_import.customers_created == 0
    assert session.scalar(select(func.count()).select_from(Customer)) == 2
    assert session.scalar(select(func.count()).select_from(LossPosition)) == 6


def test_every_problem_is_counted_and_the_report_is_capped(session, incident):  # type: ignore[no-untyped-def]
    rows = "".join(f"C{i},JPY,-{i}\n" for i in range(250))
    report = run(session, "customer_ref,asset,amount\n" + rows)
    assert report.problem_count == 250
    assert len(report.problems) == 100
    assert report.problems[0].startswith("line 2:")


def test_good_rows_after_a_bad_one_are_not_written(session, incident):  # type: ignore[no-untyped-def]
    report = run(session, "customer_ref,asset,amount\nC1,JPY,1\nC2,JPY,oops\nC3,JPY,3\n")
    assert report.status == "rejected" and report.problem_count == 1
    assert counts(session) == (0, 0, 0, 1)  # only the incident's own audit event


def test_regulator_cannot_import(session, incident):  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        import_losses(session, REGULATOR, "INC-1", io.BytesIO(GOOD.encode()), "x.csv")


def test_unknown_incident(session):  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError):
        run(session, GOOD)


def test_sample_file_of_many_customers(session, incident):  # type: ignore[no-untyped-def]
    report = run(session, loss_file_bytes(2000))
    assert report.status == "imported"
    assert report.loss_import.customers_created == 2000
    assert report.loss_import.positions_created == report.rows


@pytest.mark.postgres
def test_concurrent_imports_bringing_the_same_new_customers_both_succeed(pg_engine):  # type: ignore[no-untyped-def]
    import threading

    from payouts.db.session import make_session_factory

    factory = make_session_factory(pg_engine)
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    with factory() as session:
        for ref in ("INC-A", "INC-B"):
            incidents.record_incident(session, STAFF, ref=ref, title="t", incident_type="hack", occurred_at=t,
                                      discovered_at=t)
    data = loss_file_bytes(3000)
    barrier = threading.Barrier(2)
    reports = {}

    failures = []

    def run_import(ref: str) -> None:
        try:
            with factory() as session:
                barrier.wait()
                reports[ref] = import_losses(session, STAFF, ref, io.BytesIO(data), f"{ref}.csv")
        except Exception as exc:  # a thread's exception would otherwise only be a warning
            failures.append(exc)

    threads = [threading.Thread(target=run_import, args=(ref,)) for ref in ("INC-A", "INC-B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and set(reports) == {"INC-A", "INC-B"}
    assert {r.status for r in reports.values()} == {"imported"}
    assert sum(r.loss_import.customers_created for r in reports.values()) == 3000
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 3000


def test_a_plain_file_and_the_same_rows_written_unusually_import_alike(session, incident, monkeypatch):  # type: ignore[no-untyped-def]
    from payouts.db import loss_staging

    seen = []
    check_and_stage = loss_staging.check_and_stage

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["rows_are_plain"])
        return check_and_stage(*args, **kwargs)

    monkeypatch.setattr(loss_staging, "check_and_stage", spy)
    plain = loss_file_bytes(300)
    # A space after one comma: the same rows once trimmed, but not plain, so fully checked.
    unusual = plain.replace(b",BTC,", b", BTC,", 1)
    t = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref="INC-2", title="t", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    first = run(session, plain)
    second = import_losses(session, STAFF, "INC-2", io.BytesIO(unusual), "unusual.csv")
    assert (first.status, second.status) == ("imported", "imported")
    assert second.loss_import.customers_updated == 0
    positions = session.execute(
        select(LossPosition.incident_id, Customer.external_ref, LossPosition.asset_code, LossPosition.amount_minor)
        .join(Customer, Customer.id == LossPosition.customer_id)
    ).all()
    by_incident = {}
    for incident_id, ref, asset, amount in positions:
        by_incident.setdefault(incident_id, set()).add((ref, asset, amount))
    assert len(by_incident) == 2 and len(positions) == 2 * first.rows
    assert by_incident[incident.id] == by_incident[second.loss_import.incident_id]
    # PostgreSQL checks rows in SQL, trusting the plain file's; SQLite reads every row in Python.
    assert seen == ([True, False] if session.get_bind().dialect.name == "postgresql" else [])
