"""Disbursements on real RQ workers, real Redis and real PostgreSQL, when things go wrong:
a job delivered twice, a worker killed mid-batch, Redis losing every job, a bank whose answer
never arrives. Each time every customer is paid, and paid once.

Workers are separate processes started through payouts.jobs.runtime.run_worker (the code
behind `payouts worker`, with its fork hook), on a queue of this test's own so that other runs
sharing the test Redis are not disturbed; the database is a fresh PostgreSQL database per test.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from payouts.config import Config
from payouts.db.models import AuditEvent, Disbursement, SandboxTransfer
from payouts.db.session import make_engine, make_session_factory
from payouts.db.types import utcnow
from payouts.jobs.disbursements import JOB_ACTOR
from payouts.jobs.runtime import make_dispatch
from payouts.services import allocation, audit_trail, disbursements, funding, incidents
from payouts.services.loss_import import import_losses
from tests.conftest import PG_URL, REDIS_URL, REGULATOR, STAFF, need_service
from tests.helpers import approve_all_claims
from tests.integration.test_disbursements import give_accounts

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
T = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
# A worker exactly as `payouts worker --burst` runs one, on this test's queue.
WORKER = ("import sys\n"
          "from payouts.config import Config\n"
          "from payouts.jobs.runtime import run_worker\n"
          "run_worker(Config.from_env(), queues=(sys.argv[1],), burst=True)\n")
DEADLINE = 25.0  # seconds any wait may take before the test fails


@dataclass
class Live:
    db_url: str
    redis_url: str
    queue: str
    engine: Engine
    session: Session
    redis: Redis
    dispatch: Callable[..., None]
    workers: list[subprocess.Popen[bytes]]
    tmp: Path

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """A worker process in a process group of its own (so that it can be killed whole)."""
        environ = {**os.environ, "PAYOUTS_ENV": "test", "PAYOUTS_DATABASE_URL": self.db_url,
                   "PAYOUTS_REDIS_URL": self.redis_url, "PAYOUTS_SANDBOX_LATENCY_MS": "0",
                   "PYTHONPATH": str(ROOT), **env}
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - closed by the process
        process = subprocess.Popen([sys.executable, "-c", WORKER, self.queue], env=environ, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its work horse at once, as a machine dying would. RQ puts each
        horse in a process group of its own, so the worker's group alone would spare it: freeze
        the worker (no new horse), kill its horses' groups, then its own."""
        os.killpg(process.pid, signal.SIGSTOP)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        for child in map(int, children):
            try:
                os.killpg(os.getpgid(child), signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def wait_for(self, process: subprocess.Popen[bytes]) -> None:
        try:
            code = process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {process.pid} still running after {DEADLINE}s: {self.logs()}")
        assert code == 0, self.logs()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("worker-*.log")))

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(
                select(Disbursement.status, func.count()).group_by(Disbursement.status))}

    def sweep(self, batch_size: int) -> disbursements.SweepReport:
        return disbursements.sweep(self.session, JOB_ACTOR, self.dispatch, batch_size=batch_size,
                                   stale_after=dt.timedelta(0))

    def forget_everything(self) -> int:
        """What a FLUSHDB does to this test: every job, registry and worker record of its queue
        is gone (only this test's keys: other runs may share the test Redis)."""
        queue = Queue(self.queue, connection=self.redis)
        job_ids = set(queue.job_ids)
        for registry in (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry):
            job_ids |= set(registry(self.queue, connection=self.redis).get_job_ids())
        keys = {f"rq:job:{i}".encode() for i in job_ids} | {f"rq:results:{i}".encode() for i in job_ids}
        keys |= set(self.redis.scan_iter(match=f"*{self.queue}*"))
        keys |= {w.key.encode() for w in Worker.all(queue=queue)}
        return int(self.redis.delete(*keys)) if keys else 0


