"""Loss imports run as jobs: queued with the file spooled, run once, safe to run again."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import func, select

from payouts.db.models import ImportJob, LossPosition
from payouts.domain.errors import ConflictError, PermissionDenied
from payouts.services import import_jobs, incidents
from tests.conftest import REGULATOR, STAFF
from tests.helpers import approve_all_claims

T = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
FILE = b"customer_ref,asset,amount\nQ1,BTC,0.5\nQ2,ETH,2\n"


@pytest.fixture
def incident(session):  # type: ignore[no-untyped-def]
    incidents.record_incident(session, STAFF, ref="INC-J", title="t", incident_type="hack", occurred_at=T,
                              discovered_at=T)
    return "INC-J"


def test_a_job_imports_once_and_a_repeated_delivery_does_nothing(session, incident, tmp_path):  # type: ignore[no-untyped-def]
    job = import_jobs.queue_import(session, STAFF, incident, io.BytesIO(FILE), "q.csv", tmp_path)
    assert job.status == "queued" and (tmp_path / job.stored_name).read_bytes() == FILE
    done = import_jobs.run_import(session, job.id, tmp_path)
    assert done is not None and done.status == "done" and done.outcome == "imported" and done.rows == 2
    assert not (tmp_path / job.stored_name).exists()  # the spooled file is removed
    again = import_jobs.run_import(session, job.id, tmp_path)  # RQ delivered it twice
    assert again is not None and again.finished_at == done.finished_at
    assert session.scalar(select(func.count()).select_from(LossPosition)) == 2


def test_an_interrupted_job_runs_again_safely(session, incident, tmp_path):  # type: ignore[no-untyped-def]
    job = import_jobs.queue_import(session, STAFF, incident, io.BytesIO(FILE), "q.csv", tmp_path)
    session.execute(ImportJob.__table__.update().values(status="running"))  # a worker died mid-import
    session.commit()
    done = import_jobs.run_import(session, job.id, tmp_path)
    assert done is not None and done.outcome == "imported"
    assert session.scalar(select(func.count()).select_from(LossPosition)) == 2


def test_queueing_is_refused_when_imports_are_frozen_and_for_readers(session, incident, tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        import_jobs.queue_import(session, REGULATOR, incident, io.BytesIO(FILE), "q.csv", tmp_path)
    incidents.set_reference_price(session, STAFF, incident_ref=incident, asset_code="BTC", price="1", source="s")
    incidents.set_reference_price(session, STAFF, incident_ref=incident, asset_code="ETH", price="1", source="s")
    import_jobs.run_import(session, import_jobs.queue_import(session, STAFF, incident, io.BytesIO(FILE), "q.csv",
                                                             tmp_path).id, tmp_path)
    approve_all_claims(session, STAFF, incident)
    with pytest.raises(ConflictError, match="losses can no longer change"):
        import_jobs.queue_import(session, STAFF, incident, io.BytesIO(FILE), "late.csv", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing spooled for a refused job
