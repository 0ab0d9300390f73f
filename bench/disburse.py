"""Benchmark: paying N customers through real `payouts worker` processes, RQ and PostgreSQL.

    python bench/disburse.py [--customers 1000000] [--workers 2] [--batch-size 1000]
                             [--database-url postgresql://postgres@127.0.0.1/postgres]
                             [--redis-url redis://127.0.0.1:6379/14] [--noop-jobs 5000]
                             [--latency-ms 0] [--keep-database]

1. Set-up (not timed): a fresh database is created next to --database-url and migrated; an
   incident, a committed run (reserve only), N customers with approved claims, allocation lines
   and approved payout accounts, and N pending payments are written with COPY
   (payouts.db.bulk.bulk_insert); payouts.services.disbursements.plan_batches groups them.
2. Payments (timed): every batch is enqueued (dispatch_batches), W `payouts worker --burst`
   processes pay them through the sandbox bank; the clock stops when the last worker exits.
   Then exactly-once is checked: N paid instructions, N sandbox transfers, one per key, the
   same yen, the reserve ledger's payments equal to the total.
3. RQ's own ceiling (timed): as many no-op jobs (``disburse.noop``) on the same Redis, run by the
   same number of `payouts worker --burst` processes.

The goal is 1,000,000 payments in under 5 minutes (3,334 a second). The database is dropped at
the end (unless --keep-database) and the Redis database given is flushed before and after:
give it one of its own (db 14 by default; the tests use db 15).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
GOAL_PAYMENTS, GOAL_SECONDS = 1_000_000, 300


def noop() -> None:
    """The no-op job: what RQ costs with no work at all (imported by the worker as disburse.noop)."""


def _log(message: str) -> None:
    print(message, flush=True)


def _payouts_script() -> str:
    script = Path(sys.executable).parent / "payouts"
    if not script.exists():
        sys.exit(f"{script} not found: run `make install` first")
    return str(script)


def create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from payouts.db.session import normalise_url

    url = make_url(normalise_url(admin_url))
    name = f"payouts_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from payouts.db.session import normalise_url

    name = make_url(url).database
    admin = create_engine(make_url(normalise_url(admin_url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fill(url: str, n: int, batch_size: int) -> tuple[int, int]:
    """Everything a committed run leaves behind, for n customers. Returns (batches, total yen)."""
    from sqlalchemy import text

    from payouts.db.bulk import bulk_insert
    from payouts.db.migrate import upgrade
    from payouts.db.models import AllocationRun, AllocationSource, Incident, ReserveEntry
    from payouts.db.session import make_engine, make_session_factory
    from payouts.domain.roles import SYSTEM_ACTOR
    from payouts.services import disbursements, funding, incidents

    engine = make_engine(url)
    upgrade(engine)
    session = make_session_factory(engine)()
    t = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    now = dt.datetime.now(dt.timezone.utc)
    amounts = [10_000 + (i * 7919) % 990_000 for i in range(1, n + 1)]
    total = sum(amounts)
    incidents.record_incident(session, SYSTEM_ACTOR, ref="BENCH", title="bench", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    funding.record_reserve_movement(session, SYSTEM_ACTOR, kind="deposit", amount_jpy=total, memo="bench")
    incident = session.query(Incident).filter_by(ref="BENCH").one()
    incident.status = "paying"
    run = AllocationRun(incident_id=incident.id, kind="initial", sequence=1, inputs_sha256="0" * 64,
                        inputs_summary="{}", customers=n, total_eligible_jpy=total, total_funded_jpy=total,
                        shortfall_jpy=0, created_by_label="bench")
    session.add(run)
    session.flush()
    session.add(AllocationSource(run_id=run.id, draw_order=0, source_id="reserve", available_jpy=total,
                                 used_jpy=total))
    session.add(ReserveEntry(kind="earmark", amount_jpy=total, incident_id=incident.id, allocation_run_id=run.id,
                             created_by_label="bench", memo="bench"))
    session.flush()
    ids = range(1, n + 1)
    bulk_insert(session, "customers", ("id", "external_ref", "name", "email", "locale", "created_at", "updated_at"),
                ((i, f"C{i:08d}", "", "", "ja", now, now) for i in ids))
    bulk_insert(session, "claims", ("incident_id", "customer_id", "status", "version", "total_jpy", "status_reason",
                                    "row_version", "created_at", "updated_at", "decided_at"),
                ((incident.id, i, "approved", 1, a, "", 1, now, now, now) for i, a in zip(ids, amounts)))
    bulk_insert(session, "allocation_lines", ("run_id", "customer_id", "approved_jpy", "eligible_jpy", "payout_jpy",
                                              "by_source"),
                ((run.id, i, a, a, a, f"[{a}]") for i, a in zip(ids, amounts)))
    bulk_insert(session, "payout_destinations", (
        "id", "customer_id", "bank_code", "branch_code", "account_type", "account_number", "holder_kana", "status",
        "approvals_required", "submitted_by_label", "submitted_at", "decided_at", "decision_reason", "row_version"),
        ((i, i, "0005", "123", "ordinary", f"{1_000_000 + i % 9_000_000:07d}", "ﾍﾞﾝﾁ ﾀﾛｳ", "approved", 1, "bench",
          now, now, "", 1) for i in ids))
    bulk_insert(session, "disbursements", (
        "incident_id", "run_id", "customer_id", "source_id", "amount_jpy", "destination_id", "status",
        "idempotency_key", "attempts", "failure_reason", "created_at", "updated_at"),
        ((incident.id, run.id, i, "reserve", a, i, "pending", disbursements.payment_key(run.id, i, "reserve", i),
          0, "", now, now) for i, a in zip(ids, amounts)))
    for table in ("customers", "payout_destinations"):
        session.execute(text(f"SELECT setval('{table}_id_seq', :n)"), {"n": n})
    batches = disbursements.plan_batches(session, incident.id, batch_size)
    session.commit()
    session.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return len(batches), total


def run_workers(count: int, env: dict[str, str]) -> float:
    """Start ``count`` `payouts worker --burst` processes; seconds until the last one exits."""
    script = _payouts_script()
    start = time.perf_counter()
    workers = [subprocess.Popen([script, "worker", "--burst"], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]
    for worker in workers:
        _out, err = worker.communicate()
        if worker.returncode != 0:
            sys.exit(f"a worker failed ({worker.returncode}):\n{err.decode(errors='replace')[-4000:]}")
    return time.perf_counter() - start


def pay(url: str, redis_url: str, workers: int, latency_ms: int, n: int, total: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from payouts.config import Config
    from payouts.db.models import AuditEvent, Disbursement, DisbursementBatch, SandboxTransfer
    from payouts.db.session import make_engine, make_session_factory
    from payouts.jobs.runtime import make_dispatch
    from payouts.services import disbursements, funding

    engine = make_engine(url)
    session = make_session_factory(engine)()
    batch_ids = list(session.scalars(select(DisbursementBatch.id).order_by(DisbursementBatch.id)))
    session.commit()
    started = time.perf_counter()
    disbursements.dispatch_batches(session, make_dispatch(Config(database_url=url, redis_url=redis_url)), batch_ids)
    enqueue_seconds = time.perf_counter() - started
    env = {**os.environ, "PAYOUTS_DATABASE_URL": url, "PAYOUTS_REDIS_URL": redis_url,
           "PAYOUTS_SANDBOX_LATENCY_MS": str(latency_ms)}
    seconds = run_workers(workers, env)
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Disbursement.status, func.count()).group_by(Disbursement.status)).all())
        first, last = conn.execute(select(func.min(Disbursement.paid_at), func.max(Disbursement.paid_at))).one()
        transfers, keys, paid_jpy = conn.execute(select(
            func.count(), func.count(SandboxTransfer.idempotency_key.distinct()),
            func.coalesce(func.sum(SandboxTransfer.amount_jpy), 0)).where(SandboxTransfer.outcome == "paid")).one()
        unmatched = conn.scalar(select(func.count()).select_from(Disbursement).outerjoin(
            SandboxTransfer, SandboxTransfer.idempotency_key == Disbursement.idempotency_key)
            .where(SandboxTransfer.idempotency_key.is_(None)))
        events = conn.scalar(select(func.count()).select_from(AuditEvent))
    reserve_paid = funding.reserve_balance(session).payments
    session.close()
    engine.dispose()
    ok = (statuses == {"paid": n} and transfers == keys == n and int(paid_jpy) == total and unmatched == 0
          and reserve_paid == total)
    _log(f"  statuses {statuses}; sandbox transfers {transfers} ({keys} keys), ¥{int(paid_jpy):,} of ¥{total:,};"
         f" reserve payments ¥{reserve_paid:,}; audit events {events:,}")
    if not ok:
        sys.exit("EXACTLY-ONCE CHECK FAILED")
    _log("  exactly once: every instruction paid, one transfer per key, to the yen")
    return {"seconds": seconds, "enqueue": enqueue_seconds,
            "paying": (last - first).total_seconds() if first and last else 0.0}


def noop_jobs(redis_url: str, url: str, workers: int, jobs: int) -> float:
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    queue = Queue("payouts-default", connection=connection)
    for start in range(0, jobs, 1000):
        queue.enqueue_many([Queue.prepare_data("disburse.noop") for _ in range(start, min(jobs, start + 1000))])
    assert queue.count == jobs, queue.count
    env = {**os.environ, "PAYOUTS_DATABASE_URL": url, "PAYOUTS_REDIS_URL": redis_url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)}
    seconds = run_workers(workers, env)
    left = queue.count
    connection.close()
    if left:
        sys.exit(f"{left} no-op jobs were left in the queue")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database-url", default=os.environ.get("PAYOUTS_BENCH_DATABASE_URL",
                                                                  "postgresql://postgres@127.0.0.1/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("PAYOUTS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--noop-jobs", type=int, default=5_000, help="0 skips the no-op measurement")
    parser.add_argument("--latency-ms", type=int, default=0, help="the sandbox bank's latency per batch call")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from redis import Redis

    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    url = create_database(args.database_url)
    n = args.customers
    try:
        _log(f"disbursement benchmark: {n:,} customers, {args.workers} workers, batches of {args.batch_size},"
             f" sandbox latency {args.latency_ms} ms; database {url.rsplit('/', 1)[1]}, Redis {args.redis_url}")
        started = time.perf_counter()
        batches, total = fill(url, n, args.batch_size)
        _log(f"set-up (not timed): {n:,} payments in {batches:,} batches, ¥{total:,}, in"
             f" {time.perf_counter() - started:.1f} s")
        result = pay(url, args.redis_url, args.workers, args.latency_ms, n, total)
        per_second = n / result["seconds"]
        _log(f"payments: {n:,} in {result['seconds']:.1f} s (enqueue {result['enqueue']:.2f} s, first to last payment"
             f" {result['paying']:.1f} s) = {per_second:,.0f} payments/s, {batches / result['seconds']:.1f} jobs/s")
        if args.noop_jobs > 0:
            noop_seconds = noop_jobs(args.redis_url, url, args.workers, args.noop_jobs)
            noop_per_second = args.noop_jobs / noop_seconds
            _log(f"no-op jobs: {args.noop_jobs:,} in {noop_seconds:.1f} s = {noop_per_second:,.0f} jobs/s"
                 f" ({args.workers} workers, same Redis)")
            _log(f"ratio: {per_second / noop_per_second:.1f} payments per no-op job's time"
                 f" (a payment job of {args.batch_size} costs {noop_per_second / (batches / result['seconds']):.1f}"
                 " no-op jobs)")
        projected = GOAL_PAYMENTS / per_second
        verdict = "MEETS" if projected <= GOAL_SECONDS else "MISSES"
        _log(f"goal: {GOAL_PAYMENTS:,} payments in under {GOAL_SECONDS // 60} minutes ({GOAL_PAYMENTS / GOAL_SECONDS:,.0f}/s):"
             f" {verdict} at this rate ({projected / 60:.1f} minutes for {GOAL_PAYMENTS:,})")
    finally:
        redis.flushdb()
        redis.close()
        if args.keep_database:
            _log(f"kept database {url}")
        else:
            drop_database(args.database_url, url)


if __name__ == "__main__":
    main()
