"""Benchmark of the allocation engine (not a test): customers per second and peak memory.

Each size runs in a fresh subprocess so that its peak RSS (resource.getrusage ru_maxrss, a
high-water mark; tracemalloc is far too slow at a million customers) is its own. The scenario:
customers holding 1-3 JPY/BTC/ETH positions (0/8/18 decimals), a deductible and a cap, two
priority tranches, a reserve and three layers (one with an aggregate) that leave a shortfall,
so every step of the engine runs, including an LR per paying source.

    python bench/allocate_engine.py                      # 10,000 / 100,000 / 1,000,000
    python bench/allocate_engine.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from payouts.domain.allocation import (  # noqa: E402
    AllocationInput,
    AssetSpec,
    CustomerInput,
    CustomerTerms,
    LayerInput,
    Position,
    allocate,
    check_invariants,
    result_to_json,
)

ASSETS = {
    "JPY": AssetSpec("JPY", 0, Decimal("1")),
    "BTC": AssetSpec("BTC", 8, Decimal("15012345.67")),
    "ETH": AssetSpec("ETH", 18, Decimal("512345.678")),
}
# Upper bound of a random loss per asset, in minor units (about 5M yen each on average * 2).
MAX_MINOR = {"JPY": 5_000_000, "BTC": 50_000_000, "ETH": 5 * 10**18}
MEAN_LOSS_PER_CUSTOMER = 5_000_000  # rough, only used to size the reserve and the tower


def build_input(n: int, seed: int = 20240601) -> AllocationInput:
    rng = random.Random(seed)
    codes = list(ASSETS)
    ids = [f"C{i:08d}" for i in range(n)]
    rng.shuffle(ids)  # input order unrelated to id order, as from a real database
    customers = []
    for cid in ids:
        picked = rng.sample(codes, rng.randint(1, 3))
        customers.append(
            CustomerInput(cid, tuple(Position(a, rng.randrange(MAX_MINOR[a])) for a in picked))
        )
    loss = n * MEAN_LOSS_PER_CUSTOMER
    layers = (
        LayerInput("L1", loss // 20, loss * 3 // 10, Decimal("1"), None, frozenset()),
        LayerInput("L2", loss * 7 // 20, loss * 3 // 10, Decimal("0.75"), loss // 5, frozenset()),
        LayerInput("L3", loss * 13 // 20, loss * 3 // 10, Decimal("0.5"), None, frozenset({"insider_fraud"})),
    )
    return AllocationInput(
        incident_type="hack",
        assets=ASSETS,
        customers=tuple(customers),
        terms=CustomerTerms(10_000, 20_000_000),
        tranches_jpy=(1_000_000, 5_000_000),
        reserve_jpy=loss // 10,
        layers=layers,
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(n: int) -> dict:
    t0 = time.perf_counter()
    inp = build_input(n)
    t1 = time.perf_counter()
    peak_input = peak_mb()
    cpu = time.process_time()
    result = allocate(inp)
    cpu = time.process_time() - cpu  # wall time suffers when the machine is shared; CPU less so
    t2 = time.perf_counter()
    peak_allocate = peak_mb()
    check_invariants(inp, result)
    t3 = time.perf_counter()
    result_to_json(result)
    t4 = time.perf_counter()
    return {
        "customers": n,
        "build_s": t1 - t0,
        "allocate_s": t2 - t1,
        "allocate_cpu_s": cpu,
        "check_s": t3 - t2,
        "to_json_s": t4 - t3,
        "peak_mb_input": peak_input,
        "peak_mb_allocate": peak_allocate,
        "peak_mb_total": peak_mb(),
        "loss": result.total_eligible_jpy,
        "funded": result.total_funded_jpy,
        "used": [s.used_jpy for s in result.sources],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated customer counts")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one)))
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    print(f"{'customers':>10} {'allocate s':>10} {'(cpu s)':>7} {'cust/s':>10} {'check s':>8} {'json s':>7} "
          f"{'peak MB input':>13} {'peak MB alloc':>13} {'peak MB all':>11}  shortfall")
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout)
        shortfall = r["loss"] - r["funded"]
        print(f"{n:>10,} {r['allocate_s']:>10.2f} {r['allocate_cpu_s']:>7.2f} {n / r['allocate_s']:>10,.0f} "
              f"{r['check_s']:>8.2f} {r['to_json_s']:>7.2f} {r['peak_mb_input']:>13,.0f} "
              f"{r['peak_mb_allocate']:>13,.0f} {r['peak_mb_total']:>11,.0f}  "
              f"{shortfall / r['loss']:.1%} (used per source: {r['used']})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
