"""Verifying the audit chain: one pass in seq order, streaming, in constant memory.

The checks, and how the first failure is named, are defined in docs/audit-chain.md.
``check_events`` applies them to any iterable of events; ``verify_chain`` feeds it the
database. tools/verify_audit_export.py applies the same rules to an export with the standard
library only, and tests/integration/test_audit_verify.py keeps the two in agreement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.audit.chain import GENESIS_HASH, HASHED_FIELDS, event_hash
from payouts.db.models import AuditCheckpoint, AuditEvent

#: Events fetched per round trip (a server-side cursor on PostgreSQL).
BATCH_SIZE = 2000

_HASH = re.compile(r"[0-9a-f]{64}")

Event = Mapping[str, Any]


class Failure(str, Enum):
    """What is wrong at the first bad seq."""

    EDITED = "edited"  # the event's fields no longer give its stored hash
    DELETED = "deleted"  # a gap: the events from this seq on are missing
    INSERTED = "inserted"  # events were slipped in before a genuine event (renumbered)
    REORDERED = "reordered"  # the event's prev_hash names an event that comes after it
    BROKEN_LINK = "broken_link"  # the event is intact but does not follow its predecessor
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the chain disagrees with a checkpoint
    TRUNCATED = "truncated"  # a checkpoint lies beyond the head


@dataclass(frozen=True)
class Checkpoint:
    """A (seq, hash) the chain must contain; ``name`` is how messages refer to it."""

    seq: int
    hash: str
    name: str = "published checkpoint"


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: Failure
    message: str


@dataclass(frozen=True)
class VerificationResult:
    """The verified part of the chain and, if the chain fails, its first bad seq.

    ``count``, ``head_seq`` and ``head_hash`` describe the events verified before the first
    bad seq (the whole chain when it passes); ``checkpoints`` is how many matched.
    """

    count: int
    head_seq: int
    head_hash: str
    checkpoints: int
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def first_bad_seq(self) -> int | None:
        return None if self.problem is None else self.problem.seq

    def summary(self) -> str:
        """One line, the same as tools/verify_audit_export.py prints for the same chain."""
        if self.problem is None:
            return (
                f"OK: {self.count} events, head seq {self.head_seq} hash {self.head_hash},"
                f" {self.checkpoints} checkpoint(s) match"
            )
        return f"FAILED at seq {self.problem.seq} ({self.problem.kind.value}): {self.problem.message}"


def check_events(
    events: Iterable[Event],
    checkpoints: Iterable[Checkpoint] = (),
    *,
    find_seq: Callable[[str], int | None],
    start: tuple[int, str] = (0, GENESIS_HASH),
) -> VerificationResult:
    """Verify ``events`` (in seq order, starting right after ``start``) and ``checkpoints``.

    ``find_seq(hash)`` gives the seq of the event stored with that hash (or None); it is only
    asked when a link is broken, to tell an insertion or a reordering from other damage.
    """
    pending = sorted(checkpoints, key=lambda c: c.seq)
    if pending and pending[0].seq <= start[0]:
        raise ValueError(f"{pending[0].name} at seq {pending[0].seq} is not after the start")
    head_seq, head_hash = start
    matched = 0
    for event in events:
        expected = head_seq + 1
        problem = diagnose(event, expected, head_hash, find_seq)
        if problem is None:
            while matched < len(pending) and pending[matched].seq == expected:
                checkpoint = pending[matched]
                if checkpoint.hash != event["hash"]:
                    problem = Problem(
                        expected,
                        Failure.CHECKPOINT_MISMATCH,
                        f"{checkpoint.name} has hash {checkpoint.hash} at seq {expected}, the chain"
                        f" has {event['hash']}: the chain was rewritten at or before seq {expected}",
                    )
                    break
                matched += 1
        if problem is not None:
            # Whatever comes before the first bad seq was verified; for an insertion that ends
            # at the genuine event the bad one was written after (its prev_hash).
            before = event["prev_hash"] if problem.kind is Failure.INSERTED else head_hash
            return VerificationResult(
                max(0, problem.seq - 1 - start[0]), problem.seq - 1, before, matched, problem
            )
        head_seq, head_hash = expected, event["hash"]
    if matched < len(pending):
        checkpoint = pending[matched]
        problem = Problem(
            head_seq + 1,
            Failure.TRUNCATED,
            f"{checkpoint.name} is at seq {checkpoint.seq}, beyond the head (seq {head_seq}):"
            f" the chain was truncated",
        )
        return VerificationResult(head_seq - start[0], head_seq, head_hash, matched, problem)
    return VerificationResult(head_seq - start[0], head_seq, head_hash, matched)


def diagnose(
    event: Event, expected: int, prev_hash: str, find_seq: Callable[[str], int | None]
) -> Problem | None:
    """None if ``event`` is event ``expected`` and follows ``prev_hash``; else what is wrong."""
    seq = event["seq"]
    if seq > expected:
        missing = f"event {expected} is" if seq == expected + 1 else f"events {expected}..{seq - 1} are"
        return Problem(expected, Failure.DELETED, f"{missing} missing")
    if seq < expected:  # only in a file: the database's primary key forbids it
        return Problem(expected, Failure.REORDERED, f"event {seq} appears again after event {expected - 1}")
    stored_prev, stored = event["prev_hash"], event["hash"]
    if not (_is_hash(stored_prev) and _is_hash(stored)):
        return Problem(seq, Failure.EDITED, f"event {seq} has a malformed hash or prev_hash")
    if stored_prev == prev_hash:
        if event_hash(stored_prev, event) == stored:
            return None
        return Problem(seq, Failure.EDITED, f"event {seq} does not match its hash: it was changed after it was written")
    # The link is broken: where does the event's own prev_hash say it belongs?
    after = 0 if stored_prev == GENESIS_HASH else find_seq(stored_prev)
    if after is not None and after >= seq:
        return Problem(
            seq, Failure.REORDERED, f"event {seq} names event {after}, which comes after it, as its predecessor"
        )
    if after is not None and after < seq - 1 and event_hash(stored_prev, {**event, "seq": after + 1}) == stored:
        first = after + 1
        inserted = f"event {first} was" if first == seq - 1 else f"events {first}..{seq - 1} were"
        return Problem(
            first, Failure.INSERTED, f"{inserted} inserted: event {seq} was written as event {first}"
        )
    if event_hash(stored_prev, event) != stored:
        return Problem(seq, Failure.EDITED, f"event {seq} does not match its hash and does not follow {_previous(seq)}")
    return Problem(
        seq,
        Failure.BROKEN_LINK,
        f"event {seq} is intact but does not follow {_previous(seq)}: {_previous(seq)} was rewritten"
        f" and re-hashed, or event {seq} was forged",
    )


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def _previous(seq: int) -> str:
    return "the genesis hash" if seq == 1 else f"event {seq - 1}"


# --- the database ---------------------------------------------------------------------------

_EVENT_COLUMNS = [getattr(AuditEvent, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")]


def iter_events(session: Session, from_seq: int = 1) -> Iterator[Event]:
    """Every event from ``from_seq`` on, in seq order, streamed in batches (rows, not objects)."""
    query = (
        select(*_EVENT_COLUMNS)
        .where(AuditEvent.seq >= from_seq)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=BATCH_SIZE)
    )
    for row in session.execute(query):
        yield row._mapping


def recorded_checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.execute(
        select(AuditCheckpoint.id, AuditCheckpoint.seq, AuditCheckpoint.hash).order_by(
            AuditCheckpoint.seq, AuditCheckpoint.id
        )
    )
    return [Checkpoint(seq, hash_, f"checkpoint #{id_}") for id_, seq, hash_ in rows]


def verify_chain(
    session: Session,
    checkpoints: Iterable[Checkpoint] | None = None,
    *,
    after: Checkpoint | None = None,
) -> VerificationResult:
    """Verify the stored chain against ``checkpoints`` (default: those recorded in the database).

    Pass checkpoints published outside the database to check them as well: a database
    administrator can delete checkpoint rows along with the events they cover.

    With ``after``, the chain up to that checkpoint is trusted: verification starts at its
    seq (which must hold its hash) and checkpoints before it are skipped.
    """
    # Checkpoints are read before the events: every head they name was committed before the
    # events query starts, so a checkpoint recorded meanwhile cannot look like a truncation.
    listed = recorded_checkpoints(session) if checkpoints is None else list(checkpoints)
    start = (0, GENESIS_HASH)
    if after is not None:
        listed = [after, *(c for c in listed if c.seq > after.seq)]
        prev = session.scalar(select(AuditEvent.prev_hash).where(AuditEvent.seq == after.seq))
        start = (after.seq - 1, prev if prev is not None else GENESIS_HASH)

    def find_seq(hash_: str) -> int | None:
        return session.scalar(
            select(AuditEvent.seq).where(AuditEvent.hash == hash_).order_by(AuditEvent.seq).limit(1)
        )

    return check_events(iter_events(session, start[0] + 1), listed, find_seq=find_seq, start=start)
