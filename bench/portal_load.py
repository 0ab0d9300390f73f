"""Launch-day load on the customer portal: the claim page against a bare Flask page.

Starts the app under gunicorn on a fresh PostgreSQL database holding one incident with
--customers customers (claims open), logs in --clients customers from a second process and
drives their own claim pages for --seconds, then does the same with a bare Flask page served
by the same gunicorn settings, --rounds times over. Prints requests per second, p50/p95/p99 and
the ratio for each round, and the median round's: on a shared machine one round can be slowed
by neighbours, and alternating the pages spreads that over both.

Goal (issue #4): claim page p95 under 100 ms and at least a third of the bare page's throughput.

    .venv/bin/python bench/portal_load.py --customers 100000
"""

from __future__ import annotations

import argparse
import http.client
import io
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BARE_PATH = "/bench/bare"


def create():  # type: ignore[no-untyped-def]
    """The app gunicorn serves: the real app plus one bare page with no database or template."""
    from payouts.web.access import public
    from payouts.web.app import create_app

    app = create_app()

    @public
    def bare():  # type: ignore[no-untyped-def]
        return "ok"

    app.add_url_rule(BARE_PATH, "bench_bare", bare)
    return app


def seed(url: str, customers: int, clients: int) -> list[tuple[str, str, int]]:
    """Incident, prices, losses, open claims; passwords for the first ``clients`` customers."""
    from payouts.db.migrate import upgrade
    from payouts.db.models import Claim, Customer, User
    from payouts.db.session import make_engine, make_session_factory
    from payouts.domain.roles import SYSTEM_ACTOR
    from payouts.domain.sample_losses import loss_file_bytes
    from payouts.services import claims, incidents, loss_import, users
    import datetime as dt

    engine = make_engine(url)
    upgrade(engine)
    session = make_session_factory(engine)()
    t = dt.datetime(2026, 10, 1, 3, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, SYSTEM_ACTOR, ref="LOAD-1", title="Load test", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    for asset, price in (("JPY", "1"), ("BTC", "14250000"), ("ETH", "512300.5")):
        incidents.set_reference_price(session, SYSTEM_ACTOR, incident_ref="LOAD-1", asset_code=asset, price=price,
                                      source="bench")
    started = time.perf_counter()
    report = loss_import.import_losses(session, SYSTEM_ACTOR, "LOAD-1", io.BytesIO(loss_file_bytes(customers)),
                                       "load.csv")
    assert report.ok, report.problems[:3]
    claims.open_claims(session, SYSTEM_ACTOR, "LOAD-1")
    print(f"seeded {customers:,} customers with open claims in {time.perf_counter() - started:.1f} s", flush=True)
    rows = session.execute(select(User.username, Claim.id).join(Customer, Customer.id == User.customer_id)
                           .join(Claim, Claim.customer_id == Customer.id)
                           .order_by(Customer.external_ref).limit(clients)).all()
    logins = []
    for username, claim_id in rows:
        password = uuid.uuid4().hex
        users.set_password(session, SYSTEM_ACTOR, username, password)
        logins.append((username, password, claim_id))
    session.close()
    engine.dispose()
    return logins


class Client:
    """One customer's browser: a keep-alive connection and its session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed an idle keep-alive connection: open a new one, as a browser would.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read().decode("utf-8", "replace")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                self.cookie = value.split(";", 1)[0]
        return response.status, data

    def login(self, username: str, password: str) -> None:
        _status, page = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({"csrf_token": token, "username": username, "password": password})
        status, _ = self.request("POST", "/login", body)
        if status != 302:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")


def drive(port: int, logins: list[tuple[str, str, int]], seconds: float, bare: bool, out) -> None:  # type: ignore[no-untyped-def]
    """In the driving process: one thread per customer, each requesting as fast as it can."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    clients = []
    for username, password, claim_id in logins:
        client = Client(port)
        client.login(username, password)
        clients.append((client, BARE_PATH if bare else f"/portal/claims/{claim_id}"))
    stop_at = time.perf_counter() + seconds

    def run(client: Client, path: str) -> None:
        mine = []
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status, body = client.request("GET", path)
            mine.append(time.perf_counter() - started)
            if status != 200 or (not bare and "¥" not in body and "JPY" not in body and "円" not in body):
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=c) for c in clients]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((latencies, errors[0], time.perf_counter() - began))


def measure(port: int, logins, seconds: float, bare: bool) -> dict[str, float]:  # type: ignore[no-untyped-def]
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=drive, args=(port, logins, seconds, bare, queue))
    process.start()
    latencies, errors, elapsed = queue.get()
    process.join()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"rps": len(latencies) / elapsed, "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "requests": len(latencies), "errors": errors, "mean": statistics.fmean(latencies) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent logged-in customers")
    parser.add_argument("--seconds", type=float, default=10, help="per page and round")
    parser.add_argument("--rounds", type=int, default=3, help="claim page then bare page, this many times")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    base = make_url(args.database_url)
    name = f"payouts_portal_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    server = None
    try:
        logins = seed(url, args.customers, args.clients)
        env = {**os.environ, "PAYOUTS_DATABASE_URL": url, "PAYOUTS_LOGIN_RATE_LIMIT": "1000000 per minute",
               "PAYOUTS_ENV": "development", "PYTHONPATH": str(ROOT)}
        env.pop("PAYOUTS_REDIS_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--threads", str(args.threads),
             "--bind", f"127.0.0.1:{args.port}", "--keep-alive", "30", "--log-level", "warning", "bench.portal_load:create()"],
            cwd=ROOT, env=env, start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start")
                time.sleep(0.2)
        print(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} logged-in customers,"
              f" {args.rounds} rounds of {args.seconds:.0f} s per page", flush=True)
        measure(args.port, logins, 3, bare=False)  # warm-up: connections, caches
        # Rounds alternate the two pages, so that a slow stretch of a shared machine falls on
        # both; the verdict is the median round's.
        ratios, p95s = [], []
        for round_no in range(1, args.rounds + 1):
            claim = measure(args.port, logins, args.seconds, bare=False)
            bare = measure(args.port, logins, args.seconds, bare=True)
            print(f"round {round_no}:", flush=True)
            for label, r in (("claim page", claim), ("bare page", bare)):
                print(f"  {label:<11} {r['rps']:8.1f} req/s  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms"
                      f"  p99 {r['p99']:6.1f} ms  ({r['requests']:,} requests, {r['errors']} errors)")
            ratios.append(claim["rps"] / bare["rps"])
            p95s.append(claim["p95"])
            print(f"  throughput ratio claim/bare: {ratios[-1]:.2f}; claim p95 {p95s[-1]:.1f} ms", flush=True)
        print(f"median of {args.rounds} rounds: throughput ratio claim/bare {statistics.median(ratios):.2f}"
              f" (goal >= 0.33); claim p95 {statistics.median(p95s):.1f} ms (goal < 100 ms)")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
