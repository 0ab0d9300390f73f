"""Disbursement jobs: thin wrappers that open a session and call the service with ids only.

RQ may deliver a job twice or after a worker died; the service re-reads the database and the
rail honours idempotency keys, so running a job again is always safe.
"""

from __future__ import annotations

from fractions import Fraction

from payouts.config import Config
from payouts.domain.roles import Actor, Role
from payouts.jobs.runtime import job_state
from payouts.rails.base import Rail
from payouts.services import disbursements

JOB_ACTOR = Actor(label="disbursement worker", role=Role.ADMIN)


def make_rail(config: Config, engine) -> Rail:  # type: ignore[no-untyped-def]
    """The rail the deployment pays through (PAYOUTS_RAIL)."""
    if config.rail == "zengin":
        from payouts.rails.zengin import ZenginRail

        return ZenginRail()
    from payouts.rails.sandbox import SandboxRail

    return SandboxRail(engine, latency_ms=config.sandbox_latency_ms,
                       transient_failure_rate=Fraction(config.sandbox_transient_per_mille, 1000),
                       rejection_rate=Fraction(config.sandbox_rejection_per_mille, 1000),
                       timeout_after_accept_rate=Fraction(config.sandbox_timeout_after_accept_per_mille, 1000))


def pay_batch(batch_id: int) -> dict[str, int]:
    state = job_state()
    session = state["session_factory"]()
    try:
        outcome = disbursements.process_batch(session, JOB_ACTOR, make_rail(state["config"], state["engine"]),
                                              int(batch_id))
    finally:
        session.close()
    return {"paid": outcome.paid, "retrying": outcome.retrying, "needs_attention": outcome.needs_attention}
