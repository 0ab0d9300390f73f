"""Writing audit events inside the caller's transaction, one gap-free chain for all writers.

Writers are serialised: on PostgreSQL by a transaction-scoped advisory lock, on SQLite by its
single-writer lock. The primary key on ``seq`` is the last line of defence against a fork.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from payouts.audit.chain import GENESIS_HASH, canonical_json, event_hash
from payouts.db.bulk import bulk_insert, raw_timestamp
from payouts.db.models import AuditEvent
from payouts.db.types import utcnow
from payouts.domain.roles import Actor

#: Arbitrary constant naming the advisory lock that guards the head of the chain.
_CHAIN_LOCK_KEY = 0x7061796F  # "payo"


def lock_chain(session: Session) -> None:
    """Hold the head of the chain for the rest of this transaction (PostgreSQL; SQLite has a
    single writer): nobody appends until it commits or rolls back."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})


def _head(session: Session) -> tuple[int, str]:
    """The next sequence number and the hash it chains to."""
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)


#: Events written per COPY (bounded memory however many one action records).
_BATCH = 5_000
#: The columns _fields fills, in its order.
_FIELD_NAMES = ("seq", "occurred_at", "actor_user_id", "actor", "actor_role", "action", "subject_type",
                "subject_id", "summary", "details", "request_id")


def _fields(seq: int, actor: Actor, action: str, subject_type: str, subject_id: object,
            summary: str, details: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "seq": seq,
        "occurred_at": utcnow(),
        "actor_user_id": actor.user_id,
        "actor": actor.label,
        "actor_role": actor.role.value,
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "summary": summary,
        "details": canonical_json(details or {}),
        "request_id": actor.request_id,
    }


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: object,
    summary: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain; it commits or rolls back with the change it describes.

    ``action`` is past tense and dotted (``incident.created``); ``details`` holds the fields
    that changed as ``{"field": [before, after]}`` or other JSON-safe detail (no floats).
    """
    lock_chain(session)
    seq, prev_hash = _head(session)
    fields = _fields(seq, actor, action, subject_type, subject_id, summary, details)
    event = AuditEvent(**fields, prev_hash=prev_hash, hash=event_hash(prev_hash, fields))
    session.add(event)
    session.flush()
    return event


def record_events(
    session: Session,
    actor: Actor,
    events: Iterable[tuple[str, str, object, str, dict[str, Any] | None]],
) -> int:
    """Append many events (action, subject_type, subject_id, summary, details) in one go: one
    event per change even when one action changes thousands of records (a bulk approval), with
    the head read once and the rows written in batches (COPY on PostgreSQL). Returns how many
    were written."""
    lock_chain(session)
    seq, prev_hash = _head(session)
    pending = iter(events)
    written = 0
    # Each batch is built before its COPY starts: ``events`` may be a generator that still
    # reads the database, which it could not do while the connection is busy copying.
    while batch := list(islice(pending, _BATCH)):
        rows = []
        for action, subject_type, subject_id, summary, details in batch:
            fields = _fields(seq, actor, action, subject_type, subject_id, summary, details)
            prev_hash_of_row, prev_hash = prev_hash, event_hash(prev_hash, fields)
            fields["occurred_at"] = raw_timestamp(session, fields["occurred_at"])
            rows.append((*(fields[name] for name in _FIELD_NAMES), prev_hash_of_row, prev_hash))
            seq += 1
        bulk_insert(session, AuditEvent.__tablename__, (*_FIELD_NAMES, "prev_hash", "hash"), rows)
        written += len(rows)
    return written
