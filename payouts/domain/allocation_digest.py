"""A fingerprint of an allocation's inputs, so a commit can prove it used what was previewed.

SHA-256 over a canonical text of every input: the incident type, assets and prices, terms,
tranches, reserve, layers in tower order, and each customer's positions in id order. Computed
incrementally: a million customers never become one big string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from payouts.domain.allocation_input import AllocationInput


def input_digest(inp: AllocationInput) -> str:
    digest = hashlib.sha256()
    head = [
        f"type={inp.incident_type}",
        "assets=" + ";".join(f"{a.code}:{a.decimals}:{a.ref_price}" for a in sorted(
            inp.assets.values(), key=lambda a: a.code)),
        f"terms={inp.terms.deductible_jpy}:{inp.terms.cap_jpy}",
        "tranches=" + ",".join(map(str, inp.tranches_jpy)),
        f"reserve={inp.reserve_jpy}",
        "layers=" + ";".join(
            f"{l.id}:{l.attachment_jpy}:{l.limit_jpy}:{l.share}:{l.aggregate_remaining_jpy}:"
            + ",".join(sorted(l.excluded_incident_types))
            for l in sorted(inp.layers, key=lambda l: (l.attachment_jpy, l.id))),
    ]
    digest.update(("\n".join(head) + "\n").encode())
    for customer in sorted(inp.customers, key=lambda c: c.id):
        positions = ",".join(f"{p.asset}:{p.amount_minor}" for p in sorted(
            customer.positions, key=lambda p: p.asset))
        digest.update(f"{customer.id}={positions}\n".encode())
    return digest.hexdigest()


def later_money_digest(unpaid: Iterable[tuple[str, int, int]], amount_jpy: int) -> str:
    """The fingerprint of a later-money run's inputs: the amount and every (customer, eligible,
    unpaid) balance it was shared over, in id order."""
    digest = hashlib.sha256(f"later={amount_jpy}\n".encode())
    for ref, eligible, balance in sorted(unpaid):
        digest.update(f"{ref}={eligible}:{balance}\n".encode())
    return digest.hexdigest()
