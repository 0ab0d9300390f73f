"""Import jobs: a thin wrapper that opens a session and runs the queued loss import by id."""

from __future__ import annotations

from payouts.jobs.runtime import job_state
from payouts.services import import_jobs


def run_import(job_id: int) -> str | None:
    state = job_state()
    session = state["session_factory"]()
    try:
        job = import_jobs.run_import(session, int(job_id), state["config"].upload_dir)
    finally:
        session.close()
    return job.outcome if job is not None else None
