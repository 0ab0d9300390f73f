"""Loss imports run by a worker: a large file is spooled, queued, and imported as a job.

The import itself is the same all-or-nothing service as an upload in the request; the job
only records when it started, how it ended and which import it made. RQ may run a job twice
or after a worker died: a job already done does nothing, and re-running an interrupted import
is safe because an import is one transaction and the same file is recognised once imported.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db.models import ImportJob, Incident
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import NotFoundError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor, Role
from payouts.services.access import require_role
from payouts.services.incidents import ensure_claims_not_open, ensure_not_allocated, find_incident
from payouts.services.loss_import import import_losses

RUN_IMPORT_JOB = "payouts.jobs.imports.run_import"
MAX_PROBLEMS_KEPT = 50


def queue_import(session: Session, actor: Actor, incident_ref: str, stream: BinaryIO, filename: str,
                 upload_dir: str | os.PathLike[str]) -> ImportJob:
    """Spool the file under ``upload_dir`` and record a queued job; the caller dispatches
    RUN_IMPORT_JOB with its id after this returns (the job row is committed by then)."""
    require_role(actor, STAFF_WRITERS, "import losses")
    incident = find_incident(session, incident_ref)
    # Refused now rather than after a wait in the queue.
    ensure_not_allocated(session, incident, "losses")
    ensure_claims_not_open(incident, "losses")
    root = Path(upload_dir)
    root.mkdir(parents=True, exist_ok=True)
    stored_name = "import-" + secrets.token_hex(16)
    target = root / stored_name
    with open(target, "xb") as out:
        shutil.copyfileobj(stream, out, 1024 * 1024)
    try:
        with transaction(session):
            job = ImportJob(incident_id=incident.id, filename=(filename or "upload.csv")[-255:],
                            stored_name=stored_name, byte_size=target.stat().st_size, status="queued",
                            created_by_label=actor.label, created_by_role=actor.role.value,
                            created_by_id=actor.user_id, created_at=utcnow())
            session.add(job)
            session.flush()
            record_event(session, actor, "loss_import.queued", "import_job", job.id,
                         f"Loss file {job.filename} ({job.byte_size:,} bytes) queued for {incident.ref}",
                         {"incident": incident.ref, "filename": job.filename, "byte_size": job.byte_size})
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return job


def run_import(session: Session, job_id: int, upload_dir: str | os.PathLike[str]) -> ImportJob | None:
    """The job's work: import the spooled file, record the outcome, remove the file."""
    with transaction(session):
        job = session.scalar(select(ImportJob).where(ImportJob.id == job_id).with_for_update())
        if job is None or job.status == "done":
            return job  # gone, or a repeated delivery of a finished job
        job.status = "running"
        job.started_at = utcnow()
        incident_ref = session.scalar(select(Incident.ref).where(Incident.id == job.incident_id))
    # The import is made by whoever queued it; the trail says it ran as a job.
    actor = Actor(f"{job.created_by_label} (import job #{job.id})", Role(job.created_by_role), job.created_by_id)
    path = Path(upload_dir) / job.stored_name
    with open(path, "rb") as stream:
        report = import_losses(session, actor, incident_ref, stream, job.filename)
    with transaction(session):
        job = session.scalar(select(ImportJob).where(ImportJob.id == job_id).with_for_update())
        assert job is not None
        job.status = "done"
        job.finished_at = utcnow()
        job.outcome = report.status
        job.rows = report.rows
        job.problem_count = report.problem_count
        job.problems = json.dumps(report.problems[:MAX_PROBLEMS_KEPT], ensure_ascii=False)
        job.import_id = report.loss_import.id if report.loss_import is not None else None
        record_event(session, actor, "loss_import.job_finished", "import_job", job.id,
                     f"Import job #{job.id} ({job.filename}): {report.status}",
                     {"status": ["running", "done"], "outcome": report.status, "rows": report.rows,
                      "problems": report.problem_count, "import_id": job.import_id})
    path.unlink(missing_ok=True)
    return job


def get_job(session: Session, actor: Actor, incident_ref: str, job_id: int) -> ImportJob:
    require_role(actor, BACK_OFFICE_READERS, "read import jobs")
    incident = find_incident(session, incident_ref)
    job = session.scalar(select(ImportJob).where(ImportJob.id == job_id, ImportJob.incident_id == incident.id))
    if job is None:
        raise NotFoundError(f"no import job #{job_id} for incident {incident_ref}")
    return job