@pytest.fixture
def live(databases, tmp_path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    need_service("PostgreSQL (PAYOUTS_TEST_DATABASE_URL)", PG_URL)
    redis_url = need_service("Redis (PAYOUTS_TEST_REDIS_URL)", REDIS_URL)
    assert databases.dialect == "postgresql"
    db_url = databases.new_url()
    engine = make_engine(db_url)
    session = make_session_factory(engine)()
    queue = f"payouts-test-{uuid.uuid4().hex[:12]}"
    redis = Redis.from_url(redis_url)
    dispatch = make_dispatch(Config(env="test", database_url=db_url, redis_url=redis_url), queue=queue)
    state = Live(db_url, redis_url, queue, engine, session, redis, dispatch, [], tmp_path)
    try:
        yield state
    finally:
        for process in state.workers:
            if process.poll() is None:
                state.kill(process)
        state.forget_everything()
        session.close()
        engine.dispose()
        redis.close()


def incident_with(session: Session, customers: int) -> int:
    """An incident of ``customers`` customers, all approved and with approved accounts, and a
    reserve that pays everyone in full. Returns the total to pay."""
    incidents.record_incident(session, STAFF, ref="INC-R", title="t", incident_type="hack", occurred_at=T,
                              discovered_at=T)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-R", asset_code="JPY", price="1", source="yen")
    rows = "".join(f"C{i:05d},JPY,{10_000 + i}\n" for i in range(1, customers + 1))
    report = import_losses(session, STAFF, "INC-R", io.BytesIO(("customer_ref,asset,amount\n" + rows).encode()),
                           "f.csv")
    assert report.status == "imported", report.problems
    funding.set_terms(session, STAFF, incident_ref="INC-R", deductible_jpy=0, cap_jpy=None, tranches_jpy="")
    total = sum(10_000 + i for i in range(1, customers + 1))
    funding.record_reserve_movement(session, STAFF, kind="deposit", amount_jpy=total, memo="cash")
    approve_all_claims(session, STAFF, "INC-R")
    give_accounts(session, [f"C{i:05d}" for i in range(1, customers + 1)])
    return total


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll the database until ``condition`` holds; fail (saying what) after ``deadline``."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline}s waiting until {what}")
        time.sleep(0.02)


def assert_paid_once(live: Live, customers: int, total: int) -> None:
    """Every instruction paid, each by exactly one transfer under its own key, to the yen."""
    with live.engine.connect() as conn:
        instructions = {k: (s, a) for k, s, a in conn.execute(
            select(Disbursement.idempotency_key, Disbursement.status, Disbursement.amount_jpy))}
        transfers = {k: (n, a, o) for k, n, a, o in conn.execute(
            select(SandboxTransfer.idempotency_key, func.count(), func.sum(SandboxTransfer.amount_jpy),
                   func.min(SandboxTransfer.outcome)).group_by(SandboxTransfer.idempotency_key))}
    assert len(instructions) == customers
    assert {s for s, _a in instructions.values()} == {"paid"}, live.statuses()
    assert set(transfers) == set(instructions)  # no transfer the database does not know about
    assert {n for n, _a, _o in transfers.values()} == {1}
    assert all(transfers[k][1] == a and transfers[k][2] == "paid" for k, (_s, a) in instructions.items())
    assert sum(a for _n, a, _o in transfers.values()) == total
    live.session.commit()
    assert funding.reserve_balance(live.session).payments == total
    report = disbursements.reconcile(live.session, REGULATOR, "INC-R")
    assert report.balanced and report.paid_jpy == total
    result = audit_trail.verify(live.session, REGULATOR)
    assert result.ok, result.problem


def test_a_job_enqueued_twice_pays_once(live):  # type: ignore[no-untyped-def]
    total = incident_with(live.session, 60)
    allocation.commit_allocation(live.session, STAFF, "INC-R", batch_size=20, dispatch=live.dispatch)
    batches = sorted(live.session.scalars(select(Disbursement.batch_id).distinct()))
    assert len(batches) == 3
    # RQ delivers at least once: here, every batch twice, to two workers at the same time.
    # (Dispatching again would not do it: a batch's job still waiting in the queue is not
    # enqueued twice; so the duplicates go to RQ directly, as a redelivery would.)
    disbursements.dispatch_batches(live.session, live.dispatch, batches)
    queue = Queue(live.queue, connection=live.redis)
    assert queue.count == 3
    for batch_id in batches:
        queue.enqueue(disbursements.PAY_BATCH_JOB, batch_id)
    job_ids = queue.job_ids
    assert sorted(Job.fetch(i, connection=live.redis).args[0] for i in job_ids) == sorted(batches * 2)
    workers = [live.start_worker(), live.start_worker()]
    for worker in workers:
        live.wait_for(worker)
    assert_paid_once(live, 60, total)
    results = [Job.fetch(i, connection=live.redis) for i in job_ids]
    assert {job.get_status() for job in results} == {"finished"}, live.logs()
    # Between the two deliveries of a batch, its payments were paid once.
    assert sum(job.return_value()["paid"] for job in results) == 60  # type: ignore[index]
    with live.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.action == "disbursement.paid")) == 60


