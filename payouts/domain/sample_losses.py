"""Deterministic, realistic loss files for the demo, tests and benchmarks.

Most customers lose one asset, some two or three; amounts follow a long tail like real
balances (many small holders, a few large ones). The same (n, seed) always gives the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from payouts.domain.money import format_amount

HEADER = "customer_ref,asset,amount,name,email\n"

_FAMILY = ["Sato", "Suzuki", "Takahashi", "Tanaka", "Ito", "Watanabe", "Yamamoto", "Nakamura",
           "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue"]
_GIVEN = ["Haruto", "Yui", "Sota", "Hina", "Yuto", "Mei", "Riku", "Aoi", "Kaito", "Sakura",
          "Ren", "Yuna", "Hinata", "Rin", "Minato", "Mio"]

#: (asset, decimals, typical amount in units of 10^-min(decimals, 8), percent of customers
#: holding it). Integers only: even sample money is never a float.
_ASSETS = (("BTC", 8, 5_000_000, 55), ("ETH", 18, 120_000_000, 35), ("JPY", 0, 80_000, 30))


def customer_ref(index: int) -> str:
    return f"C{index:08d}"


def loss_rows(n_customers: int, seed: int = 2026) -> Iterator[str]:
    """CSV lines (with newline) for ``n_customers`` customers; the header is not included."""
    rng = random.Random(seed)
    for index in range(1, n_customers + 1):
        ref = customer_ref(index)
        name = f"{rng.choice(_FAMILY)} {rng.choice(_GIVEN)}"
        email = f"{ref.lower()}@example.jp"
        held = [a for a in _ASSETS if rng.randrange(100) < a[3]] or [_ASSETS[0]]
        for code, decimals, typical, _percent in held:
            # A long tail: most near the typical amount, a few holders 5x or 20x larger.
            minor = rng.randint(1, 2 * typical) * rng.choice((1, 1, 1, 2, 5, 20))
            minor *= 10 ** max(decimals - 8, 0)
            yield f"{ref},{code},{format_amount(minor, decimals)},{name},{email}\n"
            # Name and e-mail on the first row only, like many ledger exports.
            name = email = ""


def loss_file_bytes(n_customers: int, seed: int = 2026) -> bytes:
    return (HEADER + "".join(loss_rows(n_customers, seed))).encode("utf-8")
