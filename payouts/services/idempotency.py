"""Idempotency keys for API writes, with the semantics payment APIs use.

The first request with a key inserts (and commits) a record *before* the action runs; the
unique (api key, idempotency key) constraint means a concurrent duplicate cannot insert, so the
action runs at most once. When it finishes, its response is stored on the record:

* same key, same request (method, path, body)  -> the stored response, nothing done again;
* same key, another request                    -> IdempotencyKeyReused (never executed);
* same key while the first is still running    -> IdempotencyInProgress (retry later);
* the first attempt failed with a server error -> the record is released, a retry runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payouts.db.models import IdempotencyRecord
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import ConflictError, DomainError, ValidationError

MAX_KEY = 255
#: An attempt still "in progress" after this long is taken to have died (process killed).
STALE_AFTER = dt.timedelta(minutes=10)


class IdempotencyKeyReused(DomainError):
    """The key was first used with a different request."""


class IdempotencyInProgress(ConflictError):
    """The first request with this key is still being processed."""


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


@dataclass(frozen=True)
class Started:
    record_id: int


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(value: str) -> str:
    if not value or len(value) > MAX_KEY or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in value):
        raise ValidationError("Idempotency-Key", f"must be 1 to {MAX_KEY} printable ASCII characters")
    return value


def begin(session: Session, api_key_id: int, key: str, request_fingerprint: str, *,
          wait_seconds: float = 2.0) -> Started | Replay:
    """Claim ``key`` for this request, or answer with what the first request got.

    A duplicate that arrives while the first runs waits up to ``wait_seconds`` for its
    response, then gets IdempotencyInProgress."""
    check_key(key)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with transaction(session):
                record = IdempotencyRecord(api_key_id=api_key_id, idempotency_key=key,
                                           fingerprint=request_fingerprint, status="in_progress",
                                           created_at=utcnow())
                session.add(record)
                session.flush()
            return Started(record.id)
        except IntegrityError:
            pass  # rolled back by transaction(); someone holds the key
        existing = session.scalar(select(IdempotencyRecord).where(
            IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.idempotency_key == key)
            .execution_options(populate_existing=True))
        session.rollback()
        if existing is None:
            continue  # released between our insert and our read: try again
        if existing.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request; use a new key")
        if existing.status == "done":
            return Replay(int(existing.response_status or 0), existing.response_body or "")
        if utcnow() - existing.created_at > STALE_AFTER:
            release(session, existing.id)
            continue
        if time.monotonic() >= deadline:
            raise IdempotencyInProgress("a request with this Idempotency-Key is still being processed; retry later")
        time.sleep(0.05)


def finish(session: Session, record_id: int, status: int, body: str) -> None:
    """Store the response the first request got."""
    with transaction(session):
        session.execute(update(IdempotencyRecord).where(IdempotencyRecord.id == record_id)
                        .values(status="done", response_status=status, response_body=body))


def release(session: Session, record_id: int) -> None:
    """Forget an attempt that did not complete (a server error), so a retry can run."""
    with transaction(session):
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id,
                                                        IdempotencyRecord.status == "in_progress"))
