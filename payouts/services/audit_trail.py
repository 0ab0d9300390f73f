"""The audit trail's own use cases: record and list checkpoints, verify the chain, export it.

A checkpoint is the chain's head (seq, hash) at one moment, recorded so that it can be
published outside the database; docs/audit-chain.md says what verification does with it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.audit.chain import HASHED_FIELDS, format_time
from payouts.audit.log import lock_chain, record_event
from payouts.audit.verify import (
    Checkpoint,
    VerificationResult,
    iter_events,
    recorded_checkpoints,
    verify_chain,
)
from payouts.db.models import AuditCheckpoint, AuditEvent
from payouts.db.session import transaction
from payouts.domain.errors import ValidationError
from payouts.domain.incidents import JST
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor, Role
from payouts.services.access import require_role

MAX_NOTE = 500


def record_checkpoint(session: Session, actor: Actor, note: str) -> AuditCheckpoint:
    """Record the chain's current head as a checkpoint, then the event that says so.

    The chain since the latest checkpoint is verified first (a checkpoint must never vouch
    for a damaged chain): the bulk without holding up writers, the rest under the chain's
    lock, so the checkpoint is the head and its event (seq + 1) follows it directly.
    """
    require_role(actor, STAFF_WRITERS, "record audit checkpoints")
    note = (note or "").strip()
    if not note or len(note) > MAX_NOTE:
        raise ValidationError("note", f"is required (at most {MAX_NOTE} characters): say where it is published")
    with transaction(session):
        latest = session.scalar(
            select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc()).limit(1)
        )
        since = None if latest is None else Checkpoint(latest.seq, latest.hash, f"checkpoint #{latest.id}")
        checked = _verified(verify_chain(session, (), after=since))
    with transaction(session):
        lock_chain(session)
        since = None if checked.head_seq == 0 else Checkpoint(checked.head_seq, checked.head_hash, "the head just verified")
        head = _verified(verify_chain(session, (), after=since))
        if head.head_seq == 0:
            raise ValidationError("chain", "is empty: there is nothing to checkpoint")
        checkpoint = AuditCheckpoint(
            seq=head.head_seq, hash=head.head_hash, created_by_label=actor.label, note=note
        )
        session.add(checkpoint)
        session.flush()
        record_event(
            session,
            actor,
            "audit.checkpoint_recorded",
            "audit_checkpoint",
            checkpoint.id,
            f"Audit checkpoint #{checkpoint.id} at seq {checkpoint.seq}: {note}",
            {"seq": checkpoint.seq, "hash": checkpoint.hash, "note": note},
        )
    return checkpoint


def _verified(result: VerificationResult) -> VerificationResult:
    if not result.ok:
        raise ValidationError("chain", f"{result.summary()}; no checkpoint was recorded")
    return result


def list_checkpoints(session: Session, actor: Actor) -> list[AuditCheckpoint]:
    require_role(actor, BACK_OFFICE_READERS, "read audit checkpoints")
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))


def verify(session: Session, actor: Actor, published: Iterable[Checkpoint] = ()) -> VerificationResult:
    """Verify the whole chain, the checkpoints recorded in the database and ``published`` ones."""
    require_role(actor, BACK_OFFICE_READERS, "verify the audit trail")
    return verify_chain(session, [*recorded_checkpoints(session), *published])


def export_records(session: Session, actor: Actor) -> Iterator[dict[str, Any]]:
    """The export, record by record: every event in seq order, then every checkpoint.

    Each event carries its hashed fields (occurred_at as hashed), prev_hash and hash; the
    events are streamed, so the export of any chain runs in constant memory.
    """
    require_role(actor, BACK_OFFICE_READERS, "export the audit trail")
    # Read before the events (as verify_chain does): every head they name is in the export.
    checkpoints = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))
    return _export(session, checkpoints)


def export_line(record: dict[str, Any]) -> str:
    """One line of the export: JSON, UTF-8 text kept as is, except the characters some readers
    take for line ends (U+0085, U+2028, U+2029), which are escaped like the control characters."""
    line = json.dumps(record, ensure_ascii=False)
    return line.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def _export(session: Session, checkpoints: list[AuditCheckpoint]) -> Iterator[dict[str, Any]]:
    for event in iter_events(session):
        record: dict[str, Any] = {"type": "event"}
        record.update((name, event[name]) for name in HASHED_FIELDS)
        record["occurred_at"] = format_time(event["occurred_at"])
        record["prev_hash"] = event["prev_hash"]
        record["hash"] = event["hash"]
        yield record
    for c in checkpoints:
        yield {
            "type": "checkpoint",
            "id": c.id,
            "seq": c.seq,
            "hash": c.hash,
            "created_at": format_time(c.created_at),
            "created_by_label": c.created_by_label,
            "note": c.note,
        }


@dataclass(frozen=True)
class EventFilter:
    """What the audit log page narrows to; empty fields do not filter."""

    actor: str = ""
    action: str = ""
    subject_type: str = ""
    subject_id: str = ""
    since: dt.date | None = None
    until: dt.date | None = None


def search_events(session: Session, actor: Actor, where: EventFilter, before_seq: int | None = None,
                  limit: int = 50) -> tuple[list[AuditEvent], int | None]:
    """Events matching ``where``, newest first, ``limit`` at a time; and the seq to continue
    before (a cursor, so a page stays right while new events are appended)."""
    require_role(actor, BACK_OFFICE_READERS, "read the audit trail")
    query = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if where.actor:
        query = query.where(AuditEvent.actor.icontains(where.actor, autoescape=True))
    if where.action:
        query = query.where(AuditEvent.action.istartswith(where.action, autoescape=True))
    if where.subject_type:
        query = query.where(AuditEvent.subject_type == where.subject_type)
    if where.subject_id:
        query = query.where(AuditEvent.subject_id == where.subject_id)
    if where.since:
        query = query.where(AuditEvent.occurred_at >= dt.datetime.combine(where.since, dt.time(), JST))
    if where.until:
        query = query.where(AuditEvent.occurred_at < dt.datetime.combine(where.until + dt.timedelta(days=1),
                                                                          dt.time(), JST))
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    rows = list(session.scalars(query.limit(limit + 1)))
    following = rows[limit - 1].seq if len(rows) > limit else None
    return rows[:limit], following


def record_view(session: Session, actor: Actor, what: str) -> None:
    """Record that a regulator looked at or exported something (who looked at what, when)."""
    if actor.role is not Role.REGULATOR:
        return
    session.rollback()  # end the page's read transaction: the record is a transaction of its own
    with transaction(session):
        # The subject column is short; the whole address (with its filters) is kept in details.
        record_event(session, actor, "regulator.viewed", "page", what[:80], f"{actor.label} viewed {what[:300]}",
                     {"path": what[:4000]})
