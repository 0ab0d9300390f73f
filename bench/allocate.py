"""Benchmark: the allocation engine at 10k/100k/1M customers, then a whole run on PostgreSQL.

    python bench/allocate.py [--sizes 10000,100000,1000000] [--run-customers 1000000]
                             [--database-url postgresql://...] [--skip-engine] [--skip-run]

Part 1 (bench/allocate_engine.py): the pure engine, each size in a fresh process, customers per
second and peak RSS. Goal: 1,000,000 customers in under 10 s and 2 GB, no worse than n log n.

Part 2: run_allocation on PostgreSQL. A fresh database is migrated and filled by COPY with N
customers and their JPY/BTC/ETH positions, with prices, terms (two tranches), a reserve and
three layers that leave a shortfall; the claims are opened and approved (set-up, not timed).
Then, in one child process,
preview (read the records, run the engine, check invariants) and commit (the same plus storing
the run, every customer line, the earmark, the receivables and the audit event) are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_URL = os.environ.get("PAYOUTS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fill(url: str, n: int) -> None:
    """Customers and positions straight into the tables with COPY (set-up only)."""
    import datetime as dt

    import psycopg

    from payouts.db.migrate import upgrade
    from payouts.db.session import make_engine, make_session_factory
    from payouts.domain.roles import SYSTEM_ACTOR
    from sqlalchemy import update

    from payouts.db.models import Claim
    from payouts.services import claims, funding, incidents

    engine = make_engine(url)
    upgrade(engine)
    session = make_session_factory(engine)()
    t = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, SYSTEM_ACTOR, ref="BENCH", title="bench", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    for code, price in (("JPY", "1"), ("BTC", "15012345.67"), ("ETH", "512345.678")):
        incidents.set_reference_price(session, SYSTEM_ACTOR, incident_ref="BENCH", asset_code=code,
                                      price=price, source="bench")
    session.close()
    engine.dispose()
    rng = random.Random(7)
    plain = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain) as conn:
        incident_id = conn.execute("SELECT id FROM incidents WHERE ref = 'BENCH'").fetchone()[0]
        import_id = conn.execute(
            "INSERT INTO loss_imports (incident_id, filename, sha256, byte_size, row_count, customers_created,"
            " customers_updated, positions_created, positions_updated, positions_unchanged,"
            " imported_by_label, created_at) VALUES (%s, 'bench', %s, 0, 0, 0, 0, 0, 0, 0, 'bench', now())"
            " RETURNING id", (incident_id, uuid.uuid4().hex * 2)).fetchone()[0]
        with conn.cursor().copy("COPY customers (id, external_ref, name, email, locale, created_at, updated_at)"
                                " FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, f"C{i:08d}", "", "", "ja", "2026-10-01", "2026-10-01"))
        conn.execute("SELECT setval('customers_id_seq', %s)", (n,))
        maxima = {"JPY": 5_000_000, "BTC": 50_000_000, "ETH": 5 * 10**18}
        with conn.cursor().copy("COPY loss_positions (incident_id, customer_id, asset_code, amount_minor,"
                                " import_id) FROM STDIN") as copy:
            for i in range(1, n + 1):
                for code in rng.sample(list(maxima), rng.randint(1, 3)):
                    copy.write_row((incident_id, i, code, rng.randrange(maxima[code]), import_id))
        conn.commit()
    engine = make_engine(url)
    session = make_session_factory(engine)()
    total = n * 5_000_000  # roughly the eligible total: size the reserve and tower to fall short
    funding.set_terms(session, SYSTEM_ACTOR, incident_ref="BENCH", deductible_jpy=0, cap_jpy=None,
                      tranches_jpy="200000,1000000")
    funding.record_reserve_movement(session, SYSTEM_ACTOR, kind="deposit", amount_jpy=total // 5, memo="bench")
    funding.create_policy(session, SYSTEM_ACTOR, policy_number="B", insurer="bench",
                          period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 12, 31))
    for code, attach, limit, share, aggregate in (("L1", total // 5, total // 5, "1", None),
                                                  ("L2", 2 * total // 5, total // 5, "0.5", None),
                                                  ("L3", 3 * total // 5, total // 10, "1", total // 20)):
        funding.add_layer(session, SYSTEM_ACTOR, policy_number="B", code=code, attachment_jpy=attach,
                          limit_jpy=limit, share=share, aggregate_limit_jpy=aggregate, excluded_incident_types=[])
    # Allocation pays approved claims: open them through the product, then approve them all at
    # once (reviewing a million claims is the back office's work, not this benchmark's).
    claims.open_claims(session, SYSTEM_ACTOR, "BENCH")
    session.execute(update(Claim).where(Claim.status == "open").values(status="approved"))
    session.commit()
    session.close()
    engine.dispose()


def child_run(url: str) -> None:
    from payouts.db.session import make_engine, make_session_factory
    from payouts.domain.roles import SYSTEM_ACTOR
    from payouts.services import allocation

    engine = make_engine(url)
    session = make_session_factory(engine)()
    start = time.perf_counter()
    preview = allocation.preview(session, SYSTEM_ACTOR, "BENCH")
    preview_s = time.perf_counter() - start
    customers = len(preview.result.customers)
    del preview
    start = time.perf_counter()
    run = allocation.commit_allocation(session, SYSTEM_ACTOR, "BENCH")
    commit_s = time.perf_counter() - start
    print(json.dumps({"customers": customers, "preview_s": preview_s, "commit_s": commit_s,
                      "funded": run.total_funded_jpy, "shortfall": run.shortfall_jpy,
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def bench_run(base_url: str, n: int) -> None:
    import psycopg

    admin = base_url.replace("postgresql+psycopg", "postgresql")
    name = f"payouts_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        start = time.perf_counter()
        fill(url, n)
        print(f"set-up (COPY {n:,} customers and their positions): {time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--child", url], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"run_allocation on PostgreSQL, {r['customers']:,} customers:")
    print(f"  preview (read, allocate, check):   {r['preview_s']:.1f} s"
          f"  ({r['customers'] / r['preview_s']:,.0f} customers/s)")
    print(f"  commit (the same + store it all):  {r['commit_s']:.1f} s"
          f"  ({r['customers'] / r['commit_s']:,.0f} customers/s)")
    print(f"  funded ¥{r['funded']:,}, shortfall ¥{r['shortfall']:,}; peak RSS {r['peak_rss_kib'] / 1024:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--run-customers", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_run(args.child)
        return
    if not args.skip_engine:
        subprocess.run([sys.executable, str(REPO / "bench" / "allocate_engine.py"), "--sizes", args.sizes], check=True)
    if not args.skip_run:
        bench_run(args.database_url, args.run_customers)


if __name__ == "__main__":
    main()
