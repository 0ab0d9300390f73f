"""Benchmark: the product's loss import against PostgreSQL's own COPY of the same file.

    python bench/import_losses.py [--rows 1000000] [--database-url postgresql://...]

Generates a loss file of N rows, imports it into a fresh, migrated PostgreSQL database through
payouts' own service (validation, staging, merge, audit), then loads the same file with COPY
into a bare table, and prints both times, their ratio and the import's peak memory. The import
runs in a child process so its peak RSS is its own. Goal: within 3x of COPY at 1,000,000 rows,
with peak memory that does not grow with the file size.

It also times two ways of writing the imported customers and positions again, without any
checks: into tables keyed like the import's (what writing into live tables costs), and the
cheapest conceivable way (COPY into bare tables, then keys, index and foreign keys in bulk).
The second is a lower bound for any import that writes these records, so it says how close to
COPY one can come on the machine at hand.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_URL = os.environ.get("PAYOUTS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def write_file(path: Path, rows: int) -> None:
    from payouts.domain.sample_losses import HEADER, loss_rows

    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        # More customers than needed; stop at exactly `rows` data rows.
        out.writelines(islice(loss_rows(rows), rows))


def child_import(url: str, path: str) -> None:
    """Runs in a fresh process: migrate, record the incident, import, report JSON."""
    import datetime as dt

    from payouts.db.migrate import upgrade
    from payouts.db.session import make_engine, make_session_factory
    from payouts.domain.roles import SYSTEM_ACTOR
    from payouts.services import incidents
    from payouts.services.loss_import import import_losses

    engine = make_engine(url)
    upgrade(engine)
    steps = _time_statements(engine)
    session = make_session_factory(engine)()
    t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, SYSTEM_ACTOR, ref="BENCH", title="bench",
                              incident_type="hack", occurred_at=t, discovered_at=t)
    steps.clear()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with open(path, "rb") as stream:
        report = import_losses(session, SYSTEM_ACTOR, "BENCH", stream, "bench.csv")
    elapsed = time.perf_counter() - start
    assert report.status == "imported", report.problems[:5]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    slowest = sorted(steps, reverse=True)[:8]
    print(json.dumps({"seconds": elapsed, "rows": report.rows, "rss_before_kib": before,
                      "rss_peak_kib": peak, "steps": slowest}))


def _time_statements(engine):  # type: ignore[no-untyped-def]
    """Collect (seconds, statement head) for every SQL statement the import runs."""
    from sqlalchemy import event

    steps: list[tuple[float, str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, _cursor, _statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        conn.info["bench_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        steps.append((time.perf_counter() - conn.info.pop("bench_t0"), " ".join(statement.split())[:90]))

    return steps


def copy_bare(url: str, path: Path) -> float:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=False) as conn:
        conn.execute("CREATE TABLE bare_losses (customer_ref text, asset text, amount numeric,"
                     " name text, email text)")
        start = time.perf_counter()
        with conn.cursor() as cur, path.open("rb") as stream:
            with cur.copy("COPY bare_losses FROM STDIN (FORMAT csv, HEADER true)") as copy:
                while chunk := stream.read(1 << 20):
                    copy.write(chunk)
        conn.commit()
        return time.perf_counter() - start


def rewrite_floor(url: str) -> float:
    """Seconds to write the rows the import wrote again, into tables keyed as the import's are.

    Copies the imported customers and positions, already typed and in the database (and
    likely still in its cache), into fresh tables that have the same primary keys and unique
    index, with no checks: what writing these records into live, keyed tables costs.
    """
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=False) as conn:
        conn.execute("CREATE TABLE floor_customers (LIKE customers INCLUDING INDEXES)")
        conn.execute("CREATE TABLE floor_positions (LIKE loss_positions INCLUDING INDEXES)")
        conn.commit()
        start = time.perf_counter()
        conn.execute("INSERT INTO floor_customers SELECT * FROM customers ORDER BY external_ref")
        conn.execute("INSERT INTO floor_positions SELECT * FROM loss_positions"
                     " ORDER BY incident_id, customer_id, asset_code")
        conn.commit()
        return time.perf_counter() - start


#: The best-case writes, step by step: (label, SQL), run after the two COPYs.
_BEST_CASE_STEPS = (
    ("customers' primary key", "ALTER TABLE best_customers ADD PRIMARY KEY (id)"),
    ("customers' reference index", "CREATE UNIQUE INDEX ON best_customers (external_ref)"),
    ("positions' primary key",
     "ALTER TABLE best_positions ADD PRIMARY KEY (incident_id, customer_id, asset_code)"),
    ("positions' customer index", "CREATE INDEX ON best_positions (customer_id)"),
    ("foreign keys checked",
     "ALTER TABLE best_positions ADD FOREIGN KEY (customer_id) REFERENCES best_customers (id),"
     " ADD FOREIGN KEY (asset_code) REFERENCES assets (code),"
     " ADD FOREIGN KEY (incident_id) REFERENCES incidents (id),"
     " ADD FOREIGN KEY (import_id) REFERENCES loss_imports (id)"),
)


def best_case_floor(url: str, tmp: Path) -> tuple[float, list[tuple[float, str]]]:
    """Seconds for the cheapest conceivable write of the import's records, and its steps.

    The imported customers and positions are exported in COPY's binary format first (not
    timed): rows already parsed, checked, typed, de-duplicated and given their ids. The timed
    part COPYs them into empty tables with no key, then builds the keys and the index in bulk
    and checks the foreign keys in one pass each, and commits. A real import cannot do less:
    it must also read and check the file, and its customers table is not empty, so it cannot
    build that table's indexes in bulk. If this alone exceeds a goal, no import meets it here.
    """
    import psycopg

    plain = url.replace("postgresql+psycopg", "postgresql")
    exports = {"best_customers": tmp / "customers.bin", "best_positions": tmp / "positions.bin"}
    with psycopg.connect(plain, autocommit=True) as conn:
        for (table, target), source in zip(exports.items(), ("customers", "loss_positions")):
            with target.open("wb") as out, conn.cursor().copy(
                f"COPY (SELECT * FROM {source}) TO STDOUT (FORMAT binary)"
            ) as copy:
                for data in copy:
                    out.write(data)
            conn.execute(f"CREATE TABLE {table} (LIKE {source} INCLUDING DEFAULTS)")
    steps: list[tuple[float, str]] = []
    with psycopg.connect(plain, autocommit=False) as conn:
        start = lap = time.perf_counter()
        for table, source in exports.items():
            with conn.cursor() as cur, source.open("rb") as stream:
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                    while chunk := stream.read(1 << 20):
                        copy.write(chunk)
            now = time.perf_counter()
            steps.append((now - lap, f"COPY into {table}"))
            lap = now
        for label, sql in _BEST_CASE_STEPS:
            conn.execute(sql)
            now = time.perf_counter()
            steps.append((now - lap, label))
            lap = now
        conn.commit()
        return time.perf_counter() - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_import(*args.child)
        return

    import psycopg

    base = args.database_url
    name = f"payouts_bench_{uuid.uuid4().hex[:8]}"
    admin_url = base.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "losses.csv"
            write_file(path, args.rows)
            size = path.stat().st_size
            out = subprocess.run([sys.executable, __file__, "--child", db_url, str(path)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            copy_seconds = copy_bare(db_url, path)
            floor_seconds = rewrite_floor(db_url)
            best_seconds, best_steps = best_case_floor(db_url, Path(tmp))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    product = result["seconds"]
    print(f"rows:              {args.rows:,} ({size / 1e6:.1f} MB)")
    print(f"payouts import:    {product:.2f} s  ({args.rows / product:,.0f} rows/s)")
    print(f"PostgreSQL COPY:   {copy_seconds:.2f} s  ({args.rows / copy_seconds:,.0f} rows/s)")
    print(f"ratio:             {product / copy_seconds:.2f}x COPY (goal: <= 3x)")
    print(f"writes alone:      {floor_seconds:.2f} s = {floor_seconds / copy_seconds:.2f}x COPY"
          " (its customers and positions written again with their keys, no checks)")
    print(f"best-case writes:  {best_seconds:.2f} s = {best_seconds / copy_seconds:.2f}x COPY"
          " (the same rows, typed and given ids, COPY'd into bare tables; keys, index and"
          " foreign keys then built and checked in bulk; no reading or checking of the file)")
    print("  " + "; ".join(f"{label} {seconds:.2f} s" for seconds, label in best_steps))
    print(f"import peak RSS:   {result['rss_peak_kib'] / 1024:.0f} MiB"
          f" (process before import: {result['rss_before_kib'] / 1024:.0f} MiB)")
    print("slowest statements of the import (the file's COPY is not among them):")
    for seconds, statement in result["steps"]:
        print(f"  {seconds:6.2f} s  {statement}")


if __name__ == "__main__":
    main()
