"""How one audit event is hashed: the definition regulators recompute with their own tools.

hash = SHA-256( prev_hash (64 lowercase hex chars, ASCII) || canonical_json(event) )

canonical_json is UTF-8 JSON of the event's fields with keys sorted, no insignificant
whitespace (separators "," and ":"), non-ASCII characters kept as is, and integers as JSON
integers. The first event's prev_hash is GENESIS_HASH (64 zeros). docs/audit-chain.md gives the
same definition in prose; this module is its reference implementation and must not import the
rest of the application.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64

#: The fields that are hashed, in the order they are listed in the documentation.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_user_id",
    "actor",
    "actor_role",
    "action",
    "subject_type",
    "subject_id",
    "summary",
    "details",
    "request_id",
)


def format_time(value: dt.datetime) -> str:
    """UTC with microseconds and a Z: ``2026-11-30T00:22:35.123456Z``."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The chain hash of an event whose HASHED_FIELDS are given in ``fields``."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    if isinstance(body["occurred_at"], dt.datetime):
        body["occurred_at"] = format_time(body["occurred_at"])
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical_json(body).encode("utf-8"))
    return digest.hexdigest()