def test_a_worker_killed_mid_batch_leaves_nothing_unpaid_or_paid_twice(live):  # type: ignore[no-untyped-def]
    total = incident_with(live.session, 200)
    allocation.commit_allocation(live.session, STAFF, "INC-R", batch_size=20, dispatch=live.dispatch)
    # Each call to the bank takes 2 s: a window no poll misses, however loaded the machine
    # (CI once saw a 250 ms call's 100 ms window missed by every poll of all ten batches).
    worker = live.start_worker(PAYOUTS_SANDBOX_LATENCY_MS="2000")

    def mid_run() -> bool:
        # Some paid, and a batch sent to the bank within the last second: its 2 s call is
        # surely still under way when the worker dies.
        assert worker.poll() is None, live.logs()
        with live.engine.connect() as conn:
            just_sent = conn.scalar(select(func.count()).select_from(Disbursement).where(
                Disbursement.status == "submitting",
                Disbursement.updated_at >= utcnow() - dt.timedelta(seconds=1)))
        return bool(just_sent) and 0 < live.statuses().get("paid", 0) < 200

    wait_until(mid_run, "some payments are paid and a batch is at the bank")
    live.kill(worker)
    killed = live.statuses()
    assert killed.get("paid", 0) < 200 and killed.get("submitting", 0) > 0, killed
    # Another worker, and the sweeper re-enqueues what the database says is unfinished
    # (stale_after=0: the dead worker will never come back).
    report = live.sweep(batch_size=20)
    assert report.dispatched >= 1
    live.wait_for(live.start_worker())
    assert_paid_once(live, 200, total)
    with live.engine.connect() as conn:
        resent = conn.scalars(select(AuditEvent.details).where(
            AuditEvent.action == "disbursement_batch.submitting")).all()
    assert any('"resent_after_interruption":[]' not in d for d in resent), "\n".join([str(killed), *resent, live.logs()])


def test_redis_losing_every_job_delays_payments_but_loses_none(live):  # type: ignore[no-untyped-def]
    total = incident_with(live.session, 200)
    allocation.commit_allocation(live.session, STAFF, "INC-R", batch_size=20, dispatch=live.dispatch)
    assert Queue(live.queue, connection=live.redis).count == 10
    worker = live.start_worker(PAYOUTS_SANDBOX_LATENCY_MS="150")
    wait_until(lambda: live.statuses().get("paid", 0) > 0, "the worker has paid something")
    assert live.forget_everything() > 0  # Redis flushed while the worker runs
    live.wait_for(worker)  # it finishes what it was doing, then finds nothing more to do
    stranded = live.statuses()
    assert stranded.get("paid", 0) < 200, stranded
    # The database still knows: the sweeper enqueues every unfinished batch again.
    report = live.sweep(batch_size=20)
    assert report.dispatched >= 1
    live.wait_for(live.start_worker())
    assert_paid_once(live, 200, total)


def test_a_bank_answer_lost_after_it_paid_is_not_paid_again(live):  # type: ignore[no-untyped-def]
    total = incident_with(live.session, 40)
    allocation.commit_allocation(live.session, STAFF, "INC-R", batch_size=20, dispatch=live.dispatch)
    # The bank books every batch, and every answer is lost on the way back.
    live.wait_for(live.start_worker(PAYOUTS_SANDBOX_TIMEOUT_AFTER_ACCEPT_PER_MILLE="1000"))
    assert live.statuses() == {"retrying": 40}
    with live.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SandboxTransfer)) == 40
        references = dict(conn.execute(select(SandboxTransfer.idempotency_key, SandboxTransfer.bank_reference)).all())
    # Nothing is due before its retry time, however often the sweeper runs.
    assert live.sweep(batch_size=20).dispatched == 0
    # The retry time comes; the bank now answers, with the payments it already made.
    live.session.execute(update(Disbursement).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
    live.session.commit()
    assert live.sweep(batch_size=20).dispatched == 2
    live.wait_for(live.start_worker())
    assert_paid_once(live, 40, total)
    with live.engine.connect() as conn:
        got = dict(conn.execute(select(Disbursement.idempotency_key, Disbursement.rail_reference)).all())
        attempts = set(conn.scalars(select(Disbursement.attempts)))
    assert got == references and attempts == {2}


def test_a_sweep_does_not_double_a_queue_still_waiting(live):  # type: ignore[no-untyped-def]
    incident_with(live.session, 60)
    allocation.commit_allocation(live.session, STAFF, "INC-R", batch_size=20, dispatch=live.dispatch)
    queue = Queue(live.queue, connection=live.redis)
    assert queue.count == 3
    # Every batch is due again at once (stale_after 0), but each one's job is still waiting.
    assert live.sweep(batch_size=20).dispatched == 3
    assert queue.count == 3
